"""`DatasetBuilder`: batched, preprocessed, per-replica input pipelines."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from la_keras.datasets import folder
from la_keras.datasets import shuffling
from la_keras.datasets.arguments import is_int_at_least
from la_keras.datasets.preprocessing import CIFAR_CROP_PADDING
from la_keras.datasets.preprocessing import check_crop_padding
from la_keras.datasets.preprocessing import preprocess_images
from la_keras.datasets.registry import load
from la_keras.datasets.sampling import check_sampler
from la_keras.datasets.sampling import class_balanced_order
from la_keras.datasets.shuffling import check_shuffle_buffer
from la_keras.datasets.shuffling import default_shuffle_buffer

# A folder dataset's decoded images are cached in memory up to this size
# (e.g. 20,000 CIFAR-size images take 60 MB); larger sets stream from disk.
FOLDER_CACHE_BYTES = 2 * 2**30
AUTOTUNE = tf.data.AUTOTUNE


def caches_in_memory(name: str, info, split: str) -> bool:
    """Whether a split's decoded images are cached in memory for all epochs:
    the CIFAR-recipe sets, and folder sets of at most `FOLDER_CACHE_BYTES`."""
    if name.startswith(folder.PREFIX):
        pixels = int(np.prod(info.image_shape))
        return info.num_examples[split] * pixels <= FOLDER_CACHE_BYTES
    return info.preprocessing == "cifar"


class DatasetBuilder:
    """Builds the input pipeline of one split for training or evaluation.

    The builder owns the batch arithmetic: the global batch size, the
    per-replica batch size and the steps per epoch. `dataset_fn` is what
    `tf.distribute.Strategy.distribute_datasets_from_function` calls: it
    shards the examples per input pipeline and batches per replica.

    CIFAR-style pipeline (`info.preprocessing == "cifar"`): decoded uint8
    images are cached in memory once for all epochs (the first complete
    pass fills the cache; see `source`), shuffled each epoch (training),
    then batched and preprocessed a batch at a time with `preprocess_images`
    (normalize; for training pad `crop_padding` pixels a side, random crop,
    random flip), and prefetched. ImageNet-style: each image is cropped to
    224x224 on its own (sizes differ), then batched. A `folder:<path>`
    dataset streams its files (read and decoded in parallel), is cached in
    memory when it fits (`caches_in_memory`), and is batched before either
    recipe (its images share one size).

    Training shuffles within a buffer of `shuffle_buffer` examples, drawn
    anew each epoch; by default (see `default_shuffle_buffer`) 10,000 for
    the official TFRecords as the official release, the whole split for the
    other CIFAR-recipe sets, `IMAGENET_SHUFFLE_BUFFER` for the ImageNet
    recipe. Evaluation does not shuffle. With `sampler="class_balanced"`,
    training instead draws `num_examples` examples an epoch by
    `la_keras.datasets.sampling.class_balanced_order` of `(seed, epoch)`
    (`dataset_fn`'s `epoch`), gathered from the split's uint8 images held
    in memory, then batched and preprocessed as above.

    One pass over the dataset is one epoch: it does not repeat; iterate it
    again for the next epoch (training reshuffles every pass).

    Args:
        name, split, data_dir, ratio, profile, holdout_fraction, seed,
            expected_examples: as for `la_keras.datasets.load`; `seed` also
            seeds the shuffle.
        global_batch_size: examples per step, summed over replicas.
        training: shuffle and augment.
        drop_remainder: drop the last partial batch. Defaults to `training`.
        crop_padding: zero padding in pixels on each side before the random
            crop of the CIFAR training recipe: 2 (default) as the official
            release, 4 as LDAM / BBN. See `preprocess_images`.
        shuffle_buffer: examples held by the training shuffle of each input
            pipeline, an integer >= 1, or None for the dataset's default.
            Stored resolved; None there means the whole split. Unused by
            the class-balanced sampler.
        sampler: how training draws an epoch's examples (evaluation reads
            each once, in order): "shuffle" (default), each once in a
            random order; "class_balanced", each class equally often (see
            `la_keras.datasets.sampling`), for the datasets held in memory
            (`cached`: the CIFAR-recipe sets and small folder sets).
        **folder_options: `image_size`, `skip_bad_images`, `augment`,
            `index_cache` of a `folder:<path>` dataset, as for `load`.

    Example:

    >>> builder = DatasetBuilder("test", "train", 8, training=True)
    >>> builder.steps_per_epoch
    5
    >>> images, labels = next(iter(builder.build()))
    >>> images.shape
    TensorShape([8, 32, 32, 3])
    """

    def __init__(
        self,
        name,
        split,
        global_batch_size,
        training,
        data_dir=None,
        *,
        ratio=100.0,
        profile="exp",
        holdout_fraction=0.0,
        seed=0,
        drop_remainder=None,
        crop_padding=CIFAR_CROP_PADDING,
        shuffle_buffer=None,
        sampler="shuffle",
        expected_examples=None,
        **folder_options,
    ):
        if not is_int_at_least(global_batch_size, 1):
            raise ValueError(
                "Invalid value for argument `global_batch_size`. Expected a "
                "positive integer (examples per step over all replicas). "
                f"Received: global_batch_size={global_batch_size!r}"
            )
        # Argument errors first, before any data is read.
        crop_padding = check_crop_padding(crop_padding)
        shuffle_buffer = check_shuffle_buffer(shuffle_buffer)
        self.sampler = check_sampler(sampler)
        self._dataset, self.info = load(
            name,
            split,
            data_dir,
            ratio=ratio,
            profile=profile,
            holdout_fraction=holdout_fraction,
            seed=seed,
            expected_examples=expected_examples,
            **folder_options,
        )
        self.cached = caches_in_memory(name, self.info, split)
        if training and self.sampler == "class_balanced" and not self.cached:
            raise ValueError(
                "Invalid value for argument `sampler`: class_balanced sampling"
                " needs a dataset held in memory (a CIFAR-recipe set, or a "
                f"folder set of at most {FOLDER_CACHE_BYTES / 2**30:g} GiB of "
                f"decoded images); {name!r} streams its {split!r} split from "
                "disk. Use sampler='shuffle'. Received: "
                f"sampler={self.sampler!r}"
            )
        self.crop_padding = check_crop_padding(
            crop_padding, self.info.preprocessing
        )
        if shuffle_buffer is None:
            shuffle_buffer = default_shuffle_buffer(
                name, self.info.preprocessing, self.cached
            )
        self.shuffle_buffer = shuffle_buffer
        self.name = name
        self.split = split
        self.global_batch_size = int(global_batch_size)
        self.training = bool(training)
        self.seed = seed
        self.drop_remainder = (
            self.training if drop_remainder is None else bool(drop_remainder)
        )
        self.num_examples = int(self.info.num_examples[split])
        self._sources = {}
        self._arrays = None
        if self.drop_remainder:
            self.steps_per_epoch = self.num_examples // self.global_batch_size
        else:
            self.steps_per_epoch = math.ceil(
                self.num_examples / self.global_batch_size
            )
        if self.steps_per_epoch == 0:
            raise ValueError(
                "Invalid value for argument `global_batch_size`: with "
                f"drop_remainder=True it must be at most the {self.num_examples}"
                f" examples of split {split!r}, or no batch is left. Lower it or "
                "pass drop_remainder=False. Received: "
                f"global_batch_size={global_batch_size}"
            )

    def per_replica_batch_size(self, num_replicas) -> int:
        """The batch size each of `num_replicas` replicas sees per step."""
        if num_replicas < 1 or self.global_batch_size % num_replicas:
            raise ValueError(
                "Invalid value for argument `num_replicas`: the global batch "
                f"size {self.global_batch_size} must be divisible by the number "
                "of replicas. Choose a global batch size that is a multiple of "
                f"it. Received: num_replicas={num_replicas}"
            )
        return self.global_batch_size // num_replicas

    def dataset_fn(self, input_context=None, epoch=None):
        """The batched, preprocessed dataset for one input pipeline.

        Every call builds a new shuffle, augmentation and batching over the
        same source: the examples of this input pipeline, cached in memory
        for the CIFAR recipe (see `source`), so that only the first epoch
        reads and decodes the data. A training epoch's random draws are a
        function of `(seed, epoch)` and the input pipeline only, passed to
        its ops (`epoch_seed`): the shuffle's seed, and a stateless seed per
        batch (per image for the ImageNet recipe) for the augmentation, from
        a `tf.data.Dataset.random` stream. No process-wide random state is
        set, so an epoch can be built on any thread, and the same epoch
        gives the same batches (crops included) in any process, whatever
        the parallelism of its `map`. The first pass over the returned
        dataset is that epoch; iterating it again (for example with
        `repeat()` or `model.fit`) reshuffles and redraws.

        Args:
            input_context: a `tf.distribute.InputContext`, or None for the
                whole dataset batched at the global batch size.
            epoch: the training epoch, from 0 (None: 0). The class-balanced
                sampler's draws (input pipeline `i` of `n` takes draws
                `i, i + n, ...`) need it given.

        Returns:
            A `tf.data.Dataset` of `(float32 images [B, H, W, C],
            int64 labels [B])`.
        """
        batch_size = self.global_batch_size
        num_examples = self.num_examples
        pipeline = 0
        if input_context is not None:
            pipeline = input_context.input_pipeline_id
            batch_size = self.per_replica_batch_size(
                input_context.num_replicas_in_sync
            )
            shards = input_context.num_input_pipelines
            if shards > 1:
                num_examples = math.ceil(num_examples / shards)
        training = self.training
        buffer = self.shuffle_buffer
        if buffer is None:
            buffer = max(num_examples, 1)

        seed = None
        if training:
            if epoch is None and self.sampler != "class_balanced":
                epoch = 0
            seed = shuffling.epoch_seed(self.seed, epoch, pipeline)

        def augment(images, draw_seed=None):
            return preprocess_images(
                images,
                self.info.preprocessing,
                training,
                crop_padding=self.crop_padding,
                image_size=self.info.image_shape[:2],
                seed=draw_seed,
            )

        # Named functions, not lambdas: AutoGraph cannot find the source of
        # a lambda that spans lines.
        def preprocess_batch(images, labels, draw_seed=None):
            return augment(images, draw_seed), labels

        def preprocess_image(image, label, draw_seed=None):
            return augment(image[None], draw_seed)[0], label

        def preprocess(dataset, fn):
            if training:  # Each element with its augmentation seed.
                dataset, fn = shuffling.with_seeds(dataset, seed, fn)
            return dataset.map(fn, num_parallel_calls=AUTOTUNE)

        if training and self.sampler == "class_balanced":
            dataset = self._balanced_batches(input_context, epoch, batch_size)
            return preprocess(dataset, preprocess_batch).prefetch(AUTOTUNE)
        dataset = self.source(input_context)
        if training:
            dataset = dataset.shuffle(
                buffer, seed=seed, reshuffle_each_iteration=True
            )
        if self.fixed_size:
            # Whole batches at once: `preprocess_images` is vectorized.
            dataset = self._batch(dataset, batch_size)
            dataset = preprocess(dataset, preprocess_batch)
        else:
            # Image by image: the sizes differ until the crop.
            dataset = preprocess(dataset, preprocess_image)
            dataset = self._batch(dataset, batch_size)
        return dataset.prefetch(AUTOTUNE)

    def source(self, input_context=None):
        """The examples of one input pipeline, before shuffle and batching.

        Sharded per input pipeline and, for the CIFAR recipe, cached in
        memory. Made once per input pipeline and returned by every later
        call (in eager mode), so that the cache, which belongs to the
        dataset object and is filled by its first complete pass, serves
        every epoch: a new `cache()` each epoch would start empty and read
        and decode the source again.

        Args:
            input_context: a `tf.distribute.InputContext`, or None.
        """
        shards, index = 1, 0
        if input_context is not None:
            shards = input_context.num_input_pipelines
            index = input_context.input_pipeline_id
        key = (shards, index)
        if tf.executing_eagerly() and key in self._sources:
            return self._sources[key]
        dataset = self._dataset
        if shards > 1:
            dataset = dataset.shard(shards, index)
        if self.cached:
            dataset = dataset.cache()
        if tf.executing_eagerly():
            self._sources[key] = dataset
        return dataset

    def _balanced_batches(self, input_context, epoch, batch_size):
        """The uint8 batches of this input pipeline's share of the
        class-balanced `epoch`: its draws of `class_balanced_order`, the
        images gathered from the split held in memory (read once)."""
        shards, index = 1, 0
        if input_context is not None:
            shards = input_context.num_input_pipelines
            index = input_context.input_pipeline_id
        if self._arrays is None:
            images, labels = [], []
            for x, y in self._dataset.batch(1024).as_numpy_iterator():
                images.append(x)
                labels.append(y)
            # An eager tensor made once, outside any graph and on the host,
            # that every epoch's gather captures.
            with tf.init_scope(), tf.device("/cpu:0"):
                images = tf.constant(np.concatenate(images))
            self._arrays = images, np.concatenate(labels).astype(np.int64)
        images, labels = self._arrays
        order = class_balanced_order(
            labels, self.seed, epoch, self.num_examples
        )[index::shards]

        def gather(rows, batch_labels):
            return tf.gather(images, rows), batch_labels

        dataset = tf.data.Dataset.from_tensor_slices((order, labels[order]))
        dataset = self._batch(dataset, batch_size)
        return dataset.map(gather, num_parallel_calls=AUTOTUNE)

    @property
    def fixed_size(self) -> bool:
        """Whether every raw image has the same size (batched before the
        preprocessing): the CIFAR-recipe and folder datasets."""
        return self.info.preprocessing == "cifar" or self.name.startswith(
            folder.PREFIX
        )

    def reset_cache(self) -> None:
        """Forgets the cached sources: the next pass reads the data again."""
        self._sources.clear()
        self._arrays = None

    def _batch(self, dataset, batch_size):
        return dataset.batch(
            batch_size,
            drop_remainder=self.drop_remainder,
            num_parallel_calls=AUTOTUNE,
        )

    def build(self, strategy=None, epoch=None):
        """The dataset, distributed over `strategy`'s replicas if given;
        `epoch` as for `dataset_fn`."""
        if strategy is None:
            return self.dataset_fn(None, epoch)
        return strategy.distribute_datasets_from_function(
            lambda context: self.dataset_fn(context, epoch)
        )
