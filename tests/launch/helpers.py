"""Shared helpers for the launch tests: flags and subprocesses."""

import contextlib
import json
import os
import subprocess
import sys

from absl import flags

REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)

# A quick run: the synthetic `test` dataset and the 8-layer ResNet.
SMOKE_FLAGS = dict(
    dataset="test",
    model="resnet8",
    train_batch_size=4,
    test_batch_size=10,
    epochs=2,
    warmup_epochs=1.0,
    base_learning_rate=0.05,
    holdout_fraction=0.1,
)


def resolved_config(data=None, epochs=2, **fields):
    """A `ResolvedConfig` of the `test` dataset in batches of 4 (`data`:
    more `DataConfig` fields), trained `epochs` epochs at a constant
    learning rate; `fields`: its other fields."""
    from la_keras.runs.resolved import DataConfig
    from la_keras.runs.resolved import ResolvedConfig
    from la_keras.runs.resolved import ScheduleConfig

    return ResolvedConfig(
        data=DataConfig(dataset="test", train_batch_size=4, **(data or {})),
        schedule=ScheduleConfig(epochs=epochs, schedule=((1.0, 1.0),)),
        **fields,
    )


def define_all_flags():
    from launch import evaluate
    from launch import export

    evaluate.define_flags()
    export.define_flags()
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def flag_args(values):
    """The command-line flags of the flag `values` (None: left out)."""
    args = []
    for name, value in values.items():
        if isinstance(value, bool):
            args.append(f"--{name}" if value else f"--no{name}")
        elif value is not None:
            args.append(f"--{name}={value}")
    return args


def smoke_args(model_dir, **overrides):
    """Command-line flags of a smoke run in `model_dir`."""
    values = dict(
        SMOKE_FLAGS, model_dir=model_dir, tb_log_dir=f"{model_dir}/log"
    )
    values.update(overrides)
    # INFO logs on: the tests read the epoch and resume lines.
    return ["--verbosity=0", *flag_args(values)]


def env():
    return dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        PYTHONPATH=REPO,
    )


def run_module(module, args, timeout=300, extra_env=None):
    """Runs `python -m module args` from the repo root; returns the result."""
    return run_python(["-m", module, *args], timeout, extra_env)


def run_python(args, timeout=300, extra_env=None):
    """Runs `python args` from the repo root; returns the result."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env(), **(extra_env or {})),
        cwd=REPO,
    )


def assert_export_refused(test, model_dir, flag, error):
    """`python -m launch.export` of `model_dir` with `flag` refuses: exit
    status 1, no traceback, the last line `launch.export: error: <error>`,
    and no export written."""
    export_dir = os.path.join(test.get_temp_dir(), "refused")
    result = run_module(
        "launch.export",
        [f"--model_dir={model_dir}", f"--export_dir={export_dir}", flag],
    )
    test.assertEqual(result.returncode, 1, result.stderr[-2000:])
    test.assertNotIn("Traceback", result.stderr)
    test.assertEqual(
        result.stderr.strip().splitlines()[-1],
        f"launch.export: error: {error}",
    )
    test.assertFalse(os.path.exists(export_dir))


def run_script(script, *args, backend=None, timeout=300):
    """Runs `python -c script args` (on Keras's `backend` where given, JAX
    on the CPU); asserts it succeeded and returns the JSON object its last
    line of stdout prints."""
    extra_env = None
    if backend is not None:
        extra_env = {"KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    result = run_python(["-c", script, *args], timeout, extra_env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def popen_module(module, args, log_path, extra_env=None):
    log = open(log_path, "w")  # noqa: SIM115 - closed by the caller's wait
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(env(), **(extra_env or {})),
        cwd=REPO,
    )


def kill_all(processes):
    """Kills those of `processes` still running (a test's `finally`)."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop_when(process, ready, timeout=240):
    """Sends SIGTERM to `process` once `ready()` is true; its exit code.

    `ready` is polled every 50 ms for at most `timeout` seconds; the process
    must still be running then. It is killed if it outlives the wait.
    """
    import signal
    import time

    try:
        deadline = time.time() + timeout
        while time.time() < deadline and process.poll() is None:
            if ready():
                break
            time.sleep(0.05)
        if process.poll() is not None:
            raise AssertionError("the run ended before it was stopped")
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=120)
    finally:
        kill_all([process])


def write_lease(model_dir, host=None, pid=None, age=0.0, generation=1):
    """Writes the lease `<model_dir>/.lock.<generation>` of another process.

    Args:
        host: its host name; another host than this one gets another
            machine id too (default: this machine).
        pid: its pid (default: this process's).
        age: seconds since it was refreshed.
    """
    import time

    from la_keras.runs import file_store
    from la_keras.runs import lock

    me = lock.Holder.this_process()
    holder = lock.Holder(
        host=host or me.host,
        pid=me.pid if pid is None else pid,
        token="another process",
        machine=me.machine if host in (None, me.host) else f"{host}/boot/ns",
    )
    path = lock.lease_path(model_dir, generation)
    record = lock.lease_record(holder, generation, time.time() - age)
    file_store.for_path(model_dir).write(path, json.dumps(record))
    return path


@contextlib.contextmanager
def lock_held_by_live_process(model_dir):
    """A fresh lease of `model_dir` naming a live process (a `sleep`) of this
    machine; yields its pid."""
    holder = subprocess.Popen(["sleep", "60"])
    try:
        write_lease(model_dir, pid=holder.pid)
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def event_files(log_dir):
    """The TensorBoard event files in `log_dir` (a set of paths)."""
    if not os.path.isdir(log_dir):
        return set()
    return {
        os.path.join(log_dir, name)
        for name in os.listdir(log_dir)
        if name.startswith("events.out.tfevents.")
    }


def trained_steps(log_dir, before=()):
    """Steps whose training loss a run logged to `log_dir/train`.

    The training loop writes "batch loss" at the end of each call of
    `--steps_per_loop` steps, so these are the steps a run trained up to;
    `before` (event files of earlier runs) are left out.
    """
    import tensorflow as tf

    steps = []
    for path in sorted(event_files(os.path.join(log_dir, "train"))):
        if path in before:
            continue
        for event in tf.compat.v1.train.summary_iterator(path):
            if any(v.tag == "batch loss" for v in event.summary.value):
                steps.append(int(event.step))
    return sorted(steps)
