"""Batches of an in-memory dataset on a JAX device, augmented on the device.

For `JaxTrainer` on a prepared (`la_keras.datasets.prepared`) dataset that
fits in accelerator memory: the uint8 images stay on the device for the whole
run; each epoch is a permutation drawn from `(seed, epoch)` (the same seeding
as the TensorFlow path, `epoch_seed`), or with `sampler="class_balanced"` the
draws of `la_keras.datasets.sampling.class_balanced_order` (the TensorFlow
pipeline's, computed on the host), and each batch is normalised
(`x / 255 - 0.5`), padded `crop_padding` pixels a side, cropped back at a
random offset and flipped at random inside one jitted function: the official
CIFAR augmentation.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from la_keras.datasets.sampling import check_sampler
from la_keras.datasets.sampling import class_balanced_order
from la_keras.seeds import epoch_seed


def normalize(images):
    """`x / 255 - 0.5` of uint8 images, as float32: the CIFAR recipe's
    normalisation (`la_keras.datasets.preprocess_images` on TensorFlow)."""
    return jnp.asarray(images).astype(jnp.float32) / 255.0 - 0.5


def _augment(key, images, crop_padding: int):
    """The official CIFAR crop and flip of a uint8 batch, normalised."""
    x = normalize(images)
    if crop_padding == 0:
        shifted = x
    else:
        batch, height, width, _ = x.shape
        pad = crop_padding
        padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        key, crop_key = jax.random.split(key)
        offsets = jax.random.randint(crop_key, (batch, 2), 0, 2 * pad + 1)

        def crop(image, offset):
            return jax.lax.dynamic_slice(
                image, (offset[0], offset[1], 0), (height, width, x.shape[-1])
            )

        shifted = jax.vmap(crop)(padded, offsets)
    flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
    return jnp.where(flip, shifted[:, :, ::-1, :], shifted)


class DeviceDataset:
    """Training batches of uint8 `images` and `labels` kept on the device.

    Args:
        images: uint8 `[N, H, W, C]`.
        labels: int `[N]`.
        batch_size: examples per step (global); the last partial batch is
            dropped (as the TensorFlow training pipeline does).
        seed: the run seed.
        crop_padding: the crop's padding, 2 as the official release.
        distribution: a `keras.distribution.DataParallel`, or None (one
            device). With it the data set is replicated on every device and
            each batch is split along its first axis over the devices.
        sampler: "shuffle" (default), every example once an epoch in a
            random order; "class_balanced", each class equally often, as
            `la_keras.datasets.sampling.class_balanced_order` draws (the
            same examples as the TensorFlow pipeline's for the same seed
            and epoch). The steps per epoch are the same.
    """

    def __init__(
        self,
        images,
        labels,
        batch_size,
        seed=0,
        crop_padding=2,
        distribution=None,
        sampler="shuffle",
    ):
        self.sampler = check_sampler(sampler)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.crop_padding = int(crop_padding)
        self.steps_per_epoch = len(labels) // self.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"Invalid value for argument `batch_size`: {batch_size} is "
                f"more than the {len(labels)} examples."
            )
        images = np.asarray(images, np.uint8)
        self._batch_sharding = self._replicated = None
        if distribution is not None:
            devices = distribution.device_mesh.devices.size
            if self.batch_size % devices:
                raise ValueError(
                    f"Invalid value for argument `batch_size`: {batch_size} "
                    f"does not split over the {devices} devices."
                )
            mesh = distribution.device_mesh.backend_mesh
            spec = jax.sharding.PartitionSpec
            self._batch_sharding = jax.sharding.NamedSharding(
                mesh, spec(distribution.batch_dim_name)
            )
            self._replicated = jax.sharding.NamedSharding(mesh, spec())
        self.images = jax.device_put(images, self._replicated)
        self._host_labels = np.asarray(labels, np.int64)
        self.labels = jax.device_put(
            self._host_labels.astype(np.int32), self._replicated
        )
        self._batch = jax.jit(self.batch_at)

    def batch_at(self, key, order, index):
        """Batch `index` of the epoch `(key, order)`; traceable (jit, scan)."""
        batch_key = jax.random.fold_in(key, index)
        start = index * self.batch_size
        rows = jax.lax.dynamic_slice(order, (start,), (self.batch_size,))
        images = _augment(batch_key, self.images[rows], self.crop_padding)
        labels = self.labels[rows]
        if self._batch_sharding is not None:
            images, labels = jax.lax.with_sharding_constraint(
                (images, labels), self._batch_sharding
            )
        return images, labels

    def epoch(self, epoch: int, skip: int = 0) -> DeviceEpoch:
        """The batches of `epoch`, the first `skip` of them skipped."""
        key = jax.random.PRNGKey(epoch_seed(self.seed, epoch))
        key, order_key = jax.random.split(key)
        if self.sampler == "class_balanced":
            order = class_balanced_order(self._host_labels, self.seed, epoch)
            order = jax.device_put(order.astype(np.int32), self._replicated)
        else:
            order = jax.random.permutation(order_key, len(self.labels))
        return DeviceEpoch(self, key, order, int(skip))


class DeviceEpoch:
    """The batches of one epoch of a `DeviceDataset`, from batch `index` on.

    An iterator of `(images, labels)` batches, each made by one jitted call;
    a step runner may instead run `batch_at(key, order, index + i)` inside
    its own compiled loop (`JaxTrainer(loop="scan")`) and then `advance`.
    Both give the same batches.
    """

    def __init__(self, dataset: DeviceDataset, key, order, index: int):
        self.dataset = dataset
        self.batch_at = dataset.batch_at
        self.key = key
        self.order = order
        self.index = int(index)

    @property
    def remaining(self) -> int:
        return self.dataset.steps_per_epoch - self.index

    def advance(self, num_steps: int) -> None:
        """Marks `num_steps` batches as consumed by the caller."""
        if not 0 <= num_steps <= self.remaining:
            raise ValueError(
                f"Cannot advance {num_steps} batches: {self.remaining} left."
            )
        self.index += int(num_steps)

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        if self.remaining <= 0:
            raise StopIteration
        batch = self.dataset._batch(self.key, self.order, self.index)
        self.index += 1
        return batch
