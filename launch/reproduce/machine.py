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
    """CPU, cores, the devices TensorFlow sees, and library versions.

    Returns:
        A JSON-ready dict: `cpu`, `cores` (`os.cpu_count()`), `accelerators`
        (the non-CPU `tf.config.list_physical_devices()`, e.g. `["GPU:0"]`;
        empty when TensorFlow sees none) and the versions of `python`,
        `tensorflow`, `keras` and `la_keras`.
    """
    import keras
    import tensorflow as tf

    import la_keras

    accelerators = [
        device.name.split("physical_device:", 1)[-1]
        for device in tf.config.list_physical_devices()
        if device.device_type != "CPU"
    ]
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "accelerators": accelerators,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "la_keras": la_keras.__version__,
    }


def hardware_text(env: dict) -> str:
    """One line: CPU, cores and the accelerators of `describe()`."""
    seen = ", ".join(env.get("accelerators") or []) or "none"
    return (
        f"CPU: {env['cpu']}, {env['cores']} cores; accelerators visible to "
        f"TensorFlow: {seen}"
    )


def versions_text(env: dict) -> str:
    names = ("python", "tensorflow", "keras", "la_keras")
    return ", ".join(f"{name} {env.get(name, 'unknown')}" for name in names)
