"""The file index of a `folder:PATH` dataset, built with Pillow (no TensorFlow).

Layout: `PATH/train/<class>/...` and `PATH/test/<class>/...` (else `val/` or
`validation/` is the test split). Class names are the sorted folder names of
`train/`. Images (`.png`, `.jpg`, `.jpeg`, `.bmp`, `.gif`, any case) are
found recursively under each class folder, symlinks followed; other files,
and hidden files and folders (a leading `.`, e.g. macOS's `._x.jpg`), are
ignored. Files are listed sorted by class, then by path.

`build(root)` lists the files (one `stat` each), then opens and decodes every
image once, in threads, to record its size, whether it is grayscale and the
SHA-256 of its bytes (test files identical to training files:
`split_checks`), and to find the files that cannot be read: empty, not an image, truncated or
corrupt, or a kind TensorFlow cannot decode or decodes otherwise
(`folder_images.inspect_image`). `build(root, cache=PATH)` keeps
that index in a JSON file (a run's model_dir) and reuses it when the listing
(relative paths and byte sizes) is unchanged; a listing that differs from
the cached one is refused (`FolderChangedError`): the run was made on other
data. Paths are stored relative to the folder, so a moved folder matches.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os

import numpy as np

from la_keras.datasets import split_checks
from la_keras.datasets.folder_images import inspect_image

PREFIX = "folder:"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TEST_FOLDERS = ("test", "val", "validation")
_INDEX_FORMAT = "la_keras.folder_index"
_INDEX_VERSION = 3  # 2: the checks of folder_images.py; 3: upright sizes


class FolderError(ValueError):
    """A folder dataset that cannot be used as it is (one-line message)."""


class FolderChangedError(FolderError):
    """The folder's files differ from those of the cached index."""


@dataclasses.dataclass(frozen=True)
class FolderIndex:
    """Every image file of a folder dataset, checked.

    Args:
        root: the folder (as given).
        class_names: sorted class folder names of `train/`.
        test_folder: which of `TEST_FOLDERS` is the test split.
        files: `{"train"|"test": [relative path]}`, sorted by class, path.
        labels: `{split: int64 [N]}`.
        sizes: `{split: int64 [N, 2]}` (height, width); 0 for bad files.
        gray: `{split: bool [N]}`: the image is grayscale.
        bad: `{relative path: reason}` of the files that cannot be read.
        listing: SHA-256 of the listing (relative paths and byte sizes).
        digests: `{split: [SHA-256 hex of the file, or None]}`; None for a
            bad file, or one whose byte size no file of the other split has
            when the index came from a cache made without the hashes.
    """

    root: str
    class_names: list
    test_folder: str
    files: dict
    labels: dict
    sizes: dict
    gray: dict
    bad: dict
    listing: str
    digests: dict = dataclasses.field(default_factory=dict)

    def without_bad(self) -> FolderIndex:
        """The index without its bad files."""
        keep = {
            s: np.array([f not in self.bad for f in self.files[s]], bool)
            for s in self.files
        }
        return dataclasses.replace(
            self,
            files={
                s: [f for f, k in zip(self.files[s], keep[s], strict=True) if k]
                for s in self.files
            },
            labels={s: self.labels[s][keep[s]] for s in self.files},
            sizes={s: self.sizes[s][keep[s]] for s in self.files},
            gray={s: self.gray[s][keep[s]] for s in self.files},
            digests={
                s: [
                    d
                    for d, k in zip(self.digests[s], keep[s], strict=True)
                    if k
                ]
                for s in self.files
            },
            bad={},
        )


def _describe(root: str) -> str:
    return f"{PREFIX}{root}"


def image_files(class_dir: str) -> list[tuple[str, int]]:
    """`(path, byte size)` of the images under `class_dir`, recursively,
    following symlinks (each real folder once, so a link loop ends)."""
    found, seen = [], set()
    for directory, subdirs, names in os.walk(class_dir, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirs[:] = []
            continue
        seen.add(real)
        # Hidden files and folders (macOS's `._x.jpg`, `.thumbnails/`) are
        # not images of the class.
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or not name.lower().endswith(EXTENSIONS):
                continue
            path = os.path.join(directory, name)
            try:
                found.append((path, os.stat(path).st_size))
            except OSError:  # a dangling symlink: an unreadable image
                found.append((path, -1))
    return sorted(found)


def _class_folders(split_dir: str) -> list[str]:
    return sorted(
        name
        for name in os.listdir(split_dir)
        if os.path.isdir(os.path.join(split_dir, name))
        and not name.startswith(".")
    )


def list_files(root: str):
    """`(class_names, test_folder, {split: [(relpath, label, bytes)]})`.

    Raises:
        FolderError: no such folder, no `train/`, no test split, a class
            folder without images, a test class that `train/` lacks.
    """
    where = _describe(root)
    if not os.path.isdir(root):
        raise FolderError(f"{where}: no such folder.")
    train_dir = os.path.join(root, "train")
    if not os.path.isdir(train_dir):
        raise FolderError(
            f"{where} has no train/ folder: expected PATH/train/<class>/"
            "<images> and PATH/test/<class>/<images>."
        )
    test_folder = next(
        (t for t in TEST_FOLDERS if os.path.isdir(os.path.join(root, t))),
        None,
    )
    if test_folder is None:
        raise FolderError(
            f"{where} has no test split: add PATH/test/<class>/<images> "
            "(or val/ or validation/)."
        )
    class_names = _class_folders(train_dir)
    if not class_names:
        raise FolderError(f"{where}/train has no class folders.")
    test_classes = _class_folders(os.path.join(root, test_folder))
    if not test_classes:
        raise FolderError(
            f"{where}/{test_folder} has no class folders: expected "
            f"PATH/{test_folder}/<class>/<images>."
        )
    unknown = sorted(set(test_classes) - set(class_names))
    if unknown:
        raise FolderError(
            f"{where}/{test_folder} has class folders that train/ lacks: "
            f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}; "
            "every test class needs training images."
        )
    label_of = {name: i for i, name in enumerate(class_names)}
    listing = {}
    for split, folder, classes in (
        ("train", "train", class_names),
        ("test", test_folder, test_classes),
    ):
        rows = []
        for name in classes:
            class_dir = os.path.join(root, folder, name)
            files = image_files(class_dir)
            if not files:
                raise FolderError(
                    f"{where}/{folder}/{name} holds no images ("
                    f"{', '.join(EXTENSIONS)}): add some or remove the folder."
                )
            rows.extend(
                (os.path.relpath(path, root), label_of[name], size)
                for path, size in files
            )
        listing[split] = rows
    return class_names, test_folder, listing


def listing_digest(listing: dict) -> str:
    """SHA-256 of the relative paths and byte sizes of every split."""
    digest = hashlib.sha256()
    for split in sorted(listing):
        for path, label, size in listing[split]:
            digest.update(f"{split}\t{path}\t{label}\t{size}\n".encode())
    return digest.hexdigest()


def _inspect_all(root: str, listing: dict) -> dict:
    paths = [
        os.path.join(root, p) for split in listing for p, _, _ in listing[split]
    ]
    workers = min(32, (os.cpu_count() or 1) * 2)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return dict(
            zip(
                paths, pool.map(inspect_image, paths, chunksize=64), strict=True
            )
        )


def _index_from(root, class_names, test_folder, listing, facts, digest):
    files, labels, sizes, gray, bad, digests = {}, {}, {}, {}, {}, {}
    for split, rows in listing.items():
        digests[split] = [
            facts[p][4] if len(facts[p]) > 4 else None for p, _, _ in rows
        ]
        files[split] = [p for p, _, _ in rows]
        labels[split] = np.array([lab for _, lab, _ in rows], np.int64)
        split_facts = [facts[p] for p in files[split]]
        sizes[split] = np.array([f[:2] for f in split_facts], np.int64).reshape(
            -1, 2
        )
        gray[split] = np.array([f[2] for f in split_facts], bool)
        bad.update(
            {
                p: f[3]
                for p, f in zip(files[split], split_facts, strict=True)
                if f[3]
            }
        )
    return FolderIndex(
        root=root,
        class_names=class_names,
        test_folder=test_folder,
        files=files,
        labels=labels,
        sizes=sizes,
        gray=gray,
        bad=bad,
        listing=digest,
        digests=split_checks.hash_colliding(
            {
                s: [os.path.join(root, p) for p, _, _ in r]
                for s, r in listing.items()
            },
            {s: [size for _, _, size in r] for s, r in listing.items()},
            digests,
        ),
    )


def _to_json(index: FolderIndex, listing: dict) -> dict:
    sizes = {p: size for rows in listing.values() for p, _, size in rows}
    facts = {}
    for split in index.files:
        for i, path in enumerate(index.files[split]):
            h, w = (int(v) for v in index.sizes[split][i])
            facts[path] = [
                h,
                w,
                bool(index.gray[split][i]),
                index.bad.get(path),
                sizes[path],
                index.digests[split][i],
            ]
    return {
        "format": _INDEX_FORMAT,
        "version": _INDEX_VERSION,
        "listing": index.listing,
        "facts": facts,
    }


_MEMO: dict = {}


def build(root: str, cache: str | None = None) -> FolderIndex:
    """The checked index of the folder dataset at `root`.

    Args:
        root: the folder holding `train/` and `test/` (or `val/`).
        cache: a JSON file for the index (e.g. in a run's model_dir):
            reused when the folder's listing is the one it was made from,
            written when absent. None: no file.

    Raises:
        FolderError: a layout problem (see `list_files`).
        FolderChangedError: `cache` was made from a different listing.
    """
    class_names, test_folder, listing = list_files(root)
    digest = listing_digest(listing)
    cached = _read_cache(cache) if cache else None
    if cached is not None and cached["listing"] != digest:
        raise FolderChangedError(_changed_message(root, cache, cached, listing))
    if cached is not None:
        facts = {
            p: (*f[:4], f[5] if len(f) > 5 else None)
            for p, f in cached["facts"].items()
        }
    elif (root, digest) in _MEMO:
        facts = _MEMO[(root, digest)]
    else:
        found = _inspect_all(root, listing)
        facts = {os.path.relpath(p, root): f for p, f in found.items()}
    _MEMO[(root, digest)] = facts
    index = _index_from(root, class_names, test_folder, listing, facts, digest)
    if cache and cached is None:
        _write_cache(cache, _to_json(index, listing))
    return index


def _read_cache(path: str) -> dict | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a damaged cache is rebuilt
    if (
        data.get("format") != _INDEX_FORMAT
        or data.get("version") != _INDEX_VERSION
    ):
        return None
    return data


def _write_cache(path: str, data: dict) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = f"{path}.partial-{os.getpid()}"
    with open(partial, "w") as f:
        json.dump(data, f)
    os.replace(partial, path)


def _changed_message(root, cache, cached, listing) -> str:
    now = {p: size for rows in listing.values() for p, _, size in rows}
    before = {p: f[4] for p, f in cached["facts"].items()}
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    resized = sorted(p for p in now if p in before and now[p] != before[p])
    example = (added or removed or resized or ["(labels moved)"])[0]
    return (
        f"{_describe(root)} changed since {cache} indexed it for this run "
        f"({len(added)} files added, {len(removed)} removed, {len(resized)} "
        f"changed, e.g. {example}): the run was trained on other data. "
        "Restore the folder, or train in a new --model_dir."
    )


def bad_files_message(index: FolderIndex, limit: int = 3) -> str:
    """One line naming the unreadable files and what to do."""
    items = sorted(index.bad.items())
    named = "; ".join(
        f"{os.path.join(index.root, p)} ({reason})"
        for p, reason in items[:limit]
    )
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return (
        f"{_describe(index.root)} has {len(items)} unreadable image file"
        f"{'s' if len(items) != 1 else ''}: {named}{more}. Fix or remove "
        "them, or pass --skip_bad_images (skip_bad_images=True) to train "
        "without them."
    )
