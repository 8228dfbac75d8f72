"""The folder section of `bench_input_pipeline.py` (see its docstring).

Makes folders of JPEGs per class from the real CIFAR-10 and times la_keras's
`folder:PATH` pipeline against `keras.utils.image_dataset_from_directory`
on them.
"""

import json
import os
import shutil
import tempfile
import time

from absl import app


def time_epochs(dataset, epochs):
    """Images/s of `epochs` passes over `dataset` of `(images, labels)`."""
    images = seconds = 0
    for _ in range(epochs):
        n, t = _one_epoch(dataset)
        images, seconds = images + n, seconds + t
    return images / seconds


def _one_epoch(dataset):
    """`(images, seconds)` of one pass over `dataset`."""
    images = 0
    start = time.perf_counter()
    for batch, _ in dataset:
        images += int(batch.shape[0])
    return images, time.perf_counter() - start


def lt_arrays(data_dir, split):
    """uint8 images, labels and class names of `cifar10_lt`'s `split`."""
    import numpy as np

    from la_keras import datasets

    raw, info = datasets.load("cifar10_lt", split, data_dir)
    images, labels = zip(*raw.as_numpy_iterator(), strict=True)
    return np.stack(images), np.array(labels), info.class_names


def _made(root, spec):
    """Whether `root` holds the folder of `spec`, made by `_make_folder`;
    refuses a `root` that `_make_folder` did not make."""
    marker = os.path.join(root, "bench.json")
    if os.path.exists(marker):
        with open(marker) as f:
            return json.load(f) == spec
    if os.path.exists(root):
        raise app.UsageError(
            f"{root} exists and was not made by this bench (no bench.json): "
            "remove it or pass another --folder_dir."
        )
    return False


def _make_folder(root, spec, splits, class_names):
    """Writes `{split: (images, labels)}` as `root/<split>/<class>/<n>.jpg`,
    resized to `spec["size"]` (bicubic), then `root/bench.json`."""
    from PIL import Image

    size = spec["size"]
    shutil.rmtree(root, ignore_errors=True)
    for split, (images, labels) in splits.items():
        for n, (image, label) in enumerate(zip(images, labels, strict=True)):
            image = Image.fromarray(image)
            if image.size != (size, size):
                image = image.resize((size, size), Image.BICUBIC)
            folder = os.path.join(root, split, class_names[label])
            os.makedirs(folder, exist_ok=True)
            image.save(os.path.join(folder, f"{n}.jpg"), quality=90)
    with open(os.path.join(root, "bench.json"), "w") as f:
        json.dump(spec, f)


def make_folders(flags_obj, data_dir, parent):
    """The two folders of the folder section, `[(root, size, recipe)]`."""
    import numpy as np

    count = flags_obj.folder_224_images
    folders = [
        ("cifar10_lt_32px", "cifar", {"size": 32, "train": "all"}),
        (
            f"cifar10_lt_224px_{count}",
            "imagenet",
            {"size": 224, "train": count},
        ),
    ]
    arrays = {}
    for name, _, spec in folders:
        root = os.path.join(parent, name)
        if _made(root, spec):
            print(f"reusing {root}")
            continue
        if not arrays:
            arrays["train"] = lt_arrays(data_dir, "train")
            arrays["test"] = lt_arrays(data_dir, "test")
        (train_x, train_y, class_names), (test_x, test_y, _) = (
            arrays["train"],
            arrays["test"],
        )
        if spec["train"] != "all":
            if not 10 <= count <= len(train_y):
                raise app.UsageError(
                    f"--folder_224_images must be in [10, {len(train_y)}] "
                    f"(the cifar10_lt train images); received {count}."
                )
            rng = np.random.default_rng(0)
            pick = rng.permutation(len(train_y))[:count]
            train_x, train_y = train_x[pick], train_y[pick]
            # Test images only of the classes that train/ has.
            pick = np.flatnonzero(np.isin(test_y, train_y))
            pick = rng.permutation(pick)[: max(count // 10, 1)]
            test_x, test_y = test_x[pick], test_y[pick]
        start = time.perf_counter()
        splits = {"train": (train_x, train_y), "test": (test_x, test_y)}
        _make_folder(root, spec, splits, class_names)
        seconds = time.perf_counter() - start
        print(f"made {root} in {seconds:.0f} s (not timed below)")
    return [(os.path.join(parent, n), s["size"], r) for n, r, s in folders]


# The `image_dataset_from_directory` variants: (row name, what is cached).
KERAS_VARIANTS = (
    ("image_dataset_from_directory", None),
    ("image_dataset_from_directory .cache()", "batches"),
    ("idfd .unbatch().cache().shuffle(all)", "images"),
)


def _keras_pipeline(root, batch_size, size, recipe, cache):
    """`image_dataset_from_directory` + the same augmentation, prefetched.

    `cache`: None (every epoch reads and decodes), "batches" (`.cache()`:
    the first epoch's batches replayed) or "images" (the float images
    cached, then a whole-split shuffle each epoch and batching, as
    la_keras).
    """
    import keras
    import tensorflow as tf

    from la_keras.datasets import preprocess_images

    dataset = keras.utils.image_dataset_from_directory(
        os.path.join(root, "train"),
        batch_size=batch_size,
        image_size=(size, size),
        shuffle=True,
        seed=0,
        verbose=False,
    )
    if cache == "batches":
        dataset = dataset.cache()
    elif cache == "images":
        count = len(dataset.file_paths)
        dataset = dataset.unbatch().cache().shuffle(count, seed=0)
        dataset = dataset.batch(batch_size)

    def augment(images, labels):
        return preprocess_images(
            images, recipe, training=True, image_size=(size, size)
        ), labels

    dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _time_folder(root, size, recipe, flags_obj, tmp):
    """Rows `(pipeline, setup s, epoch 1, steady)` and the index times."""
    from la_keras import datasets
    from la_keras.datasets import folder_index

    batch, epochs = flags_obj.batch_size, flags_obj.folder_epochs
    cache = os.path.join(tmp, os.path.basename(root) + "_index.json")
    start = time.perf_counter()
    index = folder_index.build(root, cache)
    built = time.perf_counter() - start
    start = time.perf_counter()
    folder_index.build(root, cache)
    reused = time.perf_counter() - start
    files = sum(len(f) for f in index.files.values())
    print(
        f"{root}: {len(index.files['train'])} train images of {size}x{size}"
        f"; index of {files} files: built in {built:.1f} s, reused from "
        f"index_cache in {reused:.2f} s"
    )

    def ours():
        return datasets.DatasetBuilder(
            "folder:" + root, "train", batch, training=True, index_cache=cache
        ).build()

    makers = [("la_keras DatasetBuilder", ours)]
    for name, cached in KERAS_VARIANTS:

        def theirs(cached=cached):
            return _keras_pipeline(root, batch, size, recipe, cached)

        makers.append((name, theirs))
    # Made and run for a first epoch one after the other; then their
    # steady-state epochs interleaved, so that a change of the machine's
    # load falls on all of them alike.
    rows = []
    for name, make in makers:
        start = time.perf_counter()
        dataset = make()
        setup = time.perf_counter() - start
        rows.append((name, dataset, setup, time_epochs(dataset, 1), []))
    for _ in range(epochs):
        for _, dataset, _, _, steady in rows:
            steady.append(_one_epoch(dataset))
    return [
        (
            name,
            setup,
            first,
            sum(n for n, _ in steady) / sum(t for _, t in steady),
            [n / t for n, t in steady],
        )
        for name, _, setup, first, steady in rows
    ]


def run(flags_obj, data_dir):
    with tempfile.TemporaryDirectory() as tmp:
        parent = flags_obj.folder_dir or tmp
        folders = make_folders(flags_obj, data_dir, parent)
        tables = [
            (root, size, _time_folder(root, size, recipe, flags_obj, tmp))
            for root, size, recipe in folders
        ]
    print(
        f"folder section: images/s, batch {flags_obj.batch_size}; setup: "
        "making the pipeline (la_keras: with the index from index_cache), "
        f"s; epoch 1; steady: {flags_obj.folder_epochs} epochs per pipeline"
        ", interleaved, their total and range; ratios: steady / the steady "
        "of image_dataset_from_directory (idfd), without and with .cache() "
        "(target >= 1x)"
    )
    for root, size, rows in tables:
        plain, cached = rows[1][3], rows[2][3]
        print(f"{size}x{size} JPEGs, {os.path.basename(root)}:")
        print(
            f"  {'pipeline':38}{'setup':>6}{'epoch 1':>8}{'steady':>8}"
            f"{'range':>13}{'/ idfd':>8}{'/ +cache':>9}"
        )
        for name, setup, first, steady, rates in rows:
            spread = f"{min(rates):.0f}-{max(rates):.0f}"
            print(
                f"  {name:38}{setup:6.1f}{first:8.0f}{steady:8.0f}"
                f"{spread:>13}{steady / plain:7.2f}x{steady / cached:8.2f}x"
            )
    consume = flags_obj.train_images_per_sec
    steady = tables[0][2][0][3]
    print(
        f"la_keras 32-px folder steady state / training consumption "
        f"({consume:.0f} images/s): {steady / consume:.1f}x (target >= 10x)"
    )
