"""A prepared file's archive: opening it, its metadata and its checksum.

`la_keras.datasets.prepared` writes and reads the arrays; this module opens
the zip archive so that any read or parse error names the file
(`DamagedFileError`), reads and checks `metadata.json` (`read_metadata`),
and hashes it (`checksum`, the identity of a file's contents). Numpy-free:
the standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import lzma
import os
import struct
import zipfile
import zlib

FORMAT = "la_keras.prepared"
FORMAT_VERSION = 1
# The archive member that holds the metadata.
METADATA = "metadata.json"


class DamagedFileError(ValueError):
    """A prepared file that cannot be read back as it was written."""


def damaged(path: str, what: str) -> DamagedFileError:
    what = " ".join(str(what).split())
    return DamagedFileError(
        f"Prepared dataset {path} is damaged: {what}. Write it again with "
        "`python -m launch.prepare`."
    )


# What a damaged archive raises while it is opened, decompressed or parsed:
# a flipped byte can land in the zip headers (BadZipFile, KeyError for a
# member name, NotImplementedError for a compression method, RuntimeError for
# a set encryption flag, struct.error, OSError for a seek outside the file),
# the LZMA streams (LZMAError, EOFError) or a member's content (ValueError
# from json or the .npy header).
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    lzma.LZMAError,
    zlib.error,
    struct.error,
    EOFError,
    KeyError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OSError,
)


@contextlib.contextmanager
def open_archive(path: str, what: str = ""):
    """Opens a prepared file; a read or parse error names the file.

    Args:
        path: the file.
        what: what is being read, for the message (e.g. "metadata.json").
    """
    try:
        with zipfile.ZipFile(path) as archive:
            yield archive
    except (DamagedFileError, FileNotFoundError, PermissionError):
        raise
    except _READ_ERRORS as e:
        detail = f"{type(e).__name__}: {e}"
        if what:
            detail = f"{what} unreadable ({detail})"
        raise damaged(path, detail) from e


def read_metadata(path: str) -> dict:
    """The metadata of a prepared file, without reading its arrays."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Prepared dataset {path} not found: write it with "
            "`python -m launch.prepare --dataset=NAME --output=PATH`."
        )
    with open_archive(path, METADATA) as archive:
        metadata = json.loads(archive.read(METADATA))
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise damaged(path, "not a la_keras prepared dataset")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"Prepared dataset {path} has format version "
            f"{metadata.get('format_version')}; this la_keras reads version "
            f"{FORMAT_VERSION}. Prepare it again with this version."
        )
    return metadata


def checksum(path: str) -> str:
    """The SHA-256 (hex) of a prepared file's metadata.json member.

    The metadata holds every array's SHA-256 and where the data came from,
    so this identifies the file's contents wherever the file lies (a run
    moved to another machine recognises its data by it) without reading
    the arrays. `read` verifies the arrays against the metadata.
    """
    read_metadata(path)  # a clear error for a missing or foreign file
    with open_archive(path, METADATA) as archive:
        return hashlib.sha256(archive.read(METADATA)).hexdigest()
