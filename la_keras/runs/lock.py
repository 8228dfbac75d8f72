"""One writer per model_dir: a lease that its holder keeps fresh.

`launch.train` takes the lease of `--model_dir` before it writes anything
and holds it for the whole run (in a multi-worker run only the chief). The
lease is a file `<model_dir>/.lock.<generation>` naming its holder (host,
pid, a random token of the holding process) and when it was last refreshed;
the highest generation is the lease, lower ones are left-overs that the next
taker deletes. A daemon thread (the heartbeat) rewrites it every
`timeout / 4` seconds, so the training loop does nothing for it.

Another process takes the lease over when it is
- released: the holder's `with` block ended (the file stays, marked
  released, so that generations only grow);
- stale: not refreshed for `timeout` seconds (`--lock_timeout`), whatever
  host holds it: a preempted job restarted on another machine waits at most
  that long. Ages compare the holder's wall clock with the taker's, so hosts
  are assumed to keep their clocks in sync (NTP) to well within `timeout`;
- left by a process of this machine that is gone: same host, boot and pid
  namespace, and a pid that is not running or is the taker's own (the
  previous life of a container's PID 1): taken at once;
- this process's own (the same token).
Otherwise `ModelDirBusyError` names the holder, when it last refreshed the
lease and what to do.

A takeover creates generation g + 1 exclusively, so of several racing takers
exactly one wins; the others then find a fresh lease and are refused. On a
local (POSIX) filesystem the file is written under a unique name and
hard-linked into place, which fails if it exists: atomic, and readers never
see half a lease. `tf.io.gfile` (a `gs://` model_dir; TensorFlow is imported
only then) offers no exclusive create, so there it is emulated: check that
the file is absent, write it (an object upload is atomic), wait `settle`
seconds and read it back; the taker whose token is there wins. Two takers
both win only if one's write lands more than `settle` seconds after the
other checked; the heartbeat of the one overwritten then finds a token not
its own and stops that run within `timeout / 4` seconds.

A heartbeat that finds its lease taken over (a higher generation, or its
file gone or rewritten by another token) calls `on_lost`; the default logs
an error and ends the process at once with status 1 (`os._exit`): the
model_dir is someone else's now, and neither a checkpoint nor a final
export of this run may be written into it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import sys
import threading
import time
import uuid

from absl import logging

from la_keras.runs import lease_files
from la_keras.runs.errors import RunError

LEASE_PREFIX = ".lock."
DEFAULT_TIMEOUT = 300.0
# Exit status of a run whose lease was taken over (see `exit_on_lost`).
LOST_EXIT_CODE = 1
_ATTEMPTS = 5
_PATTERN = re.compile(re.escape(LEASE_PREFIX) + r"(\d+)$")
# Model dirs whose lease a `Lease` of this process holds right now.
_ACTIVE: set = set()
_ACTIVE_GUARD = threading.Lock()


class ModelDirBusyError(RunError):
    """Another live process holds the model_dir."""


def _machine() -> str:
    """Host name, boot and pid namespace: where a pid names one process."""

    boot = namespace = ""  # not Linux: the host name alone
    with contextlib.suppress(OSError):
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    with contextlib.suppress(OSError):
        namespace = os.readlink("/proc/self/ns/pid")
    return f"{socket.gethostname()}/{boot}/{namespace}"


_TOKEN = {"pid": None, "token": ""}


def _process_token() -> str:
    """A random token of this process (a forked child gets its own)."""
    if _TOKEN["pid"] != os.getpid():
        _TOKEN.update(pid=os.getpid(), token=uuid.uuid4().hex)
    return _TOKEN["token"]


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds or wants a lease.

    Args:
        host: the host name, for messages.
        pid: the process id.
        token: random per process: what "this process" means.
        machine: host, boot and pid namespace; pids are compared (and
            checked for liveness) only between leases of one machine.
    """

    host: str
    pid: int
    token: str
    machine: str

    @classmethod
    def this_process(cls) -> Holder:
        return cls(
            socket.gethostname(), os.getpid(), _process_token(), _machine()
        )


def lease_path(model_dir: str, generation: int) -> str:
    return lease_files.join(model_dir, f"{LEASE_PREFIX}{generation:08d}")


def generations(files, model_dir: str) -> list:
    """The lease generations present in `model_dir`, ascending."""
    names = files.names(model_dir, LEASE_PREFIX)
    found = (_PATTERN.match(name) for name in names)
    return sorted(int(m.group(1)) for m in found if m)


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
    except ValueError:
        return {}
    valid = isinstance(record, dict) and isinstance(
        record.get("refreshed"), (int, float)
    )
    return record if valid else {}


def _active_key(holder: Holder, model_dir: str) -> tuple:
    if "://" not in model_dir:
        model_dir = os.path.realpath(model_dir)
    return holder.token, model_dir


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


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
        if not _alive(pid):
            return f"pid {pid} is no longer running"
    age = now - record["refreshed"]
    if age > timeout:
        return f"not refreshed for {age:.0f} s (--lock_timeout={timeout:g})"
    return None


def _busy(model_dir, path, record, now, timeout) -> ModelDirBusyError:
    age = max(0.0, now - record["refreshed"])
    return ModelDirBusyError(
        f"--model_dir={model_dir} is in use by pid {record.get('pid')} on "
        f"host {record.get('host')} (lease {path}, refreshed {age:.0f} s "
        f"ago). Wait for it to finish, use another --model_dir, or, if that "
        f"process is gone, rerun in {max(0.0, timeout - age):.0f} s, when "
        f"its lease is stale (--lock_timeout={timeout:g}), or delete {path} "
        "to take it now."
    )


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
    """Takes the lease of `model_dir` and starts its heartbeat.

    Args:
        model_dir: a local folder or a `gs://`-style path (`tf.io.gfile`).
        timeout: seconds without refresh after which a lease is stale.
        holder: who takes it (default: this process).
        clock: wall-clock seconds (`time.time`).
        files: a `lease_files` store (default: the one for `model_dir`).
        on_lost: called with (lease, reason) by a heartbeat that finds the
            lease taken over (default `exit_on_lost`).
        heartbeat: start the heartbeat thread.

    Raises:
        ModelDirBusyError: a live holder keeps the lease fresh.
    """
    holder = holder or Holder.this_process()
    if files is None:
        files = lease_files.for_path(model_dir, settle=min(2.0, timeout / 8))
    key = _active_key(holder, model_dir)
    with _ACTIVE_GUARD:
        if key in _ACTIVE:
            raise ModelDirBusyError(
                f"--model_dir={model_dir} is already in use by this process."
            )
        _ACTIVE.add(key)
    try:
        generation = _take(model_dir, timeout, holder, clock, files)
    except BaseException:
        with _ACTIVE_GUARD:
            _ACTIVE.discard(key)
        raise
    lease = Lease(files, model_dir, generation, holder, timeout, clock, on_lost)
    if heartbeat:
        lease.start()
    return lease


def _take(model_dir, timeout, holder, clock, files) -> int:
    """Creates the next generation's lease; returns its generation."""
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
                continue  # deleted by a taker between listing and reading
            reason = takeover_reason(record, holder, clock(), timeout)
            if reason is None:
                raise _busy(model_dir, path, record, clock(), timeout)
        generation = top + 1
        text = json.dumps(lease_record(holder, generation, clock()))
        if not files.create(lease_path(model_dir, generation), text):
            continue  # another taker won this generation: look at its lease
        if max(generations(files, model_dir), default=0) > generation:
            # Came late: this generation had been taken and cleaned up.
            files.remove(lease_path(model_dir, generation))
            continue
        for old in found:
            files.remove(lease_path(model_dir, old))
        if reason and reason != "released":
            logging.warning(
                "Took over the lease of %s (%s).", model_dir, reason
            )
        return generation
    raise ModelDirBusyError(
        f"Could not take the lease of --model_dir={model_dir}: it changed "
        f"hands {_ATTEMPTS} times while trying. Try again."
    )


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
    """A lease held by this process; `release()` ends it.

    The heartbeat thread calls `refresh()` every `timeout / 4` seconds: the
    lease is stale only after four beats in a row are missed.
    """

    def __init__(
        self, files, model_dir, generation, holder, timeout, clock, on_lost
    ):
        self.files = files
        self.model_dir = model_dir
        self.generation = generation
        self.holder = holder
        self.timeout = timeout
        self.clock = clock
        self.on_lost = on_lost or exit_on_lost
        self.lost = None  # the reason, once taken over
        self._stop = threading.Event()
        self._thread = None

    @property
    def path(self) -> str:
        return lease_path(self.model_dir, self.generation)

    def check(self):
        """None while the lease is this holder's; else why it is not."""
        newer = [
            g
            for g in generations(self.files, self.model_dir)
            if g > self.generation
        ]
        if newer:
            newest = lease_path(self.model_dir, newer[-1])
            record = read_lease(self.files, newest)
            who = (
                f"pid {record.get('pid')} on host {record.get('host')}"
                if record
                else "another process"
            )
            return f"generation {newer[-1]} taken by {who}"
        record = read_lease(self.files, self.path)
        if record is None:
            return f"{self.path} was deleted"
        if record.get("token") != self.holder.token:
            return f"{self.path} was rewritten by pid {record.get('pid')}"
        return None

    def refresh(self) -> bool:
        """Rewrites the lease with the time now; False if it was lost."""
        if self.lost is None:
            self.lost = self.check()
        if self.lost is not None:
            return False
        now = self.clock()
        text = json.dumps(lease_record(self.holder, self.generation, now))
        self.files.write(self.path, text)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._beat, name=f"lease {self.path}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.timeout / 4):
            try:
                if not self.refresh():
                    self.on_lost(self, self.lost)
                    return
            except Exception as e:  # noqa: BLE001 - a late beat, not a loss
                logging.warning("Could not refresh %s: %s", self.path, e)

    def release(self) -> None:
        """Stops the heartbeat; marks the lease released if still ours."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with _ACTIVE_GUARD:
            _ACTIVE.discard(_active_key(self.holder, self.model_dir))
        now = self.clock()
        text = json.dumps(
            lease_record(self.holder, self.generation, now, released=True)
        )
        try:
            if self.lost is None and self.check() is None:
                self.files.write(self.path, text)
        except Exception as e:  # noqa: BLE001 - never hide the run's outcome
            logging.warning(
                "Could not mark %s released (%s): it goes stale after "
                "--lock_timeout.",
                self.path, e,
            )  # fmt: skip


@contextlib.contextmanager
def held(
    model_dir: str,
    enabled: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    on_lost=None,
):
    """`with held(model_dir):` the lease for the block (no-op if disabled)."""
    if not enabled:
        yield None
        return
    lease = acquire(model_dir, timeout, on_lost=on_lost)
    try:
        yield lease
    finally:
        lease.release()
