"""The machine and libraries a run used, read from the system and TensorFlow."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else `platform`)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> dict:
    """CPU, cores, the accelerators the Keras backend sees, and versions.

    Returns:
        A JSON-ready dict: `cpu`, `cores` (`os.cpu_count()`), `backend`
        (Keras's), `accelerators` (the non-CPU devices of that backend,
        e.g. `["GPU:0"]` from TensorFlow or `["cuda:0"]` from JAX; empty when
        it sees none) and the versions of `python`, the backend's library
        (`tensorflow` or `jax`), `keras` and `la_keras`. Needs no TensorFlow
        on the JAX backend.
    """
    import keras

    import la_keras

    backend = keras.backend.backend()
    env = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "backend": backend,
        "accelerators": _accelerators(backend),
        "python": platform.python_version(),
    }
    if backend == "jax":
        import jax

        env["jax"] = jax.__version__
    else:
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
    env.update(keras=keras.__version__, la_keras=la_keras.__version__)
    return env


def _accelerators(backend: str) -> list[str]:
    if backend == "jax":
        import jax

        return [
            f"{device.platform}:{device.id}"
            for device in jax.devices()
            if device.platform != "cpu"
        ]
    import tensorflow as tf

    return [
        device.name.split("physical_device:", 1)[-1]
        for device in tf.config.list_physical_devices()
        if device.device_type != "CPU"
    ]


def hardware_text(env: dict) -> str:
    """One line: CPU, cores and the accelerators of `describe()`."""
    seen = ", ".join(env.get("accelerators") or []) or "none"
    backend = {"jax": "JAX"}.get(env.get("backend"), "TensorFlow")
    return (
        f"CPU: {env['cpu']}, {env['cores']} cores; accelerators visible to "
        f"{backend}: {seen}"
    )


def versions_text(env: dict) -> str:
    """The library versions of `describe()`, the backend's among them."""
    names = ("python", "tensorflow", "jax", "keras", "la_keras")
    return ", ".join(f"{name} {env[name]}" for name in names if name in env)
