"""Evaluate a trained model: `python -m launch.evaluate`, the flags of
`la_keras.runs.evaluate`.

Restores the newest state of a `launch.train` run (`--model_dir`, whose
flags.json says how to rebuild the data and model: its newest checkpoint, or
a JAX run's `model.keras` when that holds a later step, as launch.export
reads it; `la_keras.runs.run_state`) or loads a SavedModel
(`--saved_model`, with the dataset flags given here), then reports top-1,
balanced and many/medium/few-shot accuracy for the raw logits and the
post-hoc adjusted ones, sweeps tau over `--tau_grid` and picks tau* on the
holdout split (never on test; the test sweep is reported for analysis).
A `--mode=loss` run is evaluated as launch.train reports it in metrics.json:
raw figures only, since its loss already adjusted the logits (`--tau` and
`--tau_grid` are refused for it); so is a SavedModel given `--mode=loss`:

    python -m launch.evaluate --model_dir=/tmp/cifar10_lt_posthoc
    python -m launch.evaluate --saved_model=/tmp/run/export --dataset=test

With `KERAS_BACKEND=jax` it evaluates the `.npz` checkpoints of a JAX run
(also readable on TensorFlow), without TensorFlow for `prepared:` data.
A run moved with its prepared file (or folder) takes
`--dataset=prepared:NEWPATH`, recognised by the checksum the run recorded;
a file of other contents, at any path, is refused.

`--weight_norm_taus=0,0.5,1,1.5,2` also reports tau-normalisation of the
classifier (Kang et al. 2020, `la_keras.models.weight_norm`) at tau=1 and at
the tau* of the holdout, under "weight_norm" in the report. For a loss-mode
run it is reported as a diagnostic (`weight_norm["diagnostic"]` says so):
it rebalances a classifier that the loss already balanced.

`--tta=flip` or `--tta=crops5` also reports the figures on logits averaged
over the image and its horizontal flip, or over five crops
(`la_keras.tta`), under "tta" in the report and on a line of their own:
the headline figures stay those without it.
"""

from __future__ import annotations

from absl import flags

from la_keras import runs
from la_keras import tta
from la_keras.runs import reporting
from la_keras.runs import run_evaluate
from launch import cli
from launch import common_flags


def define_tta_flag() -> None:
    """--tta, of launch.evaluate and launch.export (idempotent)."""
    if "tta" in flags.FLAGS:
        return
    flags.DEFINE_enum(
        "tta",
        "none",
        list(tta.MODES),
        "Test-time ensembling (la_keras.tta): logits averaged over the image "
        "and its horizontal flip (flip) or over its four corner and centre "
        "crops of 7/8 its side, resized back (crops5). launch.evaluate "
        "reports it apart from the headline figures (checkpoints only); "
        "launch.export serves it (SavedModel only).",
    )


def define_flags() -> None:
    common_flags.define_flags()
    define_tta_flag()
    if "saved_model" in flags.FLAGS:
        return
    flags.DEFINE_string(
        "saved_model",
        None,
        "Evaluate this SavedModel (launch.train / launch.export) instead of a "
        "checkpoint; the dataset comes from --dataset and friends. Add "
        "--mode=loss for one exported from a loss-mode run (raw figures "
        "only).",
    )
    flags.DEFINE_string(
        "checkpoint",
        None,
        "Checkpoint path (default: the newest state of --model_dir, its "
        "newest checkpoint or model.keras, whichever holds the later step).",
    )
    flags.DEFINE_list(
        "weight_norm_taus",
        [],
        "Also evaluate tau-normalisation of the classifier (Kang et al. "
        "2020; checkpoints only): each class's final Dense weights divided "
        "by their norm**tau, bias dropped, for each tau here; reports tau=1 "
        "and tau* chosen on the holdout by balanced accuracy (never on "
        "test). Empty: skipped.",
    )
    flags.DEFINE_string(
        "test_prior",
        None,
        "Also report top-1 on the test split resampled (seeded, without "
        "replacement) to this class mix: uniform, forward<N> or "
        "backward<N> (imbalance N, in the training order or reversed), or "
        "a file of one class prior or count per class (as --target_prior), "
        "for "
        "the balanced rule, the EM estimate of the mix and the true mix "
        "(the oracle). Needs --model_dir or a labelled --dataset.",
    )
    flags.DEFINE_string(
        "output",
        None,
        "JSON report path (default: <model_dir>/eval_metrics.json, or none "
        "for --saved_model).",
    )


def run_config(flags_obj):
    """The resolved config `run` evaluates with (`run_evaluate`)."""
    return run_evaluate.evaluation_config(
        runs.RunConfig.from_flags(flags_obj), flags_obj.saved_model
    )


def given_dataset(flags_obj) -> str | None:
    """--dataset when given (the run's data, perhaps at another path)."""
    return run_evaluate.given_dataset(runs.RunConfig.from_flags(flags_obj))


_KEYWORDS = (
    "saved_model", "checkpoint", "weight_norm_taus", "test_prior", "output",
    "tta",
)  # fmt: skip


def run(flags_obj) -> dict:
    """Evaluates (`la_keras.runs.evaluate`); returns the report dict."""
    return cli.call(runs.evaluate, flags_obj, _KEYWORDS)


def main(_):
    flags_obj = flags.FLAGS
    cli.require_model_dir(flags_obj, unless="saved_model")

    def evaluate():
        report = run(flags_obj)
        output = run_evaluate.output_path(
            flags_obj, flags_obj.saved_model, flags_obj.output
        )
        print(reporting.format_evaluation(report, output))  # the report

    cli.run_main("launch.evaluate", evaluate)


if __name__ == "__main__":
    define_flags()
    cli.app_run(main)
