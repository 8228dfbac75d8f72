"""What `launch.reproduce` runs: datasets, budgets, training runs and rows.

One training run per (dataset, seed, run name) below; every row of the table
reads one report of one run. The rows compared with the official release
(and every other row whose τ is not tuned) train on the whole long-tailed
training set, as the release does (`--holdout_fraction=0`). The τ* rows need
a holdout to choose τ on: they come from a separate `holdout` run, the same
cross-entropy training with `HOLDOUT_FRACTION` of the training set held out
(class-stratified, same seed), so no comparison row loses images.
"""

from __future__ import annotations

import hashlib
import os
import re
import typing

from absl import app

CONFIGS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs"
)
BUDGETS = ("smoke", "short", "full")
METHODS = ("erm", "weight_norm", "ldam", "equalized", "la_posthoc", "la_loss")
# Balanced-error grid of tau for weight normalisation, chosen on the holdout.
WEIGHT_NORM_TAUS = ("0", "0.25", "0.5", "0.75", "1", "1.25", "1.5", "2")
# Fraction of the training set the `holdout` run sets aside to choose τ*.
HOLDOUT_FRACTION = 0.1

# Training run -> its launch.train flags, in the order the runs start: the
# runs of the paper's two methods first. The holdout fraction of every run
# is explicit, so a change of launch.train's default changes no row.
RUNS = {
    "baseline": ("--holdout_fraction=0", "--mode=posthoc"),
    "la_loss": ("--holdout_fraction=0", "--mode=loss", "--loss=logit_adjusted"),
    "holdout": (f"--holdout_fraction={HOLDOUT_FRACTION:g}", "--mode=posthoc"),
    "ldam": ("--holdout_fraction=0", "--mode=loss", "--loss=ldam"),
    "equalized": ("--holdout_fraction=0", "--mode=loss", "--loss=equalized"),
}
# Runs whose checkpoint launch.evaluate also scores with weight normalisation.
WEIGHT_NORM_RUNS = ("baseline", "holdout")


class Row(typing.NamedTuple):
    """One row of the table.

    Attributes:
        method: the `--methods` value that asks for the row.
        label: the row's label in RESULTS.md.
        run: the training run (a key of `RUNS`) it reads.
        source: "train" reads the run's metrics.json["test"], "wn" the
            weight-normalisation report of launch.evaluate on the run.
        key: the report inside that source.
        official: the key of `OFFICIAL` it is compared with, or None.
    """

    method: str
    label: str
    run: str
    source: str
    key: str
    official: str | None = None


ROWS = (
    Row("erm", "ERM", "baseline", "train", "raw", "baseline"),
    Row("weight_norm", "Weight normalisation (τ = 1)", "baseline", "wn",
        "tau_1"),
    Row("weight_norm", "Weight normalisation (τ = τ*)", "holdout", "wn",
        "tuned"),
    Row("ldam", "Adaptive margin (LDAM)", "ldam", "train", "raw"),
    Row("equalized", "Equalised loss", "equalized", "train", "raw"),
    Row("la_posthoc", "Logit adjustment post-hoc (τ = 1)", "baseline",
        "train", "adjusted", "posthoc"),
    Row("la_posthoc", "Logit adjustment post-hoc (τ = τ*)", "holdout",
        "train", "adjusted_tuned"),
    Row("la_loss", "Logit-adjusted loss", "la_loss", "train", "raw", "loss"),
)  # fmt: skip
# Balanced test accuracy published in the official release's README
# (google-research/logit_adjustment), on the official TFRecords.
OFFICIAL = {
    "cifar10_lt": {"baseline": 0.7136, "posthoc": 0.7732, "loss": 0.7789},
    "cifar100_lt": {"baseline": 0.3987, "posthoc": 0.4407, "loss": 0.4406},
}
OFFICIAL_LABELS = {
    "baseline": "ERM",
    "posthoc": "post-hoc (τ = 1)",
    "loss": "logit-adjusted loss",
}
# Curves of the per-class plots: one plot per training set (the rows of the
# whole set, the rows of the holdout run), so each plot's x axis holds the
# class counts its curves were trained on.
PLOT_ROWS = (
    "ERM",
    "Weight normalisation (τ = τ*)",
    "Adaptive margin (LDAM)",
    "Equalised loss",
    "Logit adjustment post-hoc (τ = τ*)",
    "Logit-adjusted loss",
)


def runs_for(methods) -> list[str]:
    """The runs the rows of `methods` read, in the order of `RUNS`."""
    needed = {row.run for row in ROWS if row.method in methods}
    return [run for run in RUNS if run in needed]


def rows_for(methods) -> list[Row]:
    return [row for row in ROWS if row.method in methods]


def holdout_fraction(run: str) -> float:
    """The --holdout_fraction the spec gives `run`."""
    (flag,) = [f for f in RUNS[run] if f.startswith("--holdout_fraction=")]
    return float(flag.split("=", 1)[1])


def dataset_dir_name(dataset: str) -> str:
    """The folder (and plot) name of a dataset's runs: its name, or for a
    `folder:PATH` / `tfds:NAME` dataset the kind, the path's last part and
    a hash of the whole (no `:` or `/`).

    A `prepared:PATH` file is named by what it holds, not where it lies:
    `prepared-<source dataset>-<checksum[:8]>` (the dataset it was made
    from, as its metadata says, or its path's last part for a `folder:`
    source; and `la_keras.datasets.prepared.checksum`),
    so an output_dir moved with its file to other paths finds its runs.
    """
    if ":" not in dataset:
        return dataset
    kind, path = dataset.split(":", 1)
    if kind == "prepared":
        from la_keras.datasets import prepared

        try:
            source = prepared.read_metadata(path)["source"].get("dataset")
            digest = prepared.checksum(path)[:8]
        except (ValueError, FileNotFoundError) as e:
            raise app.UsageError(f"--datasets={dataset}: {e}") from e
        # A source of a path (folder:PATH) is named by its last part.
        base = str(source or path).split(":", 1)[-1]
        base = os.path.basename(os.path.normpath(base))
    else:
        base = os.path.basename(os.path.normpath(path)) or kind
        digest = hashlib.sha256(dataset.encode()).hexdigest()[:8]
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", base)
    return f"{kind}-{base}-{digest}"


def source_dataset(dataset: str) -> str:
    """The dataset a `prepared:PATH` file was made from (its official
    schedule and figures are that dataset's); any other dataset itself."""
    metadata = prepared_metadata(dataset)
    if metadata is None:
        return dataset
    return metadata["source"].get("dataset") or dataset


def prepared_metadata(dataset: str) -> dict | None:
    """The metadata of a `prepared:PATH` dataset's file, else None.

    Raises:
        app.UsageError: the file is missing or not a prepared file.
    """
    from la_keras.datasets import prepared

    if not dataset.startswith(prepared.PREFIX):
        return None
    try:
        return prepared.read_metadata(dataset[len(prepared.PREFIX) :])
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(f"--datasets={dataset}: {e}") from e


def train_examples(dataset: str, seed: int, fraction: float) -> int | None:
    """Training images of a run on `dataset` that holds out `fraction`.

    Exact for a prepared file (read from its metadata) and for the datasets
    la_keras loads by name when their data is found here; None for folders
    (counting them means indexing them) and data not found.
    """
    from la_keras.datasets import selection

    metadata = prepared_metadata(dataset)
    if metadata is not None:
        counts = metadata["train_counts"]
        held = selection.holdout_sizes(counts, fraction).sum()
        return int(sum(counts) - held)
    if dataset.startswith("folder:"):
        return None
    from la_keras.runs.data_config import DataConfig

    try:
        config = DataConfig(dataset, holdout_fraction=fraction, seed=seed)
        return int(config.info().num_examples["train"])
    except Exception:  # noqa: BLE001 - a plan without this count still runs
        return None


def budget_flags(budget: str, dataset: str) -> list[str]:
    """The --flagfile of a budget and dataset."""
    return [f"--flagfile={budget_flagfile(budget, dataset)}"]


def budget_flagfile(budget: str, dataset: str) -> str:
    if budget != "full":
        return os.path.join(CONFIGS, f"reproduce_{budget}.cfg")
    # cifar10-lt (official TFRecords) and cifar10_lt (TFDS) share one, and
    # so does a file prepared from either.
    source = source_dataset(dataset)
    path = os.path.join(CONFIGS, f"{source.replace('-', '_')}.cfg")
    if not os.path.exists(path):
        made = "" if source == dataset else f" (made from {source})"
        raise app.UsageError(
            f"--budget=full has no official schedule for {dataset}{made}: "
            "only cifar10_lt and cifar100_lt have one (launch/configs)."
        )
    return path


def flagfile_value(path: str, name: str) -> str | None:
    """The last `--name=value` of a flagfile, None when it has none."""
    value = None
    with open(path) as f:
        for line in f:
            if line.strip().startswith(f"--{name}="):
                value = line.strip().split("=", 1)[1]
    return value


def run_flags(flags_obj, run: str) -> list[str]:
    """The flags that make `run` what it is (not the budget or paths)."""
    args = list(RUNS[run])
    if run == "ldam" and flags_obj.ldam_scale is not None:
        args.append(f"--ldam_s={flags_obj.ldam_scale}")
    return args


def train_args(flags_obj, dataset: str, seed: int, run: str, run_dir: str):
    """The launch.train command line of one run; --train_flag values last."""
    return [
        *budget_flags(flags_obj.budget, dataset),
        f"--dataset={dataset}",
        f"--seed={seed}",
        f"--model_dir={run_dir}",
        f"--tb_log_dir={os.path.join(run_dir, 'log')}",
        *run_flags(flags_obj, run),
        *flags_obj.train_flag,
    ]


def evaluate_args(run_dir: str, output: str, dataset: str) -> list[str]:
    """The launch.evaluate command line of a weight-normalisation report
    (`--dataset`: where the run's data lies now, for a moved run)."""
    return [
        f"--model_dir={run_dir}",
        f"--dataset={dataset}",
        f"--weight_norm_taus={','.join(WEIGHT_NORM_TAUS)}",
        f"--output={output}",
    ]


def check(flags_obj) -> None:
    """UsageError for --methods, --seeds, --datasets or --train_flag the
    spec refuses."""
    unknown = [m for m in flags_obj.methods if m not in METHODS]
    if unknown:
        raise app.UsageError(
            f"Unknown --methods {unknown}. Known: {', '.join(METHODS)}."
        )
    for seed in flags_obj.seeds:
        if not seed.isdigit():
            raise app.UsageError(f"--seeds must be integers, got {seed!r}.")
    tuned = {row.run for row in rows_for(flags_obj.methods)} & {"holdout"}
    for dataset in flags_obj.datasets:
        metadata = prepared_metadata(dataset)
        if tuned and metadata and "holdout" in metadata["num_examples"]:
            raise app.UsageError(
                f"--datasets={dataset}: the file has a holdout split of its "
                "own, so the rows of the whole training set would train "
                "without it. Prepare it again with --holdout_fraction=0: "
                "launch.reproduce sets the holdout of the τ* rows aside "
                f"itself ({HOLDOUT_FRACTION:g} of each class)."
            )
    for flag in flags_obj.train_flag:
        if flag.startswith("--holdout_fraction"):
            raise app.UsageError(
                f"--train_flag={flag}: the spec sets each run's holdout "
                "(0 for the compared rows, "
                f"{HOLDOUT_FRACTION:g} for the holdout run of the τ* rows)."
            )
