"""`RuntimeOptions`: seeds, devices, distribution and compilation."""

from __future__ import annotations

import dataclasses

from la_keras.runs.parts import checks
from la_keras.runs.parts.option import POSITIVE
from la_keras.runs.parts.option import option


@dataclasses.dataclass(frozen=True)
class RuntimeOptions:
    """Seeds, devices, distribution and compilation."""

    seed: int = option(0, "Seed for weights, data order and augmentation.")
    strategy: str = option(
        "auto",
        (
            "Distribution strategy: one of auto, one_device, mirrored, "
            "multi_worker_mirrored, tpu."
        ),
        check=checks.strategy,
    )
    tpu: str | None = option(
        None,
        "TPU name or grpc:// address (--strategy=tpu).",
    )
    num_logical_cpus: int = option(
        0,
        "Split the CPU into N logical devices (mirrored runs on CPU).",
    )
    jit_compile: bool | None = option(
        None,
        (
            "XLA-compile the train step. Default: on for GPU and TPU, off on "
            "CPU (XLA trains the ResNets about 40% slower on CPU: "
            "bench_train.py)."
        ),
    )
    jax_loop: str = option(
        "auto",
        (
            "KERAS_BACKEND=jax: how a call of "
            "--steps_per_loop steps runs: a Python loop over the jitted step, "
            "or one compiled lax.scan that also makes the batches. auto: scan "
            "on GPU and TPU, python on CPU (XLA runs convolutions inside "
            "compiled loops much slower on CPU, jax-ml/jax#12868; "
            "bench/bench_backends.py measures both)."
        ),
        choices=("auto", "python", "scan"),
    )
    deterministic: bool = option(
        False,
        (
            "Bitwise-repeatable runs and resumes: "
            "tf.config.experimental.enable_op_determinism() on TensorFlow "
            "(slower input pipeline), XLA's deterministic GPU ops on JAX."
        ),
    )
    steps_per_loop: int = option(
        100,
        (
            "Train steps per call of the compiled loop (at most): how soon a "
            "SIGTERM (preemption) or a NaN loss is noticed."
        ),
        check=POSITIVE,
    )
