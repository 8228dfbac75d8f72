"""Long-tailed datasets and their input pipelines.

`load(name, split)` returns an unbatched `tf.data.Dataset` of
`(uint8 image, int64 label)` and a `DatasetInfo` (classes, train counts,
priors); `DatasetBuilder` turns a split into batched, preprocessed,
per-replica pipelines. `names()` lists the datasets.
"""

from la_keras.datasets import official
from la_keras.datasets.dataset_builder import DatasetBuilder
from la_keras.datasets.info import DatasetInfo
from la_keras.datasets.preprocessing import preprocess_images
from la_keras.datasets.registry import load
from la_keras.datasets.registry import names

__all__ = [
    "DatasetBuilder",
    "DatasetInfo",
    "load",
    "names",
    "official",
    "preprocess_images",
]
