"""`la_keras.runs.outputs.atomic_dir`: a folder is replaced whole or kept.

launch.export writes the SavedModel through it; the export killed at
several points is test_faults.py's AtomicExportTest (slow).
"""

import contextlib
import os
from unittest import mock

import pytest

from la_keras.runs import outputs


def _folder(path, **files):
    os.makedirs(path, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    return str(path)


def _contents(path):
    found = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name)) as f:
            found[name] = f.read()
    return found


def _leftovers(path):
    """What `atomic_dir` may leave beside `path`: `.<name>.*` entries."""
    parent, name = os.path.split(path)
    return [e for e in os.listdir(parent) if e.startswith(f".{name}.")]


@pytest.mark.parametrize("exchange", [True, False])
def test_a_finished_block_replaces_the_folder(tmp_path, exchange):
    # With the kernel's atomic exchange, and without it (the old folder is
    # renamed aside, then the new one into place).
    path = _folder(tmp_path / "export", old="1", both="old")
    unsupported = mock.patch.object(outputs, "_exchange", return_value=False)
    with contextlib.nullcontext() if exchange else unsupported:
        with outputs.atomic_dir(path) as tmp:
            assert tmp != path
            assert _contents(path) == {"both": "old", "old": "1"}
            _folder(tmp, new="2", both="new")
    assert _contents(path) == {"both": "new", "new": "2"}
    assert _leftovers(path) == []


def test_a_new_folder_is_renamed_into_place(tmp_path):
    path = str(tmp_path / "export")
    with outputs.atomic_dir(path) as tmp:
        _folder(tmp, new="2")
        assert not os.path.exists(path)
    assert _contents(path) == {"new": "2"}
    assert _leftovers(path) == []


def test_a_block_that_raises_keeps_the_old_folder(tmp_path):
    path = _folder(tmp_path / "export", old="1")
    with pytest.raises(RuntimeError, match="killed"):
        with outputs.atomic_dir(path) as tmp:
            _folder(tmp, new="2")
            raise RuntimeError("killed")
    assert _contents(path) == {"old": "1"}
    assert _leftovers(path) == []


def test_what_a_killed_process_left_is_cleaned_up(tmp_path):
    # Killed between its two renames: its partial folder is complete, the
    # old one is aside and `path` is gone; recover_dir puts the old one back
    # and removes the partial one.
    path = str(tmp_path / "export")
    _folder(tmp_path / ".export.old-99999", old="1")
    _folder(tmp_path / ".export.partial-99999", new="2")
    outputs.recover_dir(path)
    assert _contents(path) == {"old": "1"}
    assert _leftovers(path) == []
    # Killed while writing: its partial folder is removed by the next one.
    _folder(tmp_path / ".export.partial-99998", half="x")
    with outputs.atomic_dir(path) as tmp:
        _folder(tmp, new="3")
    assert _contents(path) == {"new": "3"}
    assert _leftovers(path) == []
