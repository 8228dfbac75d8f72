"""Training on Keras's JAX backend: `KERAS_BACKEND=jax python -m launch.train`.

The same flags, training core (`la_keras.training.TrainingLoop`), model_dir
layout, metrics.json and plot as on TensorFlow, with the JAX step runner
(`JaxTrainer`), the training set resident on the device with the official
crop and flip inside the compiled batch function (`DeviceDataset`), and
backend-neutral checkpoints (`ArrayCheckpointStore`). The trained model is
written as `<model_dir>/model.keras`: a `LogitAdjustedModel` in post-hoc
mode with the served tau, which `launch.export` (on TensorFlow) turns into
the serving SavedModel.

TensorFlow is not needed: a `--dataset=prepared:PATH` file is read with
numpy, TensorBoard summaries are written by `la_keras.training.event_file`.
`--strategy=auto` trains data-parallel on every device
(`keras.distribution.DataParallel`; several hosts through
`keras.distribution.initialize` and the KERAS_DISTRIBUTION_* variables,
only process 0 writing into --model_dir); `--jax_loop` picks a Python loop
over the jitted step (CPU) or one `lax.scan` per call (GPU, TPU).
`--deterministic` adds XLA's deterministic GPU ops to XLA_FLAGS before JAX
starts its devices (`enable_determinism`).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import keras
import numpy as np

from la_keras.models import LogitAdjustedModel
from la_keras.models import finetune
from la_keras.runs import common
from la_keras.runs import finetuning
from la_keras.runs import outputs
from la_keras.runs import plots
from la_keras.runs import reporting
from la_keras.runs.errors import RunError
from la_keras.runs.model_dir import ModelDir
from la_keras.training.array_checkpoints import ArrayCheckpointStore
from la_keras.training.jax_data import DeviceDataset
from la_keras.training.jax_data import normalize
from la_keras.training.jax_trainer import JaxPredictor
from la_keras.training.jax_trainer import JaxTrainer
from la_keras.training.loop import checkpoint_dir
from la_keras.training.preemption import StopSignal
from la_keras.training.progress import Summaries


def _check_flags(config) -> None:
    if config.strategy not in ("auto", "one_device"):
        raise RunError(
            f"--strategy={config.strategy} needs the TensorFlow backend; on "
            "KERAS_BACKEND=jax, --strategy=auto trains data-parallel on every "
            "device (keras.distribution.DataParallel) and one_device on one."
        )
    if config.num_logical_cpus > 1:
        raise RunError("--num_logical_cpus needs the TensorFlow backend.")


DETERMINISTIC_XLA_FLAG = "--xla_gpu_deterministic_ops=true"


def enable_determinism() -> None:
    """--deterministic on JAX: bitwise-repeatable steps on every device.

    XLA on CPU and TPU runs a compiled program the same way every time; on
    GPU, `--xla_gpu_deterministic_ops=true` (added to XLA_FLAGS, whose other
    flags are kept) replaces atomics in reductions and scatters and keeps
    autotuning to deterministic kernels. XLA reads XLA_FLAGS once, when JAX
    starts its backends, so this must come first: once they are started,
    a flag missing from XLA_FLAGS is refused (one line).
    """
    from jax._src import xla_bridge

    current = os.environ.get("XLA_FLAGS", "")
    if DETERMINISTIC_XLA_FLAG in current.split():
        return
    if xla_bridge.backends_are_initialized():
        raise RunError(
            "--deterministic on JAX needs XLA_FLAGS to hold "
            f"{DETERMINISTIC_XLA_FLAG} before JAX starts its devices: this "
            "process started them already; set it in the environment."
        )
    os.environ["XLA_FLAGS"] = f"{current} {DETERMINISTIC_XLA_FLAG}".strip()


def distribution(config):
    """The run's `keras.distribution.DataParallel`, or None for one device.

    With KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID in
    the environment (several hosts), `keras.distribution.initialize` starts
    JAX's distributed runtime first, and the devices are those of all hosts.
    """
    import jax

    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
    if processes > 1 and not jax.distributed.is_initialized():
        if os.environ.get("JAX_PLATFORMS", "").startswith("cpu"):
            # Collectives between CPU processes (tests, CPU clusters).
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize()
    devices = jax.devices()
    if config.strategy == "one_device" or len(devices) == 1:
        return None
    return keras.distribution.DataParallel(devices=devices)


def loop_shape(config) -> str:
    """--jax_loop, auto resolved: scan on GPU and TPU, python on CPU."""
    import jax

    if config.jax_loop != "auto":
        return config.jax_loop
    return "python" if jax.default_backend() == "cpu" else "scan"


def _eval_batches(images, labels, batch_size):
    for start in range(0, len(labels), batch_size):
        batch = images[start : start + batch_size]
        # The evaluation preprocessing of the TensorFlow pipeline and serving.
        yield normalize(batch), labels[start : start + batch_size]


def feature_batches(config):
    """The training set, preprocessed for evaluation, in batches."""
    images, labels, _ = config.data.arrays("train")
    return _eval_batches(images, labels, config.data.test_batch_size)


def predict_splits(config, model, predictor=None) -> dict:
    """`{split: (outputs, labels)}` of `model` on test (and holdout)."""
    predictor = predictor or JaxPredictor(model)
    out = {}
    for split in config.data.eval_splits:
        images, labels, _ = config.data.arrays(split)
        batches = _eval_batches(images, labels, config.data.test_batch_size)
        out[split] = predictor.predict(batches)
    return out


# The share of a device's memory the training set may take.
DEVICE_MEMORY_SHARE = 0.5


def device_memory_bytes() -> int:
    """Memory of the first device: its allocator's limit on GPU and TPU, the
    host's RAM on CPU."""
    import jax

    try:  # this process's own device: another host's has no stats here
        stats = jax.local_devices()[0].memory_stats() or {}
    except jax.errors.JaxRuntimeError:
        stats = {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(config, info) -> None:
    """Refuses a training set larger than `DEVICE_MEMORY_SHARE` of the
    device: the JAX backend keeps it on the device as uint8."""
    size = info.num_examples["train"] * int(np.prod(info.image_shape))
    limit = device_memory_bytes()
    if size > DEVICE_MEMORY_SHARE * limit:
        raise RunError(
            f"--dataset={config.data.dataset}: its {info.num_examples['train']}"
            f" training images take {size / 2**30:.1f} GiB as uint8, more than "
            f"{DEVICE_MEMORY_SHARE:.0%} of the device's {limit / 2**30:.1f} "
            "GiB, and the JAX backend holds the training set on the device. "
            "Train on the TensorFlow backend, which streams from disk, or "
            "pass a smaller --image_size."
        )


def device_dataset(config, dist) -> DeviceDataset:
    """The run's training set on the device(s), as launch.train uses it."""
    images, labels, _ = config.data.arrays("train")
    return DeviceDataset(
        images,
        labels,
        config.data.train_batch_size,
        config.data.seed,
        config.data.crop_padding,
        distribution=dist,
        sampler=config.data.sampler,
    )


def build_trainer(config, info, steps_per_epoch, fresh=False):
    """`(model, loss, optimizer, JaxTrainer)` of the run (inside its
    distribution's scope, if any); `fresh`: a new run (see
    `la_keras.runs.finetuning.build_model`)."""
    model = common.build_model(
        config, info, fresh, lambda: feature_batches(config)
    )
    loss = config.build_loss(info)
    optimizer = config.schedule.optimizer(steps_per_epoch)
    trainer = JaxTrainer(
        model,
        loss,
        optimizer,
        jit_compile=config.jit_compile,
        loop=loop_shape(config),
    )
    return model, loss, optimizer, trainer


def _any_process(flag: bool) -> bool:
    """True on every host if `flag` is True on any (all stop together)."""
    import jax

    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def run(config, options=None) -> dict:
    """Trains on JAX, evaluates, writes model.keras; returns the metrics.

    Only the first process of a several-host run (`jax.process_index() ==
    0`, the chief) writes into --model_dir.
    """
    import jax

    _check_flags(config)
    if config.deterministic:
        enable_determinism()
    dist = distribution(config)  # before anything starts JAX's devices
    keras.utils.set_random_seed(config.data.seed)
    chief = jax.process_index() == 0
    with (
        ModelDir(config.model_dir).held(chief, config.lock_timeout),
        StopSignal() as stop,
    ):
        if dist is None:
            return _run(config, options, stop, None, chief)
        with dist.scope():
            return _run(config, options, stop, dist, chief)


def _run(config, options, stop, dist, chief) -> dict:
    info = config.data.info()
    if info.preprocessing != "cifar":
        hint = (
            " (or pass --augment=cifar: pad, crop and flip at any size)"
            if config.data.is_folder
            else ""
        )
        raise RunError(
            f"--dataset={config.data.dataset}: the JAX backend trains with "
            "the CIFAR recipe on data held in memory; the ImageNet recipe "
            f"(random resized crops) needs the TensorFlow backend{hint}."
        )
    check_fits(config, info)
    reporting.log_skipped(info)
    data = device_dataset(config, dist)
    model, loss, optimizer, trainer = build_trainer(
        config,
        info,
        data.steps_per_epoch,
        fresh=not finetuning.has_checkpoint(config.model_dir),
    )
    # Non-chief hosts save (and verify) their copy in a scratch folder.
    write_dir = config.model_dir if chief else tempfile.mkdtemp()
    epoch = keras.Variable(0, dtype="int32", trainable=False, name="epoch")
    store = ArrayCheckpointStore(
        checkpoint_dir(config.model_dir),
        config.keep_checkpoints,
        write_directory=checkpoint_dir(write_dir),
        model=model.variables,
        optimizer=optimizer.variables,
        epoch=[epoch],
    )
    restored, save = ModelDir(config.model_dir).start(
        config, store, trainer, epoch, chief, options
    )

    summaries = Summaries(config.tb_log_dir if chief else None)
    predictor = JaxPredictor(model)

    def evaluate(_epoch, step):
        logits = predict_splits(config, model, predictor)
        return reporting.report_test(config, info, logits, summaries, step)

    loop = common.training_loop(
        config,
        trainer,
        data.epoch,
        data.steps_per_epoch,
        save,
        last_checkpoint=restored,
        epoch_hooks=[loss],
        on_epoch_end=evaluate,
        stop_requested=lambda: _any_process(stop.requested()),
        summaries=summaries,
        verbose=chief,
    )
    metrics = common.run_training(
        config, loop, evaluate, epoch, len(data.labels)
    )
    metrics.update(reporting.dataset_facts(info))
    metrics.update(reporting.model_facts(config, model))
    metrics["backend"] = "jax"
    metrics["devices"] = 1 if dist is None else dist.device_mesh.devices.size
    metrics["jax_loop"] = trainer.loop
    tau = reporting.served_tau(config, metrics)
    metrics["served_tau"] = tau
    metrics["export_dir"] = None
    # Every host takes part (the weights are global arrays); the chief's
    # copy is the run's.
    metrics["keras_model"] = _write_keras_model(
        write_dir, finetune.merged(model), info, tau
    )
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
        return metrics
    ModelDir(config.model_dir).write_metrics(metrics)
    plots.plot_run(config, info, metrics)
    return metrics


def _write_keras_model(directory, model, info, tau) -> str:
    """`model.keras`: the post-hoc `LogitAdjustedModel` with the served tau."""
    if tau is None:
        classifier = LogitAdjustedModel(model, info.priors, tau=0.0)
    else:
        classifier = LogitAdjustedModel(model, info.priors, tau=tau)
    path = os.path.join(directory, outputs.KERAS_MODEL)
    partial = os.path.join(directory, f".partial.{outputs.KERAS_MODEL}")
    classifier.save(partial)
    os.replace(partial, path)
    return path
