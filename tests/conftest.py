"""Shared pytest configuration and fixtures."""

import os
import pathlib

import pytest

# Keep TensorFlow quiet and deterministic enough for CPU tests.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_REPO = pathlib.Path(__file__).resolve().parents[1]
_SHARED_TFDS = _REPO.parent / "shared" / "tfds"


def shared_tfds_dir():
    """The prepared offline TFDS data_dir beside the checkout, or None.

    `TFDS_DATA_DIR` wins when it is set and holds cifar10.
    """
    env = os.environ.get("TFDS_DATA_DIR")
    if env and (pathlib.Path(env) / "cifar10").is_dir():
        return str(pathlib.Path(env).resolve())
    if (_SHARED_TFDS / "cifar10").is_dir():
        return str(_SHARED_TFDS.resolve())
    return None


def shared_reference_dir():
    """The official release's prior files beside the checkout, or None."""
    path = _REPO.parent / "shared" / "reference"
    return str(path) if path.is_dir() else None


@pytest.fixture(scope="session", autouse=True)
def shared_runs_unchanged():
    """Fails the session's last teardown if a test wrote into a shared run
    (`tests/launch/shared_runs.py`) instead of into a copy of it."""
    yield
    from tests.launch import shared_runs

    changed = shared_runs.changed_runs()
    assert not changed, f"shared runs changed by the tests: {changed}"


@pytest.fixture(scope="session")
def posthoc_run():
    """The shared post-hoc smoke run (TensorFlow): `shared_runs.Run`."""
    from tests.launch import shared_runs

    return shared_runs.posthoc_run()


@pytest.fixture(scope="session")
def jax_run():
    """The shared smoke run of the JAX backend: `shared_runs.Run`."""
    pytest.importorskip("jax")
    from tests.launch import shared_runs

    return shared_runs.jax_run()


@pytest.fixture
def tfds_data_dir():
    """Real offline TFDS data_dir, or None (tests then use mock data)."""
    return shared_tfds_dir()


def _split_cpu():
    """Two logical CPU devices, for MirroredStrategy tests (set before use)."""
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0],
            [tf.config.LogicalDeviceConfiguration()] * 2,
        )
    except RuntimeError:
        # Devices were already initialized by an earlier import.
        pass


_split_cpu()
