"""Distribution strategies by name, and which worker writes files.

`get_strategy` is the one place that maps a strategy name to a
`tf.distribute.Strategy` (Model Garden's `distribute_utils` pattern), TPU
resolver included. `is_chief` / `worker_dir` / `cleanup_worker_dir` follow
the TensorFlow multi-worker tutorial: every worker takes part in saving
(checkpoints of distributed variables are collective), but only the chief
writes into the real directory; the others write into a temporary
directory that is deleted afterwards.

TensorFlow is imported where a strategy is made, so `STRATEGIES` and the
flags that list it import without it (Keras's JAX backend).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {raw!r}") from e


def _num_workers(config: dict) -> int:
    cluster = config.get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def resolve_name(name: str) -> str:
    """Resolves "auto" to a concrete strategy name.

    "auto" is `multi_worker_mirrored` when `TF_CONFIG` lists more than one
    worker, `mirrored` when several GPUs are visible, else `one_device`.
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}. Expected one of: {', '.join(STRATEGIES)}."
        )
    if name != "auto":
        return name
    import tensorflow as tf

    if _num_workers(_tf_config()) > 1:
        return "multi_worker_mirrored"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "one_device"


def tpu_strategy(tpu: str | None = None) -> tf.distribute.TPUStrategy:
    """Resolves, connects to and initializes a TPU, then returns its strategy.

    Args:
        tpu: TPU name or `grpc://` address for `TPUClusterResolver`; empty or
            None means a local TPU (TPU VM).

    Raises:
        RuntimeError: when no TPU can be resolved or reached.
    """
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu or ""
        )
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise RuntimeError(
            f"Could not find a TPU (--tpu={tpu!r}): {e}. Pass the TPU name or "
            "grpc:// address with --tpu, or run on a TPU VM."
        ) from e
    try:
        if tpu not in (None, "", "local"):
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise RuntimeError(
            f"Could not connect to or initialize the TPU (--tpu={tpu!r}): {e}"
        ) from e
    return tf.distribute.TPUStrategy(resolver)


def get_strategy(
    name: str = "auto", tpu: str | None = None
) -> tf.distribute.Strategy:
    """Returns the `tf.distribute.Strategy` called `name`.

    Args:
        name: one of `STRATEGIES`: "auto", "one_device" (first GPU, else
            the CPU through the default strategy), "mirrored" (all local GPUs, or all logical CPUs when there
            is no GPU), "multi_worker_mirrored" (cluster from `TF_CONFIG`)
            or "tpu".
        tpu: TPU name or address, for "tpu" only.

    Raises:
        ValueError: for an unknown name, or `multi_worker_mirrored` without
            a usable `TF_CONFIG`.
        RuntimeError: when the TPU cannot be reached.
    """
    import tensorflow as tf

    name = resolve_name(name)
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        if not gpus:
            # The default strategy: `OneDeviceStrategy("/cpu:0")` pins every
            # op of the step to the CPU device and trains 2.2x slower on a
            # 2-core CPU (launch.train, one epoch of CIFAR-10-LT: MobileNet
            # 0.25 at 96 px 135 vs 300 images/s, official ResNet-32 42.6 vs
            # 92.5, 2026-11-30). Same maths, same variables, one replica.
            return tf.distribute.get_strategy()
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [
            d.name for d in gpus or tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker_mirrored":
        config = _tf_config()
        if config and "task" not in config:
            raise ValueError(
                "TF_CONFIG has no `task` entry; multi_worker_mirrored needs "
                '{"cluster": {...}, "task": {"type": "worker", "index": i}}.'
            )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=options
        )
    return tpu_strategy(tpu)


def _task(strategy: tf.distribute.Strategy) -> tuple[str | None, int | None]:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process writes the run's files (checkpoints, summaries).

    True for single-worker strategies; for multi-worker ones, the "chief"
    task, or worker 0 when the cluster has no chief.
    """
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    task_type, task_id = _task(strategy)
    if task_type is None or task_type == "chief":
        return True
    if task_type == "worker":
        cluster = strategy.cluster_resolver.cluster_spec().as_dict()
        return "chief" not in cluster and task_id == 0
    # Evaluators and parameter servers write nothing of the run's.
    return False


def worker_dir(
    model_dir: str, strategy: tf.distribute.Strategy | None = None
) -> str:
    """`model_dir` for the chief; a fresh temporary directory for the others."""
    if is_chief(strategy):
        return model_dir
    import tensorflow as tf

    task_type, task_id = _task(strategy or tf.distribute.get_strategy())
    return tempfile.mkdtemp(prefix=f"la_keras_{task_type}{task_id}_")


def cleanup_worker_dir(
    path: str, model_dir: str, strategy: tf.distribute.Strategy | None = None
) -> None:
    """Deletes a non-chief's temporary directory (never `model_dir`)."""
    if not is_chief(strategy) and os.path.abspath(path) != os.path.abspath(
        model_dir
    ):
        shutil.rmtree(path, ignore_errors=True)


def configure_logical_cpus(count: int) -> None:
    """Splits the first CPU into `count` logical devices (for tests, CPU runs).

    Must run before TensorFlow initializes its devices.
    """
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * int(count)
    )
