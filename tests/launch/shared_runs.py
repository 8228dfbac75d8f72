"""Smoke runs trained once per test process and shared by the tests.

Each run is trained on first use and cached for the rest of the process
(with pytest-xdist, once in each worker). A test that only reads a run (its
metrics, flags, checkpoints and export; launch.evaluate and launch.export
writing to outputs of its own) uses the shared folder; a test that writes
into a run (reruns, resumes, adapts, kills an export in it) works on
`copy_of(run, its_temp_dir)`. `tests/conftest.py` checks at the end of the
session that no shared folder was changed.
"""

import atexit
import collections
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

from tests.launch import helpers

JAX_ENV = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}

# The folder of a run, its metrics.json as read after training, and the
# `subprocess.CompletedProcess` of the `python -m launch.train` that ran it.
Run = collections.namedtuple("Run", ["model_dir", "metrics", "output"])

_snapshots = {}


@functools.cache
def _root():
    root = tempfile.mkdtemp(prefix="la_keras_shared_runs_")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def _snapshot(model_dir):
    """`{relative path: SHA-256}` of every file in `model_dir`.

    By content, not modification time: reading a TensorFlow run rewrites
    its `checkpoints/checkpoint` state file with the same contents.
    """
    files = {}
    for directory, _, names in os.walk(model_dir):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            files[os.path.relpath(path, model_dir)] = digest
    return files


def _train(name, args, env):
    """`python -m launch.train args` with `env`, in the folder `name`."""
    model_dir = os.path.join(_root(), name)
    result = subprocess.run(
        [sys.executable, "-m", "launch.train", *args(model_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=helpers.REPO,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"the shared run {name} failed:\n{result.stderr[-3000:]}"
        )
    _snapshots[model_dir] = _snapshot(model_dir)
    with open(os.path.join(model_dir, "metrics.json")) as f:
        return Run(model_dir, json.load(f), result)


def changed_runs():
    """The shared runs whose files changed since they were trained, each
    with the paths added, removed or rewritten."""
    changes = {}
    for model_dir, before in _snapshots.items():
        after = _snapshot(model_dir)
        changed = sorted(
            name
            for name in set(before) | set(after)
            if before.get(name) != after.get(name)
        )
        if changed:
            changes[model_dir] = changed
    return changes


def run_flags(model_dir, *defaults, **overrides):
    """Flag values of a run in `model_dir` (its TensorBoard logs in
    `model_dir/log`): the dicts of `defaults` in turn, then `overrides`."""
    values = {}
    for part in defaults:
        values.update(part)
    values.update(
        model_dir=model_dir, tb_log_dir=os.path.join(model_dir, "log")
    )
    values.update(overrides)
    return values


def smoke_flags(model_dir, **overrides):
    """Flag values of a smoke run (`helpers.SMOKE_FLAGS`) in `model_dir`."""
    return run_flags(model_dir, helpers.SMOKE_FLAGS, **overrides)


def train_with(values):
    """`launch.train` in this process with the flag `values`; its metrics."""
    from absl import flags
    from absl.testing import flagsaver

    from launch import train

    helpers.define_all_flags()
    with flagsaver.flagsaver(**values):
        return train.run(flags.FLAGS)


def train_in_process(model_dir, **overrides):
    """`launch.train` of a smoke run in this process; its metrics."""
    return train_with(smoke_flags(model_dir, **overrides))


def posthoc_args(model_dir):
    """The command-line flags of `posthoc_run` in `model_dir`: the
    smoke run, at launch.train's default verbosity."""
    args = helpers.smoke_args(model_dir, mode="posthoc")
    return [a for a in args if not a.startswith("--verbosity")]


@functools.cache
def posthoc_run():
    """The smoke run of `helpers.SMOKE_FLAGS` in post-hoc mode, trained by
    `python -m launch.train` on the TensorFlow backend as a user runs it
    (its output as the user sees it: TensorFlow's C++ logging not turned
    down): 2 epochs of 9 steps, a holdout of 10%, exported."""
    env = helpers.env()
    del env["TF_CPP_MIN_LOG_LEVEL"]
    return _train("posthoc", posthoc_args, env)


# Where `jax_run`'s compiler dumps the train step it compiles.
def jax_dump_dir():
    return os.path.join(_root(), "jax_xla_dump")


def jax_args(model_dir):
    """The command-line flags of `jax_run` in `model_dir`."""
    # A checkpoint at the end of each epoch: ckpt-9.npz and ckpt-18.npz.
    return helpers.smoke_args(
        model_dir, checkpoint_every_seconds=0, deterministic=True
    )


@functools.cache
def jax_run():
    """The smoke run trained by `python -m launch.train` on Keras's JAX
    backend with --deterministic (`.npz` checkpoints and model.keras, no
    SavedModel); XLA dumps the train step it compiles to `jax_dump_dir()`
    (XLA_FLAGS as a user's, to which --deterministic adds its own)."""
    dump = f"--xla_dump_to={jax_dump_dir()} --xla_dump_hlo_module_re=step"
    env = dict(helpers.env(), **JAX_ENV, XLA_FLAGS=dump)
    return _train("jax", jax_args, env)


def copy_of(run, directory, name=None):
    """A copy of `run`'s folder in `directory` (a test's own), to write in.

    Its recorded paths still name the shared folder: launch.train,
    launch.evaluate and launch.export read a moved run at its new place.
    """
    destination = os.path.join(
        directory, name or os.path.basename(run.model_dir)
    )
    shutil.copytree(run.model_dir, destination)
    return destination
