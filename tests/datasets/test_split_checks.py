"""Tests of the test split's checks: classes without test images and test
images identical to training images, on folders and prepared files, and
the warnings and metrics.json facts `la_keras.runs.data_checks` makes of them."""

import json
import logging
import shutil

import numpy as np
import pytest

from la_keras import datasets
from la_keras.datasets import folder
from la_keras.datasets import folder_index
from la_keras.datasets import prepared
from la_keras.datasets import split_checks
from la_keras.runs import data_checks
from tests.datasets import fakes
from tests.datasets import folders

# Class "c" has training images and no test folder.
TRAIN_ONLY = {"train": {"a": 3, "b": 2, "c": 2}, "test": {"a": 1, "b": 1}}


def _warnings(caplog, info) -> list[str]:
    """The warnings `data_checks.log` logs for `info`."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="absl"):
        data_checks.log(info)
    return [r.getMessage() for r in caplog.records if r.name == "absl"]


def _duplicate(root, train, test):
    """Copies `root/train` to `root/test` (relative paths)."""
    shutil.copy(root / train, root / test)


def _info(root, **kwargs):
    return folder.describe(folders.name(root), "train", **kwargs)[2]


def test_class_without_test_images_is_named(tmp_path, caplog):
    folders.make(tmp_path, TRAIN_ONLY)
    info = _info(tmp_path)
    np.testing.assert_array_equal(info.test_counts, [1, 1, 0])
    assert info.classes_without_test_images() == ["c"]
    (message,) = _warnings(caplog, info)
    assert "1 class has training images and no test image" in message
    assert "c (2 training images)" in message
    assert "averaged over the 2 classes that have test images" in message
    facts = data_checks.facts(info)
    assert facts["classes_without_test_images"] == ["c"]
    assert facts["test_images_identical_to_training"]["count"] == 0


def test_class_without_readable_test_images_is_named(tmp_path, caplog):
    folders.make(
        tmp_path, {"train": {"a": 2, "b": 3}, "test": {"a": 1, "b": 1}}
    )
    (tmp_path / "test" / "b" / "00.png").write_bytes(b"")
    info = _info(tmp_path, skip_bad_images=True)
    assert info.classes_without_test_images() == ["b"]
    assert "b (3 training images)" in _warnings(caplog, info)[0]


def test_test_files_identical_to_training_files_are_counted(tmp_path, caplog):
    folders.make(tmp_path, folders.LAYOUT)
    _duplicate(tmp_path, "train/a/02.png", "test/a/zz.png")
    _duplicate(tmp_path, "train/b/00.png", "test/b/01.png")
    _duplicate(tmp_path, "train/b/00.png", "train/b/zz.png")  # train only
    info = _info(tmp_path)
    assert info.test_duplicates == 2
    assert info.test_duplicate_examples == (
        ("test/a/zz.png", "train/a/02.png"),
        ("test/b/01.png", "train/b/00.png"),
    )
    (message,) = _warnings(caplog, info)
    assert message == (
        f"folder:{tmp_path}: 2 test images are byte-identical to training "
        "images (e.g. test/a/zz.png = train/a/02.png); their accuracy "
        "overstates generalisation."
    )
    assert data_checks.facts(info)["test_images_identical_to_training"] == {
        "count": 2,
        "first": [
            "test/a/zz.png = train/a/02.png",
            "test/b/01.png = train/b/00.png",
        ],
    }


def test_clean_folder_warns_nothing(tmp_path, caplog):
    folders.make(tmp_path, folders.LAYOUT)
    info = _info(tmp_path)
    assert _warnings(caplog, info) == []
    assert data_checks.facts(info) == {
        "classes_without_test_images": [],
        "test_images_identical_to_training": {"count": 0, "first": []},
    }


def test_hashes_come_from_the_decoding_read(tmp_path, monkeypatch):
    folders.make(tmp_path, folders.LAYOUT)
    _duplicate(tmp_path, "train/a/00.png", "test/a/zz.png")

    def no_second_read(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(split_checks, "file_digest", no_second_read)
    assert _info(tmp_path).test_duplicates == 1


def test_cache_without_hashes_hashes_only_same_size_files(
    tmp_path, monkeypatch
):
    root, cache = tmp_path / "data", tmp_path / "run" / "index.json"
    folders.make(root, folders.LAYOUT)
    _duplicate(root, "train/a/00.png", "test/a/zz.png")
    (root / "train" / "b" / "big.png").write_bytes(
        (root / "train" / "b" / "00.png").read_bytes() + b"\0" * 999
    )  # a size that no test file has
    folder_index.build(str(root), str(cache))
    data = json.loads(cache.read_text())
    data["facts"] = {p: f[:5] for p, f in data["facts"].items()}
    cache.write_text(json.dumps(data))
    monkeypatch.setattr(folder_index, "_MEMO", {})
    read = []
    digest = split_checks.file_digest
    monkeypatch.setattr(
        split_checks, "file_digest", lambda p: read.append(p) or digest(p)
    )
    index = folder_index.build(str(root), str(cache))
    assert str(root / "test" / "a" / "zz.png") in read
    assert str(root / "train" / "b" / "big.png") not in read
    info = _info(root, index_cache=str(cache))
    assert info.test_duplicates == 1
    assert index.digests["train"][0] == index.digests["test"][-2]


def test_prepared_file_of_a_folder_keeps_both_checks(tmp_path, caplog):
    root = tmp_path / "data"
    folders.make(root, TRAIN_ONLY)
    _duplicate(root, "train/a/01.png", "test/a/zz.png")
    name = folders.name(root)
    splits = {s: folder.arrays(name, s)[:2] for s in ("train", "test")}
    path = prepared.write(
        str(tmp_path / "f.prepared"), splits, _info(root), {"dataset": name}
    )
    info = prepared.split_arrays(path, "train")[2]
    assert info.classes_without_test_images() == ["c"]
    assert info.test_duplicates == 1
    # Test images sorted by class and path: zz.png is test[1]; train
    # images come in a seeded order.
    test_name, train_name = info.test_duplicate_examples[0]
    assert test_name == "test[1]" and train_name.startswith("train[")
    position = int(train_name[len("train[") : -1])
    np.testing.assert_array_equal(
        splits["train"][0][position], splits["test"][0][1]
    )
    assert len(_warnings(caplog, info)) == 2
    # The same facts through `load` (TensorFlow's path), holdout taken.
    _, tf_info = datasets.load(
        prepared.PREFIX + path, "train", holdout_fraction=0.3
    )
    assert tf_info.classes_without_test_images() == ["c"]
    assert tf_info.test_duplicates == 1


def test_unknown_test_counts_are_not_reported():
    info = fakes.dataset_info([3, 1], num_examples={"train": 4, "test": 2})
    assert info.classes_without_test_images() == []
    assert data_checks.facts(info) == {}
    with pytest.raises(ValueError, match="one entry per class"):
        datasets.DatasetInfo(**{**info.__dict__, "test_counts": [1, 2, 3]})
