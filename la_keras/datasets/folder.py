"""`folder:PATH`: a folder of images per class, as a long-tailed dataset.

The layout and the checks are `folder_index.py`'s. The data is used as it
is (it is long-tailed already): the class counts give the priors, and a
class-stratified holdout is taken as for every dataset (`selection.py`).

Images: read upright by their EXIF orientation (`orientation.py`); the
channels are those of most training images (grayscale or RGB;
a tie is RGB; the others converted: gray repeated, alpha dropped, RGB to
luminance), always RGB for the ImageNet recipe, which normalizes RGB.
With `image_size`, every image (train and test) is resized to it (bilinear,
antialiased); without, all images must share one size.

Augmentation (`augment="auto"`): the CIFAR recipe (pad-and-crop, flip;
`x / 255 - 0.5`) for images of at most `SMALL_IMAGE` pixels a side, the
ImageNet recipe (random resized crop, flip; ImageNet mean and std) above;
`augment="cifar"` or `"imagenet"` picks one.

Two readers of the same files: `arrays` (Pillow, numpy; no TensorFlow: the
JAX backend and `launch.prepare`) and `load` (a `tf.data` pipeline that
reads, decodes and resizes in parallel, streaming from disk). They agree
exactly without resizing; resized, up to the rounding of two resize
implementations.
"""

from __future__ import annotations

import concurrent.futures
import numbers
import os

import numpy as np

from la_keras import priors as priors_lib
from la_keras.datasets import folder_index
from la_keras.datasets import orientation
from la_keras.datasets import selection
from la_keras.datasets import split_checks
from la_keras.datasets.info import DatasetInfo

PREFIX = folder_index.PREFIX
AUGMENTS = ("auto", "cifar", "imagenet")
SMALL_IMAGE = 64


def check_image_size(image_size) -> tuple[int, int] | None:
    """`image_size` as `(height, width)`: an int, a pair, "H" or "H,W"."""
    if image_size is None:
        return None
    values = image_size
    if isinstance(values, str):
        values = [v for v in values.replace("x", ",").split(",") if v.strip()]
        try:
            values = [int(v) for v in values]
        except ValueError:
            values = None
    elif isinstance(values, numbers.Integral):
        values = [values]
    values = list(values) if values is not None else []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
        for v in values
    ):
        raise ValueError(
            "Invalid value for argument `image_size`. Expected the size every "
            "image is resized to: H or (H, W), positive integers. Received: "
            f"image_size={image_size!r}"
        )
    return int(values[0]), int(values[1])


class Folder:
    """A checked folder dataset: its index, image shape and recipe.

    Args:
        name: `"folder:PATH"`.
        image_size: None, or `(H, W)` to resize every image to.
        skip_bad_images: train without the files that cannot be read
            (listed in `skipped`); else they are refused.
        augment: "auto", "cifar" or "imagenet".
        index_cache: JSON file of the index (see `folder_index.build`).
    """

    def __init__(
        self,
        name,
        image_size=None,
        skip_bad_images=False,
        augment="auto",
        index_cache=None,
    ):
        if augment not in AUGMENTS:
            raise ValueError(
                f"Invalid value for argument `augment`. Expected one of "
                f"{AUGMENTS}. Received: augment={augment!r}"
            )
        self.name = name
        self.resize = check_image_size(image_size)
        root = os.path.expanduser(name[len(PREFIX) :])
        index = folder_index.build(root, index_cache)
        if index.bad and not skip_bad_images:
            raise folder_index.FolderError(
                folder_index.bad_files_message(index)
            )
        self.skipped = sorted(os.path.join(index.root, p) for p in index.bad)
        self.index = index.without_bad()
        for label, class_name in enumerate(self.index.class_names):
            if not np.any(self.index.labels["train"] == label):
                raise folder_index.FolderError(
                    f"{name}/train/{class_name}: every image of the class is "
                    "unreadable; fix them or remove the class folder."
                )
        self.checks = self._split_checks()
        gray = self.index.gray["train"]
        channels = 1 if 2 * int(gray.sum()) > len(gray) else 3
        height, width = self.resize or self._common_size()
        if augment == "auto":
            small = max(height, width) <= SMALL_IMAGE
            augment = "cifar" if small else "imagenet"
        if augment == "imagenet":
            channels = 3  # the recipe makes RGB (ImageNet's mean and std)
        self.image_shape = (height, width, channels)
        self.preprocessing = augment

    def _common_size(self) -> tuple[int, int]:
        seen = {}
        for split in ("train", "test"):
            for path, size in zip(
                self.index.files[split], self.index.sizes[split], strict=True
            ):
                seen.setdefault(tuple(int(v) for v in size), path)
                if len(seen) == 2:
                    (a, path_a), (b, path_b) = seen.items()
                    raise folder_index.FolderError(
                        f"{self.name} has images of different sizes: "
                        f"{path_a} is {a[0]}x{a[1]} and {path_b} is "
                        f"{b[0]}x{b[1]} (height x width). Pass --image_size=H "
                        "or H,W (image_size=) to resize them all."
                    )
        ((size, _),) = seen.items()
        return size

    def _split_checks(self) -> dict:
        """`DatasetInfo` keywords: the test counts, the test files that
        are files of train/ too (`split_checks`)."""
        index = self.index
        pairs = split_checks.duplicate_pairs(
            index.digests["train"], index.digests["test"]
        )
        return {
            "test_counts": split_checks.test_counts(
                index.labels["test"], len(index.class_names)
            ),
            **split_checks.describe_pairs(
                pairs, index.files["test"], index.files["train"]
            ),
        }

    def split(self, split, holdout_fraction=0.0, seed=0):
        """`(absolute paths, int64 labels, DatasetInfo)` of `split`.

        The train and holdout files come in a fixed order drawn from `seed`
        (classes interleaved, so that a shuffle buffer mixes them); the test
        files sorted by class and path.
        """
        labels = self.index.labels["train"]
        num_classes = len(self.index.class_names)
        train_pos, holdout_pos = selection.select(
            labels, num_classes, None, holdout_fraction, seed
        )
        train_counts = np.bincount(labels[train_pos], minlength=num_classes)
        num_examples = {
            "train": int(len(train_pos)),
            "test": int(len(self.index.labels["test"])),
        }
        if holdout_fraction > 0.0:
            num_examples["holdout"] = int(len(holdout_pos))
        elif split == "holdout":
            raise ValueError(
                f"Invalid value for argument `holdout_fraction`: dataset "
                f"{self.name!r} has no holdout split of its own, so "
                "split='holdout' needs a slice of the train split. Pass "
                "holdout_fraction > 0, e.g. 0.1. Received: "
                f"holdout_fraction={holdout_fraction}"
            )
        info = DatasetInfo(
            name=self.name,
            num_classes=num_classes,
            class_names=self.index.class_names,
            train_counts=train_counts,
            priors=priors_lib.from_counts(train_counts),
            image_shape=self.image_shape,
            num_examples=num_examples,
            preprocessing=self.preprocessing,
            resize=self.resize,
            skipped_images=self.skipped,
            **self.checks,
        )
        if split == "test":
            files, split_labels = (
                self.index.files["test"],
                self.index.labels["test"],
            )
        else:
            positions = train_pos if split == "train" else holdout_pos
            rng = np.random.default_rng(seed)
            positions = positions[rng.permutation(len(positions))]
            files = [self.index.files["train"][i] for i in positions]
            split_labels = labels[positions]
        paths = [os.path.join(self.index.root, f) for f in files]
        return paths, np.asarray(split_labels, np.int64), info


def _check_options(name, ratio, profile):
    if ratio != selection.DEFAULT_RATIO or profile != selection.DEFAULT_PROFILE:
        raise ValueError(
            f"Invalid value for argument `ratio` / `profile`: {name} is used "
            "as it is (its class counts give the priors) and takes no "
            f"long-tail profile. Leave them at ratio={selection.DEFAULT_RATIO}"
            f", profile={selection.DEFAULT_PROFILE!r}. Received: "
            f"ratio={ratio}, profile={profile!r}"
        )


def describe(
    name,
    split,
    *,
    ratio=100.0,
    profile="exp",
    holdout_fraction=0.0,
    seed=0,
    image_size=None,
    skip_bad_images=False,
    augment="auto",
    index_cache=None,
):
    """`(paths, labels, DatasetInfo)` of one split; no TensorFlow."""
    _check_options(name, ratio, profile)
    holdout_fraction = selection.check_holdout_fraction(holdout_fraction)
    data = Folder(name, image_size, skip_bad_images, augment, index_cache)
    return data.split(split, holdout_fraction, seed)


def _read_one(path, mode, resize):
    from PIL import Image

    with Image.open(path) as image:
        turn = orientation.exif_orientation(image)  # before loading
        if image.mode.startswith("I"):
            # 16-bit gray: the high byte, as TensorFlow's PNG decoder keeps.
            values = np.asarray(image).astype(np.int64) >> 8
            image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
        image = orientation.upright(image.convert(mode), turn)
        if resize is not None:
            image = image.resize((resize[1], resize[0]), Image.BILINEAR)
        return np.asarray(image, np.uint8)


def read_images(paths, image_shape, resize=None) -> np.ndarray:
    """uint8 `[N, H, W, C]` of the files, read with Pillow in threads."""
    height, width, channels = image_shape
    mode = "L" if channels == 1 else "RGB"
    images = np.empty([len(paths), height, width, channels], np.uint8)

    def fill(i):
        images[i] = _read_one(paths[i], mode, resize).reshape(images.shape[1:])

    workers = min(32, (os.cpu_count() or 1) * 2)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(fill, range(len(paths))))
    return images


def is_unlabelled(name: str) -> bool:
    """Whether `name` is `folder:PATH` of a folder without `train/`: images
    with no class folders (directly in PATH or in nested folders)."""
    if not name.startswith(PREFIX):
        return False
    root = os.path.expanduser(name[len(PREFIX) :])
    return os.path.isdir(root) and not os.path.isdir(
        os.path.join(root, "train")
    )


def unlabelled_arrays(name, image_shape) -> tuple[list[str], np.ndarray]:
    """`(paths, uint8 images)` of every image under an unlabelled folder.

    Images are found recursively (hidden files and folders skipped, as for
    a class folder), sorted by path, read upright and resized to
    `image_shape`'s `(H, W)` with its channels: a trained model's input.

    Raises:
        FolderError: no such folder, or no image in it.
    """
    root = os.path.expanduser(name[len(PREFIX) :])
    if not os.path.isdir(root):
        raise folder_index.FolderError(f"{name}: no such folder.")
    paths = [path for path, _ in folder_index.image_files(root)]
    if not paths:
        raise folder_index.FolderError(
            f"{name} holds no images ({', '.join(folder_index.EXTENSIONS)})."
        )
    return paths, read_images(paths, image_shape, tuple(image_shape[:2]))


def arrays(name, split, **kwargs):
    """`(uint8 images, int64 labels, DatasetInfo)` of `split`; no TensorFlow.

    Keywords as `describe`.
    """
    paths, labels, info = describe(name, split, **kwargs)
    return read_images(paths, info.image_shape, info.resize), labels, info


def load(name, split, **kwargs):
    """`(tf.data.Dataset, DatasetInfo)`: the split streamed from disk.

    Each element is `(uint8 image [H, W, C], int64 label)`, read, decoded
    (`tf.io.decode_image`, first frame of a GIF) and resized in parallel,
    in the order of `describe`. Keywords as `describe`.
    """
    import tensorflow as tf

    from la_keras.datasets.preprocessing import decode_image

    paths, labels, info = describe(name, split, **kwargs)
    shape, resize = info.image_shape, info.resize

    def read(path, label):
        image = decode_image(tf.io.read_file(path), shape[-1], resize)
        return tf.ensure_shape(image, shape), label

    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int64))
    )
    return dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE), info
