"""Long-tailed datasets and their input pipelines.

`load(name, split)` returns an unbatched `tf.data.Dataset` of
`(uint8 image, int64 label)` and a `DatasetInfo` (classes, train counts,
priors); `DatasetBuilder` turns a split into batched, preprocessed,
per-replica pipelines. `names()` lists the datasets.

Those need TensorFlow and are imported on first use. `DatasetInfo` and
`prepared` (the files of `launch.prepare`, read with numpy alone) do not,
so a prepared dataset is read where TensorFlow is not installed.
"""

import importlib

from la_keras.datasets import prepared
from la_keras.datasets.info import DatasetInfo

_LAZY = {
    "DatasetBuilder": ("la_keras.datasets.dataset_builder", "DatasetBuilder"),
    "load": ("la_keras.datasets.registry", "load"),
    "names": ("la_keras.datasets.registry", "names"),
    "official": ("la_keras.datasets.official", None),
    "preprocess_images": (
        "la_keras.datasets.preprocessing",
        "preprocess_images",
    ),
}

__all__ = ["DatasetInfo", "prepared", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(
            f"module 'la_keras.datasets' has no attribute {name!r}"
        )
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
