"""One writer per model_dir: a lock file naming its holder.

`launch.train` takes `<model_dir>/.lock` before it writes anything, and a
second training on the same model_dir refuses with the holder's host and
pid. A lock left by a process that is gone (same host, pid not running) is
taken over; a lock of another host cannot be checked, so the message says
how to clear it by hand. In a multi-worker run only the chief takes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

from absl import app
from absl import logging

LOCK_NAME = ".lock"


class ModelDirBusyError(app.UsageError):
    """Another live process holds the model_dir."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _create(path: str, record: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    return True


def acquire(model_dir: str) -> str:
    """Takes the lock of `model_dir`; returns its path.

    Raises:
        ModelDirBusyError: a live process (or one on another host) holds it.
    """
    path = os.path.join(model_dir, LOCK_NAME)
    host = socket.gethostname()
    record = {"host": host, "pid": os.getpid(), "since": time.time()}
    for _ in range(3):
        if _create(path, record):
            return path
        holder = _read(path)
        pid, holder_host = holder.get("pid"), holder.get("host")
        if holder_host == host and isinstance(pid, int) and not _alive(pid):
            logging.warning(
                "Taking over the stale lock %s of pid %d (no longer running).",
                path, pid,
            )  # fmt: skip
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        if not holder:
            # Being written right now, or unreadable: look again shortly.
            time.sleep(0.2)
            if not _read(path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
            continue
        raise ModelDirBusyError(
            f"--model_dir={model_dir} is in use by pid {pid} on host "
            f"{holder_host} (lock {path}). Wait for it, use another "
            f"--model_dir, or, if that process is gone, delete {path}."
        )
    raise ModelDirBusyError(f"Could not take the lock {path}; try again.")


def release(path: str) -> None:
    """Drops the lock if this process still holds it."""
    holder = _read(path)
    if (
        holder.get("pid") == os.getpid()
        and holder.get("host") == socket.gethostname()
    ):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


@contextlib.contextmanager
def held(model_dir: str, enabled: bool = True):
    """`with held(model_dir):` the lock for the block (no-op if disabled)."""
    if not enabled:
        yield None
        return
    path = acquire(model_dir)
    try:
        yield path
    finally:
        release(path)
