"""Batches of an in-memory dataset on a JAX device, augmented on the device.

For `JaxTrainer` on a prepared (`la_keras.datasets.prepared`) dataset that
fits in accelerator memory: the uint8 images stay on the device for the whole
run; each epoch is a permutation drawn from `(seed, epoch)` (the same seeding
as the TensorFlow path, `epoch_seed`), and each batch is normalised
(`x / 255 - 0.5`), padded `crop_padding` pixels a side, cropped back at a
random offset and flipped at random inside one jitted function: the official
CIFAR augmentation.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from la_keras.training.loop import epoch_seed


def _augment(key, images, crop_padding: int):
    """The official CIFAR crop and flip of a uint8 batch, normalised."""
    x = images.astype(jnp.float32) / 255.0 - 0.5
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
        batch_size: examples per step; the last partial batch is dropped
            (as the TensorFlow training pipeline does).
        seed: the run seed.
        crop_padding: the crop's padding, 2 as the official release.
    """

    def __init__(self, images, labels, batch_size, seed=0, crop_padding=2):
        self.images = jax.device_put(np.asarray(images, np.uint8))
        self.labels = jax.device_put(np.asarray(labels, np.int32))
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.crop_padding = int(crop_padding)
        self.steps_per_epoch = len(labels) // self.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"Invalid value for argument `batch_size`: {batch_size} is "
                f"more than the {len(labels)} examples."
            )
        self._batch = jax.jit(self._batch_fn, static_argnums=(3,))

    def _batch_fn(self, key, order, index, crop_padding):
        start = index * self.batch_size
        rows = jax.lax.dynamic_slice(order, (start,), (self.batch_size,))
        images = _augment(key, self.images[rows], crop_padding)
        return images, self.labels[rows]

    def epoch(self, epoch: int, skip: int = 0) -> Iterator:
        """The batches of `epoch`, the first `skip` of them skipped."""
        key = jax.random.PRNGKey(epoch_seed(self.seed, epoch))
        key, order_key = jax.random.split(key)
        order = jax.random.permutation(order_key, len(self.labels))
        for index in range(int(skip), self.steps_per_epoch):
            batch_key = jax.random.fold_in(key, index)
            yield self._batch(batch_key, order, index, self.crop_padding)
