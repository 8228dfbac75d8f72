"""bench_backends' workers: one Keras backend per process, timed.

`bench/bench_backends.py --_worker=tensorflow|jax` runs `worker_main`,
which prints one line, `RESULT_PREFIX` and the JSON of its rows: the
throughput of launch.train's path on that backend (`worker_tensorflow`,
`worker_jax`), the loop's per-epoch overhead (`bench/loop_overhead.py`)
and Keras's `model.fit` beside them (`bench/keras_fit.py`).
"""

from __future__ import annotations

import json
import os

import backend_timing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILE = os.path.join(ROOT, "launch", "configs", "cifar10_lt.cfg")
RESULT_PREFIX = "RESULT "


def run_config(prepared_path, batch):
    """The `ResolvedConfig` launch.train resolves for the benchmark's flags."""
    from absl import flags

    from la_keras.runs.resolved import ResolvedConfig
    from launch import common_flags

    common_flags.define_flags()
    flags.FLAGS(
        [
            "launch.train",
            f"--flagfile={FLAGFILE}",
            f"--dataset=prepared:{prepared_path}",
            "--mode=loss",
            f"--train_batch_size={batch}",
        ]
    )
    return ResolvedConfig.from_flags(flags.FLAGS)


def worker_tensorflow(args):
    """launch.train's TensorFlow path (`la_keras.runs.train_tf._run`), timed."""
    import keras
    import tensorflow as tf

    from la_keras.runs import common
    from la_keras.runs.train_tf import build_datasets
    from la_keras.runs.train_tf import train_data
    from la_keras.training import Trainer

    config = run_config(args.prepared, args.batch)
    keras.utils.set_random_seed(config.data.seed)
    strategy = common.create_strategy(config)
    builders = build_datasets(config, strategy.num_replicas_in_sync)
    builder = builders["train"]
    info = builder.info
    with strategy.scope():
        model = config.build_model(info.num_classes, info.image_shape)
        loss = config.build_loss(info)
        optimizer = config.schedule.optimizer(builder.steps_per_epoch)
    trainer = Trainer(
        strategy, model, loss, optimizer, jit_compile=config.jit_compile
    )
    epoch_data = train_data(strategy, builder)
    result = backend_timing.time_steps(
        trainer,
        epoch_data,
        builder.steps_per_epoch,
        args,
    )
    try:
        worker_device = strategy.extended.worker_devices[0]
    except RuntimeError:  # the default strategy (one device, e.g. a CPU)
        worker_device = tf.config.list_logical_devices()[0].name
    device = tf.DeviceSpec.from_string(worker_device)
    result.update(
        device=f"{device.device_type}:{device.device_index} "
        f"({type(strategy).__name__})",
        variant="Trainer + DatasetBuilder"
        + (", XLA" if config.jit_compile else ", no XLA"),
        train_examples=builder.num_examples,
    )
    return [result]


def worker_jax(args):
    """launch.train's JAX path (`la_keras.runs.train_jax._run`), timed."""
    import contextlib

    import keras

    from la_keras.runs import train_jax

    config = run_config(args.prepared, args.batch)
    dist = train_jax.distribution(config)  # None on one device
    keras.utils.set_random_seed(config.data.seed)
    with dist.scope() if dist else contextlib.nullcontext():
        data = train_jax.device_dataset(config, dist)
        # launch.train's --jax_loop=auto, or each of --jax_loops.
        return [
            _time_jax(config.replace(jax_loop=jax_loop), data, args)
            for jax_loop in (args.jax_loops or "auto").split(",")
        ]


def _time_jax(config, data, args):
    """The timing of one `JaxTrainer` as la_keras.runs.train_jax builds it."""
    import jax
    import keras

    from la_keras.runs import train_jax

    keras.utils.set_random_seed(config.data.seed)
    info = config.data.info()
    *_, trainer = train_jax.build_trainer(config, info, data.steps_per_epoch)
    loop = trainer.loop
    # The scan is compiled once per call length: compile the timed one.
    compile_steps = args.steps if loop == "scan" else 0
    result = backend_timing.time_steps(
        trainer, data.epoch, data.steps_per_epoch, args, compile_steps
    )
    devices = jax.devices()
    result.update(
        device=f"{devices[0].platform.upper()}:{devices[0].id} (jax)"
        + (f" x{len(devices)}" if len(devices) > 1 else ""),
        variant="JaxTrainer + DeviceDataset"
        + (", jit" if config.jit_compile else ", eager")
        + f", loop={loop}"
        + (" (auto)" if config.jax_loop == "auto" else ""),
        train_examples=len(data.labels),
    )
    return result


def worker_overhead(args):
    """Per-epoch overhead rows of this backend (`bench/loop_overhead.py`)."""
    import keras
    import loop_overhead

    config = run_config(args.prepared, args.batch)
    if keras.backend.backend() == "tensorflow":
        return loop_overhead.measure_tensorflow(config, args)
    loops = (args.jax_loops or "python,scan").split(",")
    return loop_overhead.measure_jax(config, args, loops)


def worker_main(args):
    import keras

    parts = args.parts.split(",")
    results = {}
    if "throughput" in parts:
        run = worker_tensorflow if args._worker == "tensorflow" else worker_jax
        results["throughput"] = run(args)
    if "overhead" in parts:
        results["overhead"] = worker_overhead(args)
    if "fit" in parts:
        import keras_fit

        config = run_config(args.prepared, args.batch)
        results["reference"] = keras_fit.reference_rows(config, args)
    backend = keras.backend.backend()
    for rows in results.values():
        for result in rows:
            result["backend"] = backend
    print(RESULT_PREFIX + json.dumps(results), flush=True)
