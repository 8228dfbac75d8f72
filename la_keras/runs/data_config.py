"""`DataConfig`: which data a run reads, and how it is batched.

The one place where `launch` builds datasets: `DataConfig.builder` /
`builders` (the `tf.data` pipelines of the TensorFlow backend), `load` and
`raw_split` (unbatched / batched uint8 splits), and `arrays` (numpy arrays
for the JAX backend; a `prepared:` file is read with numpy alone).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

import numpy as np

from la_keras import datasets
from la_keras.datasets import folder
from la_keras.datasets import folder_index
from la_keras.datasets import prepared
from la_keras.runs.errors import RunError

# Datasets whose official TFRecords and base_probs live in --data_home.
# (`cifar10-lt` reads the official files; `cifar10_lt`, one character
# apart, derives the same long-tailed set from TFDS cifar10.)
OFFICIAL_DATASETS = ("cifar10-lt", "cifar100-lt")
# Datasets with a holdout split of their own (used when holdout_fraction=0).
OWN_HOLDOUT = ("imagenet_lt",)
# A folder dataset's checked file index, kept in the run's model_dir.
FOLDER_INDEX = "folder_index.json"
# The flags of folder datasets only, and their defaults.
FOLDER_FLAGS = {"image_size": None, "skip_bad_images": False, "augment": "auto"}


@contextlib.contextmanager
def _dataset_errors(dataset: str):
    """A dataset's ValueError, FileNotFoundError or missing TensorFlow as a
    one-line UsageError."""
    try:
        yield
    except RunError:
        raise  # already one line that names the flag
    except (ValueError, FileNotFoundError) as e:
        message = str(e)
        if not message.startswith(dataset):  # a folder's names its path
            message = f"--dataset={dataset}: {message}"
        raise RunError(message) from e
    except ImportError as e:
        raise RunError(
            f"--dataset={dataset} is read with TensorFlow and TFDS, which "
            f"cannot be imported here ({e}). Without TensorFlow, use "
            "--dataset=prepared:PATH, a file written by `python -m "
            "launch.prepare` where TFDS works."
        ) from e


def dataset_checksum(dataset: str) -> str | None:
    """The identity of a dataset's contents, wherever its files lie.

    A `prepared:` file's `la_keras.datasets.prepared.checksum` (the SHA-256
    of its metadata, which holds every array's); a `folder:` dataset's
    listing digest (`folder_index.listing_digest`: the SHA-256 of every
    image's path relative to the folder, label and byte size, which the
    run's folder index also checks). None for the other kinds, which are
    named, not located.

    Raises:
        RunError: the file or folder cannot be read (one line).
    """
    with _dataset_errors(dataset):
        if dataset.startswith(prepared.PREFIX):
            return prepared.checksum(dataset[len(prepared.PREFIX) :])
        if dataset.startswith(folder.PREFIX):
            root = os.path.expanduser(dataset[len(folder.PREFIX) :])
            return folder_index.listing_digest(folder_index.list_files(root)[2])
    return None


def located(dataset: str) -> bool:
    """Whether `dataset` names files by path (`prepared:`, `folder:`)."""
    return dataset.startswith((prepared.PREFIX, folder.PREFIX))


def run_data_at(model_dir: str, recorded: dict, dataset: str | None) -> dict:
    """The fields of a run's data found at `dataset`, checked by checksum.

    For `launch.evaluate` / `launch.export` of a run that may have moved:
    its `prepared:` file or `folder:` dataset is accepted at any path
    where it has the checksum the run recorded, and refused (one line)
    where another file lies.

    Args:
        model_dir: the run's folder (for messages).
        recorded: the run's flags.json.
        dataset: the `--dataset` given, or None: the run's recorded one.

    Returns:
        `{"dataset": ..., "dataset_checksum": ...}` (empty when there is
        nothing to check: a named dataset, or a run recorded before
        checksums at its recorded path).

    Raises:
        RunError: another kind of dataset, other contents, data not
            found, or a moved run that recorded no checksum.
    """
    trained = recorded.get("dataset", "")
    checksum = recorded.get("dataset_checksum")
    kind = (dataset or trained).split(":", 1)[0] + ":"
    if dataset not in (None, trained) and not (
        located(dataset) and trained.startswith(kind)
    ):
        raise RunError(
            f"--dataset={dataset} conflicts with the run in {model_dir}, "
            f"trained on --dataset={trained}. Leave --dataset out to "
            "evaluate on the run's dataset; to evaluate on other data, export "
            "a SavedModel and pass --saved_model with --dataset."
        )
    if not located(trained) or (
        checksum is None and dataset in (None, trained)
    ):
        return {}
    if checksum is None:
        raise RunError(
            f"--dataset={dataset}: the run in {model_dir} was trained on "
            f"--dataset={trained} and recorded no checksum of it (an older "
            "la_keras), so its data cannot be recognised at another path; "
            f"pass --dataset={trained}."
        )
    path = (dataset or trained).split(":", 1)[1]
    if dataset is None and not os.path.exists(os.path.expanduser(path)):
        raise RunError(
            f"The run in {model_dir} was trained on --dataset={trained}, "
            f"which is not there (a moved run?): pass --dataset={kind}PATH "
            "where it lies now; it is recognised by its checksum."
        )
    found = dataset_checksum(dataset or trained)
    if found != checksum:
        raise RunError(
            f"--dataset={dataset or trained} is not the data the run in "
            f"{model_dir} was trained on: its checksum is {found}, the run's "
            f"is {checksum}. Pass the run's file or folder as --dataset, "
            "wherever it lies now."
        )
    return {"dataset": dataset or trained, "dataset_checksum": found}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data a run reads, and how it is batched.

    Args:
        dataset: a name of `la_keras.datasets.names()` or `tfds:<name>`.
        data_home: folder of the official TFRecords (`cifar10-lt`,
            `cifar100-lt`).
        data_dir: TFDS data_dir of the TFDS-backed datasets.
        ratio, profile, holdout_fraction, seed: as for
            `la_keras.datasets.load`.
        train_batch_size, test_batch_size: global batch sizes.
        crop_padding: pixels of padding a side before the random crop of
            the CIFAR recipe: 2 as the official release, 4 as LDAM / BBN.
        shuffle_buffer: training shuffle buffer (None: the dataset's
            default, 10,000 records for the official TFRecords as the
            official release, the whole split for the other CIFAR sets).
        expected_train_examples, expected_test_examples: the record counts
            of official-format TFRecords that are not the official files
            (None: the official sizes).
        image_size, skip_bad_images, augment: of a `folder:` dataset (see
            `la_keras.datasets.folder`); `image_size` is `[H, W]` or None.
        sampler: the training order, "shuffle" or "class_balanced" (see
            `la_keras.datasets.sampling`).
        dataset_checksum: what a `prepared:` file or `folder:` dataset
            holds, wherever it lies (`dataset_checksum`); None for the
            other kinds. A resumed run compares it instead of the path.
        folder_index: where the folder's checked file index is kept (the
            run's model_dir; not a flag, not in flags.json), or None.
    """

    dataset: str = "cifar10-lt"
    data_home: str = "logit_adjustment/data"
    data_dir: str | None = None
    ratio: float = 100.0
    profile: str = "exp"
    holdout_fraction: float = 0.0
    seed: int = 0
    train_batch_size: int = 128
    test_batch_size: int = 100
    crop_padding: int = 2
    shuffle_buffer: int | None = None
    expected_train_examples: int | None = None
    expected_test_examples: int | None = None
    image_size: list | None = None
    skip_bad_images: bool = False
    augment: str = "auto"
    sampler: str = "shuffle"
    dataset_checksum: str | None = None
    folder_index: str | None = dataclasses.field(default=None, compare=False)

    @property
    def is_folder(self) -> bool:
        return self.dataset.startswith(folder.PREFIX)

    @property
    def dataset_dir(self) -> str | None:
        """Where the dataset reads from: data_home or the TFDS data_dir."""
        if self.dataset in OFFICIAL_DATASETS:
            return self.data_home
        return self.data_dir

    @property
    def has_holdout(self) -> bool:
        if self.dataset.startswith(prepared.PREFIX):
            own = "holdout" in self.prepared_metadata()["num_examples"]
            return own or self.holdout_fraction > 0
        return self.holdout_fraction > 0 or self.dataset in OWN_HOLDOUT

    def prepared_metadata(self) -> dict:
        """The metadata of a `prepared:` dataset's file."""
        with _dataset_errors(self.dataset):
            return prepared.read_metadata(self.dataset[len(prepared.PREFIX) :])

    @property
    def eval_splits(self) -> tuple[str, ...]:
        return ("test", "holdout") if self.has_holdout else ("test",)

    def _load_kwargs(self) -> dict:
        expected = {
            split: count
            for split, count in (
                ("train", self.expected_train_examples),
                ("test", self.expected_test_examples),
            )
            if count is not None
        }
        kwargs = dict(
            ratio=self.ratio,
            profile=self.profile,
            holdout_fraction=self.holdout_fraction,
            seed=self.seed,
            expected_examples=expected or None,
        )
        given = [k for k, v in FOLDER_FLAGS.items() if getattr(self, k) != v]
        if self.is_folder:
            kwargs.update({k: getattr(self, k) for k in FOLDER_FLAGS})
            kwargs["index_cache"] = self.folder_index
        elif given:
            also = (
                " (--image_size also sizes the input of a pretrained "
                "backbone: --pretrained, hub:)"
                if "image_size" in given
                else ""
            )
            raise RunError(
                f"--{' / --'.join(given)} appl{'ies' if len(given) == 1 else 'y'}"
                f" to --dataset=folder:<path> only, not --dataset="
                f"{self.dataset}{also}."
            )
        return kwargs

    def builder(
        self, split: str, training: bool | None = None
    ) -> datasets.DatasetBuilder:
        """The `DatasetBuilder` of `split`: train shuffles and augments
        (unless `training=False`: the evaluation pipeline of any split)."""
        if training is None:
            training = split == "train"
        batch = self.train_batch_size if training else self.test_batch_size
        with _dataset_errors(self.dataset):
            return datasets.DatasetBuilder(
                self.dataset,
                split,
                batch,
                training,
                self.dataset_dir,
                crop_padding=self.crop_padding,
                shuffle_buffer=self.shuffle_buffer,
                sampler=self.sampler,
                **self._load_kwargs(),
            )

    def builders(self) -> dict[str, datasets.DatasetBuilder]:
        """Builders of train and every evaluation split."""
        return {s: self.builder(s) for s in ("train", *self.eval_splits)}

    def raw_split(self, split: str):
        """`(uint8 images, labels)` batches of `split`, not preprocessed."""
        return self.load(split)[0].batch(self.test_batch_size)

    def arrays(self, split: str):
        """`(uint8 images, int64 labels, info)` of `split` as numpy arrays.

        A prepared dataset is read with numpy alone (no TensorFlow).
        """
        if self.dataset.startswith(prepared.PREFIX):
            path = self.dataset[len(prepared.PREFIX) :]
            with _dataset_errors(self.dataset):
                return prepared.split_arrays(
                    path,
                    split,
                    self.dataset,
                    self.holdout_fraction,
                    self.seed,
                )
        if self.is_folder:
            kwargs = self._load_kwargs()
            kwargs.pop("expected_examples")
            with _dataset_errors(self.dataset):
                return folder.arrays(self.dataset, split, **kwargs)
        dataset, info = self.load(split)
        images, labels = [], []
        for batch_images, batch_labels in dataset.batch(1024):
            images.append(batch_images.numpy())
            labels.append(batch_labels.numpy())
        return (
            np.concatenate(images),
            np.concatenate(labels).astype(np.int64),
            info,
        )

    def info(self):
        """The `DatasetInfo` of the data (no TensorFlow for `prepared:` and
        `folder:`)."""
        if self.dataset.startswith(prepared.PREFIX):
            return self.arrays("train")[2]
        if self.is_folder:
            kwargs = self._load_kwargs()
            kwargs.pop("expected_examples")
            with _dataset_errors(self.dataset):
                return folder.describe(self.dataset, "train", **kwargs)[2]
        return self.load("train")[1]

    def load(self, split: str = "train"):
        """`la_keras.datasets.load` of `split`: `(dataset, info)`."""
        with _dataset_errors(self.dataset):
            return datasets.load(
                self.dataset, split, self.dataset_dir, **self._load_kwargs()
            )
