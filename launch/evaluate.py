"""Evaluate a trained model: `python -m launch.evaluate`.

Restores the newest state of a `launch.train` run (`--model_dir`, whose
flags.json says how to rebuild the data and model: its newest checkpoint, or
a JAX run's `model.keras` when that holds a later step, as launch.export
reads it; `launch.run_state`) or loads a SavedModel
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
"""

from __future__ import annotations

import os

import keras
import numpy as np
from absl import app
from absl import flags
from absl import logging

from la_keras.datasets import shifted
from la_keras.models import weight_norm
from la_keras.training import evaluation
from launch import adaptation
from launch import common
from launch import common_flags
from launch import outputs
from launch import reporting
from launch import run_state
from launch import target_prior as target_prior_lib
from launch.config import RunConfig

# Flags that may override the run's flags.json when given explicitly.
_OVERRIDABLE = ("tau", "tau_grid", "test_batch_size", "data_dir", "data_home")


def define_flags() -> None:
    common_flags.define_flags()
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


def _saved_model_logits(path, config) -> dict:
    """`{split: (raw logits, labels)}` from a serving SavedModel."""
    import tensorflow as tf

    from la_keras import serving

    loaded = tf.saved_model.load(path)
    serve = loaded.signatures[serving.SIGNATURE]
    out = {}
    for split in config.data.eval_splits:
        logits, labels = [], []
        for images, batch_labels in config.data.raw_split(split):
            logits.append(serve(images=images)["raw_logits"].numpy())
            labels.append(batch_labels.numpy())
        out[split] = (np.concatenate(logits), np.concatenate(labels))
    logging.info("Loaded %s (served tau=%g).", path, float(loaded.tau.numpy()))
    return out


def _predict_splits(config, model) -> dict:
    """`{split: (outputs, labels)}` of `model` on test (and holdout)."""
    if keras.backend.backend() == "jax":
        from launch import train_jax

        return train_jax.predict_splits(config, model)
    import tensorflow as tf

    from la_keras.training import Predictor

    predictor = Predictor(tf.distribute.get_strategy(), model)
    return {
        split: predictor.predict(config.data.builder(split).build())
        for split in config.data.eval_splits
    }


def weight_norm_report(config, model, info, taus) -> dict:
    """Tau-normalisation of `model`'s classifier on test, tau* on holdout.

    The classifier is the last top-level Dense layer; its logits are
    `features @ tau_normalized_kernel(kernel, tau)` with the bias dropped,
    exactly `la_keras.models.weight_norm.tau_normalize(model, tau)`, computed
    from one pass of features for all taus.

    Returns:
        `{"taus", "holdout_sweep", "tau_star", "tau_1", "tuned"}`; the last
        two are test reports (`classification_report` plus `tau`).
        Without a holdout, `tau_star` and `tuned` are None.
    """
    dense = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Dense)
    ]
    if not dense:
        raise app.UsageError(
            "--weight_norm_taus needs a model whose classifier is a top-level "
            "Dense layer."
        )
    kernel = dense[-1].kernel
    features = _predict_splits(
        config, keras.Model(model.inputs, dense[-1].input)
    )

    def report(split, tau):
        feats, labels = features[split]
        logits = feats @ weight_norm.tau_normalized_kernel(kernel, tau)
        return {
            "tau": float(tau),
            **evaluation.classification_report(
                logits, labels, info.train_counts
            ),
        }

    out = {"taus": taus, "holdout_sweep": None, "tau_star": None}
    out["tau_1"] = report("test", 1.0)
    if "holdout" in features:
        sweep = []
        for tau in taus:
            row = report("holdout", tau)
            sweep.append(
                {k: row[k] for k in ("tau", "top1", "balanced_accuracy")}
            )
        out["holdout_sweep"] = sweep
        out["tau_star"] = evaluation.select_tau(sweep)
    out["tuned"] = (
        None if out["tau_star"] is None else report("test", out["tau_star"])
    )
    if config.mode == "loss":
        out["diagnostic"] = reporting.WEIGHT_NORM_LOSS_NOTE
    for name in ("tau_1", "tuned"):
        if out[name] is not None:
            logging.info(
                "test weight-norm (tau=%g) top1 %.4f balanced %.4f",
                out[name]["tau"],
                out[name]["top1"],
                out[name]["balanced_accuracy"],
            )
    return out


def _evaluation_mode(mode: str) -> str:
    """loss stays loss (never adjusted again); baseline is analysed post hoc."""
    return "loss" if mode == "loss" else "posthoc"


def _refuse_post_hoc_flags(flags_obj, what: str) -> None:
    """--tau / --tau_grid given for loss-mode logits: one-line UsageError."""
    for name in ("tau", "tau_grid"):
        if not flags_obj[name].using_default_value:
            value = flags_obj[name].value
            if isinstance(value, list):
                value = ",".join(value)
            raise app.UsageError(
                f"--{name}={value}: {what} --mode=loss, whose logits are "
                "already adjusted by the loss and are evaluated raw; leave "
                f"--{name} out."
            )


def run_config(flags_obj) -> RunConfig:
    """The config to evaluate with: the run's, or the flags' (SavedModel).

    With --model_dir, the run's flags.json; the flags in `_OVERRIDABLE`
    override it when given. A --dataset other than the run's is refused:
    the checkpoint's classes are those of the run's dataset; the run's
    `prepared:` file or `folder:` dataset at another path (a moved run) is
    accepted by its checksum (`RunConfig.with_data`). A loss-mode
    run (or a SavedModel given --mode=loss) keeps its mode, and --tau /
    --tau_grid are refused for it; the others are evaluated post hoc.
    """
    if flags_obj.saved_model:
        if keras.backend.backend() != "tensorflow":
            raise app.UsageError(
                "--saved_model needs the TensorFlow backend; on "
                f"{keras.backend.backend()} evaluate a run with --model_dir."
            )
        config = RunConfig.from_flags(flags_obj)
        if config.mode == "loss":
            _refuse_post_hoc_flags(
                flags_obj, f"{flags_obj.saved_model} is evaluated with"
            )
        # No run directory: a folder's index is built, not kept (it went
        # to the default --model_dir, a folder of the working directory).
        return config.replace(
            mode=_evaluation_mode(config.mode), folder_index=None
        )
    config = RunConfig.read(flags_obj.model_dir).with_data(
        given_dataset(flags_obj)
    )
    if config.mode == "loss":
        _refuse_post_hoc_flags(
            flags_obj, f"the run in {flags_obj.model_dir} was trained with"
        )
    changes = {
        name: getattr(flags_obj, name)
        for name in _OVERRIDABLE
        if not flags_obj[name].using_default_value
    }
    if "tau_grid" in changes:
        changes["tau_grid"] = tuple(float(t) for t in changes["tau_grid"])
    return config.replace(mode=_evaluation_mode(config.mode), **changes)


def given_dataset(flags_obj) -> str | None:
    """--dataset when given (the run's data, perhaps at another path)."""
    flag = flags_obj["dataset"]
    return None if flag.using_default_value else flag.value


def output_path(flags_obj) -> str | None:
    """--output, else <model_dir>/eval_metrics.json (none for a SavedModel)."""
    if flags_obj.output or flags_obj.saved_model:
        return flags_obj.output
    return os.path.join(flags_obj.model_dir, "eval_metrics.json")


def run(flags_obj) -> dict:
    """Evaluates; returns (and writes, see --output) the report dict."""
    wn_taus = _weight_norm_taus(flags_obj)
    if flags_obj.test_prior and not os.path.isfile(flags_obj.test_prior):
        try:
            shifted.parse_test_prior(flags_obj.test_prior)
        except ValueError as e:
            raise app.UsageError(f"--test_prior: {e} Or a file.") from e
    config = run_config(flags_obj)
    if flags_obj.saved_model:
        info = config.data.info()
        logits = _saved_model_logits(flags_obj.saved_model, config)
        source, model = flags_obj.saved_model, None
    else:
        state = run_state.newest_state(config, flags_obj.checkpoint)
        model, info, source = state.model, state.info, state.path
        logits = _predict_splits(config, model)
    output = output_path(flags_obj)
    report = reporting.evaluation_report(config, info, logits, source)
    if wn_taus:
        report["weight_norm"] = weight_norm_report(config, model, info, wn_taus)
    if flags_obj.test_prior:
        mix = flags_obj.test_prior
        if os.path.isfile(mix):
            mix = target_prior_lib.read_target_prior(
                mix, info.priors, "--test_prior"
            )
        report["shifted_test"] = adaptation.shifted_test_report(
            config, info, logits, mix
        )
        report["shifted_test"]["source"] = flags_obj.test_prior
    reporting.log_metrics(report)
    if output:
        outputs.write_json(output, report)
        logging.info("Wrote %s.", output)
    return report


def _weight_norm_taus(flags_obj) -> list[float]:
    if not flags_obj.weight_norm_taus:
        return []
    if flags_obj.saved_model:
        raise app.UsageError(
            "--weight_norm_taus needs --model_dir (the classifier weights), "
            "not --saved_model."
        )
    try:
        taus = [float(t) for t in flags_obj.weight_norm_taus]
    except ValueError:
        taus = [-1.0]
    if any(not np.isfinite(t) or t < 0 for t in taus):
        raise app.UsageError(
            "--weight_norm_taus must be floats >= 0, got "
            f"{flags_obj.weight_norm_taus}."
        )
    return taus


def main(_):
    flags_obj = flags.FLAGS
    if not flags_obj.saved_model and flags_obj["model_dir"].using_default_value:
        raise app.UsageError(
            "Pass --model_dir of a launch.train run or --saved_model."
        )

    def evaluate():
        report = run(flags_obj)
        output = output_path(flags_obj)
        print(reporting.format_evaluation(report, output))  # the report

    common.run_main("launch.evaluate", evaluate)


if __name__ == "__main__":
    define_flags()
    common.app_run(main)
