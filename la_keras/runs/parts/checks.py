"""The checks of the `RunConfig` fields that ask a registry."""

from __future__ import annotations

from la_keras import distribute


def strategy(name, value):
    if value in distribute.STRATEGIES:
        return None
    return f"--{name} must be one of: {', '.join(distribute.STRATEGIES)}."


def model(name, value):
    from la_keras.models import registry

    if isinstance(value, str) and registry.is_known(value):
        return None
    return (
        f"--{name} must be one of: {', '.join(registry.names())} (or any "
        "resnet<6n+2>, or hub:<preset>)."
    )


def describe_models() -> str:
    from la_keras.models import registry

    return registry.describe()


def image_size(name, value):
    from la_keras.datasets import folder

    try:
        folder.check_image_size(value)
    except ValueError:
        return (
            f"--{name}={value!r}: expected H or H,W, positive integers "
            "(e.g. 64 or 96,128)."
        )
    return None


def loss(name, value):
    # The catalogue is read when checked: losses registered later count.
    from la_keras import losses

    if value is None or value in losses.names():
        return None
    return (
        f"Unknown --{name}={value!r}. Known losses: "
        f"{', '.join(losses.names())}."
    )


def dataset(name, value):
    prefixes = ("tfds:", "prepared:", "folder:")
    if not isinstance(value, str):
        return f"--{name} must be a dataset name, not {value!r}."
    if value.startswith(prefixes[1:]) and len(value.split(":", 1)[1]) > 0:
        return None  # read without TensorFlow (numpy, Pillow)
    try:
        from la_keras import datasets

        known = datasets.names()
    except ImportError:
        # No TensorFlow: reading a dataset other than prepared: fails later
        # with the reason (`la_keras.runs.data_config`).
        return None
    if value in known or any(
        value.startswith(p) and len(value) > len(p) for p in prefixes
    ):
        return None
    return (
        f"Unknown --{name}={value!r}. Known datasets: {', '.join(known)} "
        "(prepared:<path> is a file of launch.prepare, folder:<path> a "
        "folder of images per class)."
    )
