"""Throughput of la_keras's training input pipelines vs the usual approaches.

Two sections, each printing la_keras's figure and the comparison side by side
(`--sections`, both by default).

Section `cifar10_lt`: the `cifar10_lt` pipeline vs the official approach.
Both run on the same long-tailed images (the real CIFAR-10 from TFDS):

* la_keras: `DatasetBuilder("cifar10_lt", "train", 128, training=True)`:
  decoded uint8 images cached, whole-set shuffle each epoch, batch, then
  vectorized normalize / pad (2 pixels a side, `--crop_padding`) / crop /
  flip, prefetch.
* official: the same images written as raw-bytes TFRecords, then
  `TFRecordDataset.shuffle(10000).batch(128, drop_remainder=True)
  .map(parse_example + tf.map_fn(per-image decode_raw, normalize,
  resize_with_crop_or_pad to 36x36, random_crop, random flip))
  .prefetch(AUTOTUNE)`, as the official `utils.py`.

The first epoch of la_keras reads and decodes the TFDS files into the cache;
steady-state epochs are timed separately. The last line compares the
pipeline with what training consumes (`--train_images_per_sec`, the official
ResNet-32 tf.function rate on this CPU): the target is 10x.

Training builds each epoch's shuffle and augmentation anew (their seeds
follow the epoch, for resuming: `la_keras.runs.train_tf.train_data`). The first
table times epoch 2 of that, as `TrainingLoop` takes it (`steps_per_epoch`
batches from a `OneDeviceStrategy` iterator), two ways: "before", a new
in-memory cache every epoch, which starts empty, so every epoch reads and
decodes the source again (emulated with `DatasetBuilder.reset_cache()`
before each epoch); "after", one cache for the run: the epochs share the
cache that the first one filled, as training does.

Section `folder`: `folder:PATH` datasets (a folder of JPEGs per class) vs
`keras.utils.image_dataset_from_directory` on the same folder. Two folders
are made first (Pillow, JPEG quality 90; not timed) in a temporary
directory, or under `--folder_dir` (reused when there), both in the layout
`ROOT/{train,test}/<class>/<n>.jpg`, from the real CIFAR-10:

* `cifar10_lt_32px`: the `cifar10_lt` train split (12,406 images) and the
  test split (10,000): about 22,000 32x32 JPEGs.
* `cifar10_lt_224px_<N>`: `--folder_224_images` train images (a seeded
  draw from `cifar10_lt` train) and a tenth as many test images, upscaled
  to 224x224 (bicubic).

Timed on each folder's train split, batches of `--batch_size`, every
pipeline delivering augmented float32 batches:

* la_keras: `DatasetBuilder("folder:ROOT", "train", batch, training=True,
  index_cache=...)`: files read and decoded in parallel, the decoded uint8
  images cached in memory (`caches_in_memory`), a whole-split shuffle each
  epoch, batched, then `preprocess_images` (32 px: the CIFAR recipe; 224
  px: the ImageNet recipe), prefetch. The index (listing and a Pillow check
  of every file, train and test) is timed on its own, as is its reuse from
  the `index_cache` JSON (what a resume costs).
* keras: `image_dataset_from_directory(ROOT/train, batch_size=batch,
  image_size=(H, W), shuffle=True, seed=0)`, then `.map` of the same
  `preprocess_images(..., training=True)` and `.prefetch(AUTOTUNE)`.
  Three variants: without a cache it reads and decodes every file every
  epoch; with `.cache()` (after the batching, as usually written) the first
  epoch fills a cache of float32 batches that later epochs replay in the
  same order (its shuffle is before the cache): less work per epoch than
  la_keras, which reshuffles the whole split every epoch; `.unbatch()
  .cache().shuffle(all).batch()` does what la_keras does (on float32).

Each pipeline is made (timed: "setup") and runs one first epoch, one
pipeline after the other (reported: read, decode, cache fill, tracing);
then each runs `--folder_epochs` steady-state epochs, interleaved (one epoch
of each in turn), so that a change of the machine's load falls on all of
them alike; the table gives their total rate and the range of the single
epochs. Rates count the images delivered (la_keras drops the last partial
batch in training, `image_dataset_from_directory` does not). Target: la_keras
at least as fast as `image_dataset_from_directory`, and the
32-px folder's steady state at least 10x the training step's consumption
(`--train_images_per_sec`). The CPU count is printed with the load average
before and after: on a shared machine the figures move with the load.

Measured on 2026-11-30 (2 cores, shared: load average 1-4 during the runs)
with `PYTHONPATH=. python bench/bench_input_pipeline.py` (data_dir
../shared/tfds), three runs of the folder section (3, 3 and 5 steady
epochs), la_keras steady state in images/s and its ratios:

* 32 px: 28,614 / 37,023 / 31,991; x4.2 / x8.9 / x7.3 the uncached
  `image_dataset_from_directory`, x1.11 / x1.24 / x0.91 its `.cache()`
  variant (which replays the same batches every epoch), 84x-97x the
  training consumption (380 images/s).
* 224 px: 293 / 222 / 188; x1.17 / x1.33 / x0.90 the uncached, x1.00 /
  x0.78 / x0.74 the `.cache()` variant. All four pipelines were bound by
  the same ImageNet augmentation (about 160-190 images/s for a batch of
  128 on its own), and single epochs vary 2x-4x with the load.

After the ImageNet recipe's flip moved into its crop boxes (and the crop
reads uint8), one more run, `--sections=folder`, 5 steady epochs, load
average 0.9-1.9: 32 px 49,261 images/s (x4.70 the uncached
`image_dataset_from_directory`, x0.76 its `.cache()` replay, x0.81 the
reshuffling `.unbatch().cache().shuffle(all)`, 130x the training
consumption); 224 px 847 images/s (x1.35 the uncached, x0.80 the
`.cache()` replay, x1.05 the reshuffling cache).

Usage:

    python bench/bench_input_pipeline.py --data_dir=../shared/tfds
    python bench/bench_input_pipeline.py --sections=folder \
        --folder_dir=/tmp/la_keras_bench_folders
"""

import os
import pathlib
import sys
import tempfile
import time

from absl import app
from absl import flags

from launch import cli

# The folder section, next to this file (run as a script or with -m).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import folder_pipelines  # noqa: E402

FLAGS = flags.FLAGS
_DEFAULT_DATA_DIR = (
    pathlib.Path(__file__).resolve().parents[2] / "shared" / "tfds"
)


def define_flags():
    flags.DEFINE_string(
        "data_dir",
        None,
        "TFDS data_dir holding cifar10. Defaults to TFDS_DATA_DIR, else "
        "../shared/tfds when present.",
    )
    flags.DEFINE_integer("batch_size", 128, "Global batch size.")
    flags.DEFINE_integer("epochs", 3, "Steady-state epochs timed per pipeline.")
    flags.DEFINE_integer(
        "crop_padding",
        2,
        "Pixels of zero padding a side before the random crop, in both "
        "pipelines: 2 as the official release, 4 as LDAM / BBN.",
    )
    flags.DEFINE_float(
        "train_images_per_sec",
        380.0,
        "Images/s the training step consumes (official ResNet-32 "
        "tf.function rate on this CPU).",
    )
    flags.DEFINE_list(
        "sections",
        list(SECTIONS),
        f"Sections to run, of {', '.join(SECTIONS)}.",
    )
    flags.DEFINE_string(
        "folder_dir",
        None,
        "Where the folder section makes its JPEG folders (reused when made "
        "there before). Defaults to a temporary directory, removed after.",
    )
    flags.DEFINE_integer(
        "folder_224_images",
        2000,
        "Train images of the 224-px folder (plus a tenth as many test).",
    )
    flags.DEFINE_integer(
        "folder_epochs",
        5,
        "Steady-state epochs timed per pipeline in the folder section.",
    )


SECTIONS = ("cifar10_lt", "folder")


def _data_dir():
    if FLAGS.data_dir:
        return FLAGS.data_dir
    if os.environ.get("TFDS_DATA_DIR"):
        return os.environ["TFDS_DATA_DIR"]
    if _DEFAULT_DATA_DIR.is_dir():
        return str(_DEFAULT_DATA_DIR)
    return None


def _official_pipeline(path, batch_size, crop_padding):
    import tensorflow as tf

    features = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }

    def augment(encoded):
        image = tf.io.decode_raw(encoded, tf.uint8)
        image = tf.reshape(image, [32, 32, 3])
        image = tf.cast(image, tf.float32) / 255.0 - 0.5
        size = 32 + 2 * crop_padding
        image = tf.image.resize_with_crop_or_pad(image, size, size)
        image = tf.image.random_crop(image, [32, 32, 3])
        return tf.image.random_flip_left_right(image)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, features)
        images = tf.map_fn(
            augment, parsed["image/encoded"], fn_output_signature=tf.float32
        )
        return images, parsed["image/class/label"]

    ds = tf.data.TFRecordDataset(path).shuffle(10000)
    ds = ds.batch(batch_size, drop_remainder=True).map(parse)
    return ds.prefetch(tf.data.AUTOTUNE)


def _training_epochs(builder, epochs, new_cache_each_epoch):
    """Images/s of each epoch as training takes them (`train_data`)."""
    import tensorflow as tf

    from la_keras.runs import train_tf

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    epoch_data = train_tf.train_data(strategy, builder)

    def one_epoch(epoch):
        # As `TrainingLoop._run_epoch`: the iterator lives for its epoch.
        if new_cache_each_epoch:
            builder.reset_cache()
        iterator = epoch_data(epoch, 0)
        for _ in range(builder.steps_per_epoch):
            images, _ = next(iterator)
        images.numpy()

    rates = []
    for epoch in range(epochs):
        start = time.perf_counter()
        one_epoch(epoch)
        seconds = time.perf_counter() - start
        images = builder.steps_per_epoch * builder.global_batch_size
        rates.append(images / seconds)
    return rates


def run(flags_obj):
    unknown = sorted(set(flags_obj.sections) - set(SECTIONS))
    if unknown:
        raise app.UsageError(
            f"--sections: unknown {', '.join(unknown)}; expected some of "
            f"{', '.join(SECTIONS)}."
        )
    data_dir = _data_dir()
    cpus = len(os.sched_getaffinity(0))
    print(
        f"CPU cores: {cpus} (os.cpu_count() {os.cpu_count()}); load average "
        f"{_load()} at the start. The CPU may be shared: the rates move "
        "with the load."
    )
    if "cifar10_lt" in flags_obj.sections:
        _cifar10_lt_section(flags_obj, data_dir)
    if "folder" in flags_obj.sections:
        folder_pipelines.run(flags_obj, data_dir)
    print(f"load average at the end: {_load()}")


def _load():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _cifar10_lt_section(flags_obj, data_dir):
    from la_keras import datasets
    from la_keras.datasets import official

    def make_builder():
        return datasets.DatasetBuilder(
            "cifar10_lt",
            "train",
            flags_obj.batch_size,
            training=True,
            data_dir=data_dir,
            crop_padding=flags_obj.crop_padding,
        )

    before = _training_epochs(make_builder(), 3, new_cache_each_epoch=True)
    after = _training_epochs(make_builder(), 3, new_cache_each_epoch=False)
    builder = make_builder()
    ours = builder.build()
    start = time.perf_counter()
    first = sum(int(x.shape[0]) for x, _ in ours)
    first_rate = first / (time.perf_counter() - start)
    ours_rate = folder_pipelines.time_epochs(ours, flags_obj.epochs)

    images, labels, _ = folder_pipelines.lt_arrays(data_dir, "train")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cifar10-lt_train.tfrecord")
        official.write_tfrecord(path, images, labels)
        theirs = _official_pipeline(
            path, flags_obj.batch_size, flags_obj.crop_padding
        )
        # Warm up: graph tracing, file cache.
        folder_pipelines.time_epochs(theirs, 1)
        theirs_rate = folder_pipelines.time_epochs(theirs, flags_obj.epochs)

    consume = flags_obj.train_images_per_sec
    print(
        f"data_dir: {data_dir}  images/epoch: {builder.num_examples}  "
        f"crop_padding: {flags_obj.crop_padding}"
    )
    print("training epochs (la_keras.runs.train_tf.train_data), images/s:")
    print(f"{'':34}{'epoch 1':>10}{'epoch 2':>10}{'epoch 3':>10}")
    for name, rates in (
        ("before (a new cache every epoch)", before),
        ("after (one cache for the run)", after),
    ):
        print(f"{name:34}" + "".join(f"{r:10.0f}" for r in rates))
    print(
        f"epoch 2, after / before: {after[1] / before[1]:.1f}x "
        f"({before[1]:.0f} -> {after[1]:.0f} images/s)"
    )
    print(
        f"la_keras first epoch (read + decode + cache): {first_rate:9.0f} images/s"
    )
    print(
        f"la_keras steady state:                        {ours_rate:9.0f} images/s"
    )
    print(
        f"official approach:                            {theirs_rate:9.0f} images/s"
    )
    print(
        f"la_keras / official:                          {ours_rate / theirs_rate:9.2f}x (target >= 3x)"
    )
    print(
        f"la_keras / training consumption ({consume:.0f} images/s): "
        f"{ours_rate / consume:.1f}x (target >= 10x); official: "
        f"{theirs_rate / consume:.1f}x"
    )


def main(_):
    # A usage or data error (a --folder_dir not made here, a bad flag)
    # is one line and exit status 1.
    cli.run_main("bench_input_pipeline", lambda: run(FLAGS))


if __name__ == "__main__":
    define_flags()
    app.run(main)
