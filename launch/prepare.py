"""Write a dataset to one checked file: `python -m launch.prepare`.

    TFDS_DATA_DIR=../shared/tfds python -m launch.prepare \\
        --dataset=cifar10_lt --output=data/cifar10_lt.prepared

Takes the dataset flags of `launch.train` (`--dataset`, `--ratio`,
`--profile`, `--holdout_fraction`, `--seed`, `--data_dir`, `--data_home`)
and writes every split that `la_keras.datasets.load` gives for them (train,
test and, with a holdout, holdout) with the class counts, priors, class
names and the arguments it came from (`la_keras.datasets.prepared`). Train
on it with `--dataset=prepared:PATH`: the counts, priors and images are
those of the dataset it was prepared from, and reading it needs no TFDS.

Only in-memory datasets of fixed-size images (the CIFAR recipe:
`cifar10_lt`, `cifar100_lt`, `cifar10-lt`, `mnist_lt`, `test`, `tfds:`
sets of small images; `folder:` sets, read with Pillow, their files checked
and resized to `--image_size` first) can be prepared; ImageNet-LT and
iNaturalist stay on their TFDS pipelines.
"""

from __future__ import annotations

import dataclasses
import os

from absl import app
from absl import flags

import la_keras
from la_keras.datasets import prepared
from la_keras.runs import data_checks
from la_keras.runs.resolved import ResolvedConfig
from launch import cli
from launch import common_flags


def define_flags() -> None:
    common_flags.define_flags()
    if "output" in flags.FLAGS:
        return
    flags.DEFINE_string("output", None, "The file to write.")


def run(flags_obj) -> str:
    """Prepares; returns the path written."""
    if not flags_obj.output:
        raise app.UsageError("Pass --output=PATH, the file to write.")
    # No --model_dir here: a folder's index is built, not kept.
    data = dataclasses.replace(
        ResolvedConfig.from_flags(flags_obj).data, folder_index=None
    )
    if data.dataset.startswith(prepared.PREFIX):
        raise app.UsageError(f"--dataset={data.dataset} is prepared already.")
    info = data.info()
    data_checks.log(info)
    if info.preprocessing != "cifar" and not data.is_folder:
        raise app.UsageError(
            f"--dataset={data.dataset} has images of varying sizes "
            "(ImageNet recipe): it stays on its TFDS pipeline and cannot be "
            "prepared."
        )
    splits = {
        split: data.arrays(split)[:2] for split in ("train", *data.eval_splits)
    }
    source = {
        "dataset": data.dataset,
        "ratio": data.ratio,
        "profile": data.profile,
        "holdout_fraction": data.holdout_fraction,
        "seed": data.seed,
        "la_keras": la_keras.__version__,
    }
    if data.is_folder:
        source.update(
            image_size=data.image_size,
            skipped_images=len(info.skipped_images),
        )
    path = prepared.write(flags_obj.output, splits, info, source)
    sizes = ", ".join(f"{s} {len(labels)}" for s, (_, labels) in splits.items())
    megabytes = os.path.getsize(path) / 2**20
    print(
        f"Wrote {path} ({megabytes:.1f} MiB): {data.dataset}, {sizes} images."
    )
    return path


def main(_):
    cli.run_main("launch.prepare", lambda: run(flags.FLAGS))


if __name__ == "__main__":
    define_flags()
    cli.app_run(main)
