"""The model_dir lease (`la_keras.runs.lock`): takeover, refusal, races, heartbeat.

`LeaseTest` runs on a local folder and again (`GFileLeaseTest`) on
TensorFlow's in-memory `ram://` filesystem through `tf.io.gfile`, the code
path of a `gs://` model_dir. `RescheduledRunTest` kills a training on
"another host" and restarts it here.
"""

import glob
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from la_keras.runs import file_store
from la_keras.runs import lock
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS
TIMEOUT = 2.0


def _other(host="elsewhere") -> lock.Holder:
    """A process of another machine."""
    return lock.Holder(host, 4242, uuid.uuid4().hex, f"{host}/boot/ns")


class _SlowReads:
    """A store whose reads take `delay` seconds: every racer reads the
    stale lease before any of them creates the next generation."""

    def __init__(self, store, delay):
        self.store, self.delay = store, delay

    def __getattr__(self, name):
        return getattr(self.store, name)

    def read(self, path):
        text = self.store.read(path)
        time.sleep(self.delay)
        return text


class LeaseTest(TestCase):
    atomic_create = True

    def folder(self) -> str:
        path = os.path.join(self.get_temp_dir(), uuid.uuid4().hex)
        os.makedirs(path)
        return path

    def store(self):
        return file_store.LocalStore()

    def names(self, folder):
        return sorted(self.store().names(folder, lock.LEASE_PREFIX))

    def acquire(self, folder, **kwargs):
        kwargs.setdefault("files", self.store())
        kwargs.setdefault("heartbeat", False)
        return lock.acquire(folder, TIMEOUT, **kwargs)

    def test_stale_lease_of_another_host_is_taken_over(self):
        folder = self.folder()
        helpers.write_lease(folder, host="elsewhere", pid=4242, age=10)
        with self.assertLogs(level="WARNING") as logs:
            lease = self.acquire(folder)
        self.assertIn("not refreshed for 10 s", logs.output[0])
        self.assertEqual(lease.generation, 2)
        self.assertEqual(self.names(folder), [".lock.00000002"])
        record = lock.read_lease(self.store(), lease.path)
        self.assertEqual(record["pid"], os.getpid())
        lease.release()

    def test_fresh_lease_of_another_host_is_refused_until_stale(self):
        folder = self.folder()
        path = helpers.write_lease(folder, host="elsewhere", pid=4242, age=1)
        before = self.store().read(path)
        now = time.time()
        with self.assertRaisesRegex(
            lock.ModelDirBusyError,
            r"in use by pid 4242 on host elsewhere \(lease .*\.lock\.00000001"
            r", refreshed 1 s ago\).* rerun in 1 s",
        ):
            self.acquire(folder, clock=lambda: now)
        self.assertEqual(self.store().read(path), before)
        # The same lease, TIMEOUT seconds later by the taker's clock.
        lease = self.acquire(folder, clock=lambda: now + TIMEOUT)
        self.assertEqual(lease.generation, 2)
        lease.release()

    def test_lease_of_this_pid_is_not_refused(self):
        # Written by an earlier process with this pid on this machine (a
        # container's PID 1 before a crash): fresh, and still not refused.
        folder = self.folder()
        helpers.write_lease(folder, age=0)
        lease = self.acquire(folder)
        self.assertEqual(lease.generation, 2)
        lease.release()

    def test_live_process_of_this_machine_is_refused(self):
        folder = self.folder()
        with helpers.lock_held_by_live_process(folder) as pid:
            with self.assertRaisesRegex(
                lock.ModelDirBusyError, f"in use by pid {pid} on host"
            ):
                self.acquire(folder)

    def test_released_lease_is_taken_at_once(self):
        folder = self.folder()
        first = self.acquire(folder, holder=_other())
        first.release()
        self.assertTrue(lock.read_lease(self.store(), first.path)["released"])
        lease = self.acquire(folder)
        self.assertEqual(self.names(folder), [".lock.00000002"])
        lease.release()

    def test_racing_takers_one_wins(self):
        folder = self.folder()
        helpers.write_lease(folder, host="dead", pid=4242, age=10)
        takers = [_other(f"host{i}") for i in range(6)]
        results = {}
        start = threading.Barrier(len(takers))

        def take(holder):
            start.wait()
            try:
                results[holder.host] = self.acquire(
                    folder, holder=holder, files=_SlowReads(self.store(), 0.3)
                )
            except lock.ModelDirBusyError as e:
                results[holder.host] = e

        threads = [threading.Thread(target=take, args=(h,)) for h in takers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        winners = [r for r in results.values() if isinstance(r, lock.Lease)]
        self.assertLen(results, len(takers))
        self.assertLen(winners, 1, results)
        (winner,) = winners
        self.assertEqual(self.names(folder), [".lock.00000002"])
        self.assertIsNone(winner.check())  # the lease holds its token
        if self.atomic_create:  # else a loser may name another loser that
            # had written the file before the winner overwrote it
            for result in results.values():
                if result is not winner:
                    self.assertIn(f"host {winner.holder.host} ", str(result))

    def test_heartbeat_keeps_the_lease_fresh(self):
        folder = self.folder()
        with lock.held(folder, timeout=1.0) as lease:
            time.sleep(2.5)  # 2.5 timeouts
            with self.assertRaisesRegex(
                lock.ModelDirBusyError, f"in use by pid {os.getpid()}"
            ):
                lock.acquire(folder, 1.0, holder=_other(), heartbeat=False)
            record = lock.read_lease(self.store(), lease.path)
            self.assertLess(time.time() - record["refreshed"], 1.0)
        self.assertTrue(lock.read_lease(self.store(), lease.path)["released"])

    def test_heartbeat_of_a_taken_over_lease_stops_the_run(self):
        folder = self.folder()
        lost = []
        stopped = threading.Event()

        def on_lost(lease, reason):
            lost.append(reason)
            stopped.set()

        lease = lock.acquire(folder, 1.0, files=self.store(), on_lost=on_lost)
        # A taker whose clock runs ahead: to it the lease looks stale.
        other = _other()
        taken = lock.acquire(
            folder,
            1.0,
            holder=other,
            clock=lambda: time.time() + 10,
            files=self.store(),
            heartbeat=False,
        )
        self.assertTrue(stopped.wait(timeout=10))
        self.assertRegex(lost[0], "generation 2 taken by pid 4242 on host")
        lease.release()  # leaves the new holder's lease alone
        record = lock.read_lease(self.store(), taken.path)
        self.assertEqual(record["token"], other.token)
        self.assertNotIn("released", record)


class GFileLeaseTest(LeaseTest):
    """The same through `tf.io.gfile` on `ram://`, as for `gs://`."""

    atomic_create = False

    def folder(self) -> str:
        path = f"ram://lease-test/{uuid.uuid4().hex}"
        tf.io.gfile.makedirs(path)
        return path

    def store(self):
        return file_store.GFileStore(settle=1.0)

    def test_default_store_of_a_scheme_path_is_gfile(self):
        self.assertIsInstance(
            file_store.for_path("gs://bucket/run"), file_store.GFileStore
        )
        self.assertEqual(
            lock.lease_path("gs://bucket/run/", 3),
            "gs://bucket/run/.lock.00000003",
        )


_TAKER = textwrap.dedent(
    """
    import os, sys, time

    sys.modules["tensorflow"] = None  # quick to start; not needed here
    from la_keras.runs import file_store, lock

    folder, go = sys.argv[1], sys.argv[2]
    while not os.path.exists(go):
        time.sleep(0.01)

    class SlowReads(file_store.LocalStore):
        def read(self, path):
            text = super().read(path)
            time.sleep(0.5)
            return text

    try:
        lease = lock.acquire(folder, 60, files=SlowReads(), heartbeat=False)
    except lock.ModelDirBusyError:
        print("refused")
    else:
        print("won")
        time.sleep(3)  # alive while the others look at its lease
    """
)


class ProcessRaceTest(TestCase):
    def test_racing_processes_one_wins(self):
        folder = os.path.join(self.get_temp_dir(), "race")
        os.makedirs(folder)
        helpers.write_lease(folder, host="dead", pid=4242, age=100)
        go = os.path.join(self.get_temp_dir(), "go")
        takers = [
            subprocess.Popen(
                [sys.executable, "-c", _TAKER, folder, go],
                stdout=subprocess.PIPE,
                text=True,
                env=helpers.env(),
                cwd=helpers.REPO,
            )
            for _ in range(4)
        ]
        time.sleep(1.0)  # all started and waiting
        open(go, "w").close()
        outputs = sorted(p.communicate(timeout=60)[0].strip() for p in takers)
        self.assertEqual(outputs, ["refused"] * 3 + ["won"])


_HOLDER = textwrap.dedent(
    """
    import sys, time

    sys.modules["tensorflow"] = None  # quick to start; not needed here
    from la_keras.runs import lock

    with lock.held(sys.argv[1], timeout=1.0):
        print("held", flush=True)
        time.sleep(60)  # a training that goes on writing
    """
)


class LostLeaseTest(TestCase):
    def test_run_whose_lease_is_taken_over_exits(self):
        folder = self.get_temp_dir()
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, folder],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=helpers.env(),
            cwd=helpers.REPO,
        )
        try:
            self.assertEqual(holder.stdout.readline().strip(), "held")
            # A taker whose clock runs ahead: to it the lease looks stale.
            lock.acquire(
                folder,
                1.0,
                holder=_other(),
                clock=lambda: time.time() + 10,
                heartbeat=False,
            )
            returncode = holder.wait(timeout=30)
        finally:
            if holder.poll() is None:
                holder.kill()
            holder.wait()
        stderr = holder.stderr.read()
        holder.stdout.close()
        holder.stderr.close()
        self.assertEqual(returncode, lock.LOST_EXIT_CODE, stderr)
        self.assertIn("was taken over (generation 2 taken by pid 4242", stderr)


_NO_TENSORFLOW = textwrap.dedent(
    """
    import sys

    sys.modules["tensorflow"] = None  # as if not installed: imports fail
    from la_keras.runs import lock

    with lock.held(sys.argv[1], timeout=1.0):
        pass
    assert not [m for m in sys.modules if m.startswith("tensorflow.")]
    """
)


class NoTensorFlowTest(TestCase):
    def test_local_lease_without_tensorflow(self):
        folder = self.get_temp_dir()
        subprocess.run(
            [sys.executable, "-c", _NO_TENSORFLOW, folder],
            check=True,
            cwd=helpers.REPO,
            env=dict(helpers.env(), KERAS_BACKEND="jax"),
            timeout=120,
        )
        (name,) = file_store.LocalStore().names(folder, lock.LEASE_PREFIX)
        with open(os.path.join(folder, name)) as f:
            self.assertTrue(json.load(f)["released"])


def _on_another_host(hostname):
    """A command prefix that runs its command under `hostname` (a new UTS
    namespace: root and `unshare`), or None where that is not possible."""
    prefix = ["unshare", "-u", "sh", "-c", f'hostname {hostname} && exec "$@"']
    try:
        result = subprocess.run([*prefix, "sh", "true"], timeout=30)
    except OSError:
        return None
    return [*prefix, "sh"] if result.returncode == 0 else None


# Slow (16 s). The default suite refuses a fresh lease of another host
# until it is stale and then takes it over (LeaseTest), and a run takes
# over a stale lease and trains (test_faults.py ModelDirTest).
@pytest.mark.slow
class RescheduledRunTest(TestCase):
    """A job preempted on one host and restarted on another resumes."""

    def setUp(self):
        super().setUp()
        helpers.define_all_flags()

    def test_run_restarted_on_another_host_resumes(self):
        from absl import logging as absl_logging

        from la_keras.training.checkpoints import checkpoint_dir
        from launch import train

        # The resumed run's INFO lines are read below, whatever verbosity
        # an earlier test of the suite left (launch's quiet default is
        # WARNING).
        self.addCleanup(
            absl_logging.set_verbosity, absl_logging.get_verbosity()
        )
        absl_logging.set_verbosity(absl_logging.INFO)

        model_dir = os.path.join(self.get_temp_dir(), "rescheduled")
        values = dict(epochs=2, lock_timeout=3.0, eval_every_epochs=100)
        prefix = _on_another_host("preempted-host")
        log_path = os.path.join(self.get_temp_dir(), "preempted.log")
        with open(log_path, "w") as log:
            first = subprocess.Popen(
                [
                    *(prefix or []),
                    sys.executable,
                    "-m",
                    "launch.train",
                    *helpers.smoke_args(model_dir, **values),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=helpers.env(),
                cwd=helpers.REPO,
            )
        checkpoints = os.path.join(checkpoint_dir(model_dir), "ckpt-*.index")
        try:
            deadline = time.time() + 240
            while time.time() < deadline and first.poll() is None:
                if glob.glob(checkpoints):  # the first epoch is done
                    break
                time.sleep(0.05)
            running = first.poll() is None
        finally:
            first.kill()  # the preempted host is gone: no release
            first.wait()
        with open(log_path) as f:
            self.assertTrue(running, f.read()[-3000:])
        saved = max(
            int(re.search(r"ckpt-(\d+)", p).group(1))
            for p in glob.glob(checkpoints)
        )
        (name,) = file_store.LocalStore().names(model_dir, lock.LEASE_PREFIX)
        self.assertEqual(name, ".lock.00000001")
        path = os.path.join(model_dir, name)
        if prefix is None:  # as if written there
            helpers.write_lease(model_dir, host="preempted-host", pid=first.pid)
        record = lock.read_lease(file_store.LocalStore(), path)
        self.assertEqual(record["host"], "preempted-host")
        # Its lease is fresh: refused (at once, without waiting). Judged with
        # a long timeout: on a loaded machine the killed run's heartbeat may
        # have been late by more than 3 s.
        with self.assertRaisesRegex(
            lock.ModelDirBusyError, "on host preempted-host"
        ):
            lock.acquire(model_dir, 600.0, heartbeat=False)
        time.sleep(max(0.0, record["refreshed"] + 3.5 - time.time()))
        # Stale now: the same command on this host takes over and resumes.
        with flagsaver.flagsaver(
            **dict(
                helpers.SMOKE_FLAGS,
                model_dir=model_dir,
                tb_log_dir=os.path.join(model_dir, "log"),
                **values,
            )
        ):
            with self.assertLogs(level="INFO") as logs:
                metrics = train.run(FLAGS)
        output = "\n".join(logs.output)
        self.assertIn("Took over the lease", output)
        self.assertRegex(output, rf"Resumed from \S+ at step {saved}\.")
        self.assertEqual(metrics["step"], 18)


class LockTimeoutFlagTest(TestCase):
    def test_non_positive_timeout_is_refused(self):
        helpers.define_all_flags()
        for value in (0.0, -1.0, float("inf")):
            with self.assertRaisesRegex(
                flags.IllegalFlagValueError, "--lock_timeout must be"
            ):
                FLAGS.lock_timeout = value
        self.assertEqual(FLAGS.lock_timeout, lock.DEFAULT_TIMEOUT)
