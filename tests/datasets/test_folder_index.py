"""Tests of the file index of `folder:PATH` datasets: its cache file (reused
without decoding, a changed folder refused, a moved folder accepted) and
its in-process memo."""

import json
import os
import shutil

import numpy as np
import pytest

from la_keras import datasets
from la_keras.datasets import folder
from la_keras.datasets import folder_index
from tests.datasets import folders

LAYOUT = folders.LAYOUT


def _failing_inspect(path):
    raise AssertionError(f"{path} was decoded again")


def _forget_and_forbid_decoding(monkeypatch):
    monkeypatch.setattr(folder_index, "_MEMO", {})
    monkeypatch.setattr(folder_index, "inspect_image", _failing_inspect)


def _same_index(a, b):
    assert a.class_names == b.class_names and a.files == b.files
    assert a.bad == b.bad and a.listing == b.listing
    for split in a.files:
        np.testing.assert_array_equal(a.labels[split], b.labels[split])
        np.testing.assert_array_equal(a.sizes[split], b.sizes[split])
        np.testing.assert_array_equal(a.gray[split], b.gray[split])


def test_index_cache_written_then_reused_without_decoding(
    tmp_path, monkeypatch
):
    root, cache = tmp_path / "data", tmp_path / "run" / "folder_index.json"
    folders.make(root, LAYOUT, modes={"a": "L"})
    (root / "train" / "b" / "bad.png").write_bytes(b"")
    first = folder_index.build(str(root), str(cache))
    facts = json.loads(cache.read_text())["facts"]
    assert facts["train/a/00.png"][:4] == [6, 8, True, None]
    assert facts["train/b/bad.png"][:4] == [0, 0, False, "empty file"]
    assert len(facts) == 8

    _forget_and_forbid_decoding(monkeypatch)
    _same_index(folder_index.build(str(root), str(cache)), first)
    # Through `load`: the bad file still named, still skippable.
    message = folders.refusal(
        datasets.load, folders.name(root), "train", index_cache=cache
    )
    assert f"{root}/train/b/bad.png (empty file)" in message
    _, info = datasets.load(
        folders.name(root),
        "train",
        index_cache=str(cache),
        skip_bad_images=True,
    )
    assert info.skipped_images == (f"{root}/train/b/bad.png",)


def test_index_cache_written_by_load(tmp_path):
    folders.make(tmp_path / "data", LAYOUT)
    cache = tmp_path / "run" / "index.json"
    datasets.load(
        folders.name(tmp_path / "data"), "test", index_cache=str(cache)
    )
    assert json.loads(cache.read_text())["format"] == "la_keras.folder_index"


def _add(root):
    folders.write(str(root / "train" / "b" / "new.png"))
    return "1 files added, 0 removed, 0 changed, e.g. train/b/new.png"


def _remove(root):
    os.remove(root / "train" / "a" / "02.png")
    return "0 files added, 1 removed, 0 changed, e.g. train/a/02.png"


def _rewrite(root):
    path = root / "train" / "a" / "01.png"
    before = path.stat().st_size
    folders.write(str(path), size=(9, 5), seed=99)
    assert path.stat().st_size != before
    return "0 files added, 0 removed, 1 changed, e.g. train/a/01.png"


@pytest.mark.parametrize("change", [_add, _remove, _rewrite])
def test_changed_folder_refused(tmp_path, change):
    root, cache = tmp_path / "data", tmp_path / "run" / "index.json"
    folders.make(root, LAYOUT)
    first = folder_index.build(str(root), str(cache))
    expected = change(root)
    with pytest.raises(folder_index.FolderChangedError) as error:
        folder_index.build(str(root), str(cache))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{folders.name(root)} changed since {cache}")
    assert expected in message
    assert "--model_dir" in message
    assert (
        folders.refusal(
            datasets.load, folders.name(root), "train", index_cache=str(cache)
        )
        == message
    )
    # Without the cache (a new run) the changed folder is indexed anew.
    assert folder_index.build(str(root)).listing != first.listing


def test_moved_folder_keeps_its_cache(tmp_path, monkeypatch):
    root, cache = tmp_path / "data", tmp_path / "index.json"
    folders.make(root, LAYOUT)
    first = folder_index.build(str(root), str(cache))
    moved = tmp_path / "elsewhere" / "data"
    shutil.move(root, moved)
    _forget_and_forbid_decoding(monkeypatch)
    index = folder_index.build(str(moved), str(cache))
    assert index.root == str(moved)
    _same_index(index, first)
    paths, _, _ = folder.describe(
        folders.name(moved), "test", index_cache=str(cache)
    )
    assert all(p.startswith(str(moved)) for p in paths)


def test_damaged_cache_is_rebuilt(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "index.json"
    folders.make(root, LAYOUT)
    cache.write_text('{"format": "la_keras.folder_in')
    index = folder_index.build(str(root), str(cache))
    assert json.loads(cache.read_text())["listing"] == index.listing


def test_memo_skips_decoding_until_the_folder_changes(tmp_path, monkeypatch):
    folders.make(tmp_path, LAYOUT)
    first = folder_index.build(str(tmp_path))
    monkeypatch.setattr(folder_index, "inspect_image", _failing_inspect)
    _same_index(folder_index.build(str(tmp_path)), first)
    folder.describe(folders.name(tmp_path), "train")  # `load` shares the memo
    _add(tmp_path)
    with pytest.raises(AssertionError, match="was decoded again"):
        folder_index.build(str(tmp_path))
