"""One writer per model_dir: a lease that its holder keeps fresh.

A run (only the chief of a multi-worker one) takes the lease of its
model_dir before it writes: a file `.lock.<generation>` there naming its
holder (host, pid, a random token) and its last refresh, rewritten every
`timeout / 4` s by a daemon thread, the heartbeat. Lower generations are
left-overs the next taker deletes.

Another process takes it over when it is released (marked, so generations
only grow), stale (not refreshed for `timeout` s on any host: clocks must
agree well within it), left by a gone process of this machine (same host,
boot and pid namespace; a pid not running, or the taker's own) or its own
(same token); else `ModelDirBusyError` names the holder and what to do.
A takeover creates generation g + 1 exclusively: locally by hard-linking a
complete file into place (atomic); through `tf.io.gfile` (`gs://`) by
checking it is absent, writing, waiting `settle` s and reading it back. A
heartbeat that finds its lease taken over calls `on_lost` (default: one
error line and `os._exit(1)`): the run writes nothing more there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import threading
import time
import uuid

from absl import logging

from la_keras.runs.errors import RunError
from la_keras.runs.file_store import for_path

LEASE_PREFIX = ".lock."
DEFAULT_TIMEOUT = 300.0
LOST_EXIT_CODE = 1  # the exit status of `exit_on_lost`
_ATTEMPTS = 5
_ACTIVE: set = set()  # (token, model_dir) of the leases this process holds
_ACTIVE_GUARD = threading.Lock()
_TOKENS: dict = {}  # pid -> random token (a forked child gets its own)


class ModelDirBusyError(RunError):
    """Another live process holds the model_dir."""


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds or wants a lease: `token` is random per process, `machine`
    (host, boot and pid namespace) where a pid names one process."""

    host: str
    pid: int
    token: str
    machine: str

    @classmethod
    def this_process(cls) -> Holder:
        pid, host = os.getpid(), socket.gethostname()
        token = _TOKENS.setdefault(pid, uuid.uuid4().hex)
        boot = namespace = ""  # not Linux: the host name alone
        with contextlib.suppress(OSError):
            with open("/proc/sys/kernel/random/boot_id") as f:
                boot = f.read().strip()
        with contextlib.suppress(OSError):
            namespace = os.readlink("/proc/self/ns/pid")
        return cls(host, pid, token, f"{host}/{boot}/{namespace}")


def lease_path(model_dir: str, generation: int) -> str:
    name = f"{LEASE_PREFIX}{generation:08d}"
    if "://" in model_dir:
        return f"{model_dir.rstrip('/')}/{name}"
    return os.path.join(model_dir, name)


def generations(files, model_dir: str) -> list:
    """The lease generations present in `model_dir`, ascending."""
    found = [
        n[len(LEASE_PREFIX) :] for n in files.names(model_dir, LEASE_PREFIX)
    ]
    return sorted(int(g) for g in found if g.isdecimal())


def lease_record(holder: Holder, generation: int, now: float, **extra):
    """The JSON record of a lease of `holder` refreshed at `now`."""
    return dict(
        dataclasses.asdict(holder),
        generation=generation,
        refreshed=now,
        **extra,
    )


def read_lease(files, path: str):
    """The lease record at `path`: None if absent, {} if not a lease."""
    text = files.read(path)
    if text is None:
        return None
    try:
        record = json.loads(text)
        valid = isinstance(record.get("refreshed"), (int, float))
    except (ValueError, AttributeError):  # not JSON, or not an object
        return {}
    return record if valid else {}


def takeover_reason(record: dict, me: Holder, now: float, timeout: float):
    """Why `me` may take the lease of `record` over; None if it may not."""
    if not record:
        return "not a readable lease"
    if record.get("released"):
        return "released"
    if record.get("token") == me.token:
        return "this process's own lease"
    pid = record.get("pid")
    if record.get("machine") == me.machine and isinstance(pid, int):
        if pid == me.pid:
            return f"left by an earlier process with this pid ({pid})"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"pid {pid} is no longer running"
        except (PermissionError, OverflowError):
            pass  # alive (another user's), or not a pid to judge by
    age = now - record["refreshed"]
    if age > timeout:
        return f"not refreshed for {age:.0f} s (--lock_timeout={timeout:g})"
    return None


def acquire(
    model_dir: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    holder: Holder | None = None,
    clock=time.time,
    files=None,
    on_lost=None,
    heartbeat: bool = True,
) -> Lease:
    """Takes the lease of `model_dir` (a folder, or a `gs://`-style path).

    `timeout`: seconds without refresh after which a lease is stale;
    `holder` (default: this process), `clock` and `files` (a store, default
    `for_path(model_dir)`) are for tests; `on_lost(lease, reason)`: called
    by a heartbeat that finds the lease taken over (default
    `exit_on_lost`). Raises `ModelDirBusyError` if a live holder has it.
    """
    holder = holder or Holder.this_process()
    files = files or for_path(model_dir, settle=min(2.0, timeout / 8))
    lease = Lease(files, model_dir, 0, holder, timeout, clock, on_lost)
    with _ACTIVE_GUARD:
        if lease.key in _ACTIVE:
            raise ModelDirBusyError(
                f"--model_dir={model_dir} is already in use by this process."
            )
        _ACTIVE.add(lease.key)
    try:
        lease.take()
    except BaseException:
        with _ACTIVE_GUARD:
            _ACTIVE.discard(lease.key)
        raise
    if heartbeat:
        lease.start()
    return lease


def exit_on_lost(lease: Lease, reason: str) -> None:
    """The default `on_lost`: one error line, then exit without cleanup."""
    message = (
        f"The lease of --model_dir={lease.model_dir} was taken over "
        f"({reason}): stopping this run at once so that it writes nothing "
        "more there."
    )
    logging.error(message)
    print(message, file=sys.stderr, flush=True)
    os._exit(LOST_EXIT_CODE)


class Lease:
    """A lease held by this process; `release()` ends it. Its heartbeat beats
    every `timeout / 4` seconds: it goes stale after four missed beats."""

    def __init__(
        self, files, model_dir, generation, holder, timeout, clock, on_lost
    ):
        self.files, self.model_dir, self.holder = files, model_dir, holder
        self.generation, self.timeout, self.clock = generation, timeout, clock
        self.on_lost = on_lost or exit_on_lost
        self.lost = None  # the reason, once taken over
        self._stop, self._thread = threading.Event(), None
        if "://" not in model_dir:
            model_dir = os.path.realpath(model_dir)
        self.key = (holder.token, model_dir)  # in `_ACTIVE` while held

    @property
    def path(self) -> str:
        return lease_path(self.model_dir, self.generation)

    def text(self, **extra) -> str:
        """The JSON of this lease refreshed now."""
        record = lease_record(self.holder, self.generation, self.clock())
        return json.dumps(dict(record, **extra))

    def take(self) -> None:
        """Creates the next generation's file: this lease's generation."""
        files, model_dir, clock = self.files, self.model_dir, self.clock
        for _ in range(_ATTEMPTS):
            found = generations(files, model_dir)
            top = found[-1] if found else 0
            reason = None
            if top:
                path = lease_path(model_dir, top)
                record = read_lease(files, path)
                if record == {}:
                    time.sleep(0.2)  # maybe being written: one more look
                    record = read_lease(files, path)
                if record is None:
                    continue  # deleted by a taker since listed
                reason = takeover_reason(
                    record, self.holder, clock(), self.timeout
                )
                if reason is None:
                    raise self._busy(path, record, clock())
            self.generation = top + 1
            if not files.create(self.path, self.text()):
                continue  # another taker won this generation: look at it
            if max(generations(files, model_dir), default=0) > self.generation:
                # Came late: this generation had been taken and cleaned up.
                files.remove(self.path)
                continue
            for old in found:
                files.remove(lease_path(model_dir, old))
            if reason and reason != "released":
                logging.warning(
                    "Took over the lease of %s (%s).", model_dir, reason
                )
            return
        raise ModelDirBusyError(
            f"Could not take the lease of --model_dir={model_dir}: it changed "
            f"hands {_ATTEMPTS} times while trying. Try again."
        )

    def _busy(self, path, record, now) -> ModelDirBusyError:
        age, timeout = max(0.0, now - record["refreshed"]), self.timeout
        return ModelDirBusyError(
            f"--model_dir={self.model_dir} is in use by pid "
            f"{record.get('pid')} on host {record.get('host')} (lease {path}, "
            f"refreshed {age:.0f} s ago). Wait for it to finish, use another "
            "--model_dir, or, if that process is gone, rerun in "
            f"{max(0.0, timeout - age):.0f} s, when its lease is stale "
            f"(--lock_timeout={timeout:g}), or delete {path} to take it now."
        )

    def check(self):
        """None while the lease is this holder's; else why it is not."""
        top = max(generations(self.files, self.model_dir), default=0)
        if top > self.generation:
            record = read_lease(self.files, lease_path(self.model_dir, top))
            who = "another process"
            if record:
                who = f"pid {record.get('pid')} on host {record.get('host')}"
            return f"generation {top} taken by {who}"
        record = read_lease(self.files, self.path)
        if record is None:
            return f"{self.path} was deleted"
        if record.get("token") != self.holder.token:
            return f"{self.path} was rewritten by pid {record.get('pid')}"
        return None

    def start(self) -> None:
        """Starts the heartbeat: it refreshes the lease until released."""
        self._thread = threading.Thread(
            target=self._beat, name=f"lease {self.path}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.timeout / 4):
            try:
                self.lost = self.lost or self.check()
                if self.lost:
                    return self.on_lost(self, self.lost)
                self.files.write(self.path, self.text())
            except Exception as e:  # noqa: BLE001 - a late beat, not a loss
                logging.warning("Could not refresh %s: %s", self.path, e)

    def release(self) -> None:
        """Stops the heartbeat; marks the lease released if still ours."""
        self._stop.set()
        if self._thread not in (None, threading.current_thread()):
            self._thread.join()
        with _ACTIVE_GUARD:
            _ACTIVE.discard(self.key)
        text = self.text(released=True)
        try:
            if self.lost is None and self.check() is None:
                self.files.write(self.path, text)
        except Exception as e:  # noqa: BLE001 - never hide the run's outcome
            logging.warning(
                "Could not mark %s released (%s): it goes stale after "
                "--lock_timeout.", self.path, e,
            )  # fmt: skip


@contextlib.contextmanager
def held(model_dir, enabled=True, timeout=DEFAULT_TIMEOUT, on_lost=None):
    """`with held(model_dir):` the lease for the block (no-op if disabled)."""
    if not enabled:
        yield None
        return
    lease = acquire(model_dir, timeout, on_lost=on_lost)
    try:
        yield lease
    finally:
        lease.release()
