"""Fixtures of the dataset tests."""

import numpy as np
import pytest

from la_keras.datasets import official
from tests.datasets import fakes


@pytest.fixture
def official_dir(tmp_path):
    """A folder with small official-format train and test files.

    Train: 8 records (`fakes.OFFICIAL_TRAIN_LABELS`, images of seed 0);
    test: 10 records, one a class (images of seed 1).
    """
    official.write_tfrecord(
        str(tmp_path / "cifar10-lt_train.tfrecord"),
        fakes.official_images(fakes.OFFICIAL_SIZES["train"], 0),
        np.array(fakes.OFFICIAL_TRAIN_LABELS),
    )
    official.write_tfrecord(
        str(tmp_path / "cifar10_test.tfrecord"),
        fakes.official_images(fakes.OFFICIAL_SIZES["test"], 1),
        np.arange(10),
    )
    return tmp_path
