"""Evaluate a trained run or a SavedModel: `la_keras.runs.evaluate`.

Restores the newest state of a run (its newest checkpoint, or a JAX run's
`model.keras` when that holds a later step: `la_keras.runs.run_state`) or
loads a SavedModel, then reports top-1, balanced and many/medium/few-shot
accuracy for the raw logits and the post-hoc adjusted ones, sweeps tau over
`tau_grid` and picks tau* on the holdout split (never on test; the test
sweep is reported for analysis). A loss-mode run is evaluated as its
training reported it in metrics.json: raw figures only, since its loss
already adjusted the logits (tau and tau_grid are refused for it).

`weight_norm_taus` also reports tau-normalisation of the classifier (Kang
et al. 2020, `la_keras.models.weight_norm`) at tau=1 and at the tau* of the
holdout, under "weight_norm". For a loss-mode run it is a diagnostic
(`weight_norm["diagnostic"]` says so): it rebalances a classifier that the
loss already balanced.

`tta` ("flip" or "crops5", `la_keras.tta`) also reports the run's figures
on logits averaged over test-time views, under "tta", apart: the headline
figures stay those of the plain logits. A SavedModel exported with
test-time ensembling says so in the report ("served_tta"): its figures
include it.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from absl import logging

from la_keras import tta as tta_lib
from la_keras.datasets import shifted
from la_keras.models import weight_norm
from la_keras.runs import adaptation
from la_keras.runs import outputs
from la_keras.runs import reporting
from la_keras.runs import run_state
from la_keras.runs import target_prior as target_prior_lib
from la_keras.runs.errors import RunError
from la_keras.runs.resolved import ResolvedConfig
from la_keras.training import evaluation

TTA_NOTE = (
    "test-time ensembling, reported apart: the figures outside this "
    "section are without it."
)
# Options that may override the run's flags.json when given.
OVERRIDABLE = ("tau", "tau_grid", "test_batch_size", "data_dir", "data_home")


def _saved_model_logits(path, config) -> tuple[dict, str]:
    """`({split: (raw logits, labels)}, the test-time ensembling it
    serves)` from a serving SavedModel."""
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
    served_tta = serving.served_tta(loaded)
    logging.info(
        "Loaded %s (served tau=%g, test-time ensembling: %s).",
        path, float(loaded.tau.numpy()), served_tta,
    )  # fmt: skip
    return out, served_tta


def _predict_splits(config, model) -> dict:
    """`{split: (outputs, labels)}` of `model` on test (and holdout)."""
    if keras.backend.backend() == "jax":
        from la_keras.runs import train_jax

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
    try:
        dense = weight_norm.find_classifier(model)
    except ValueError:
        raise RunError(
            "--weight_norm_taus needs a model whose classifier is a top-level "
            "Dense layer."
        ) from None
    kernel = dense.kernel
    features = _predict_splits(config, keras.Model(model.inputs, dense.input))

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


def tta_report(config, info, model, tta: str) -> dict:
    """`report["tta"]`: the run's figures on `model`'s logits averaged over
    `tta`'s views (`la_keras.tta`), apart from the headline.

    The adjustment of the run's mode applies to the ensembled logits (tau*
    chosen on their holdout); the figures of their headline row
    (`reporting.headline_row`, per-class accuracy aside) are repeated at
    the top with its name ("row").
    """
    logits = _predict_splits(config, tta_lib.ensemble_model(model, tta))
    metrics = reporting.evaluate_logits(
        config, info.train_counts, info.priors, logits["test"],
        logits.get("holdout"),
    )  # fmt: skip
    row = reporting.headline_row(metrics["test"])
    summary = {
        k: v
        for k, v in metrics["test"][row].items()
        if k != "per_class_accuracy"
    }
    logging.info(
        "test-time ensembling (%s), %s: top1 %.4f balanced %s",
        tta, row, summary["top1"], summary["balanced_accuracy"],
    )  # fmt: skip
    return {"mode": tta, "row": row, **summary, **metrics, "note": TTA_NOTE}


def _evaluation_mode(mode: str) -> str:
    """loss stays loss (never adjusted again); baseline is analysed post hoc."""
    return "loss" if mode == "loss" else "posthoc"


def _refuse_post_hoc_options(options, what: str) -> None:
    """tau / tau_grid given for loss-mode logits: one-line RunError."""
    for name in ("tau", "tau_grid"):
        if options.is_given(name):
            value = getattr(options, name)
            if isinstance(value, (list, tuple)):
                value = ",".join(str(v) for v in value)
            raise RunError(
                f"--{name}={value}: {what} --mode=loss, whose logits are "
                "already adjusted by the loss and are evaluated raw; leave "
                f"--{name} out."
            )


def evaluation_config(options, saved_model=None) -> ResolvedConfig:
    """The config to evaluate with: the run's, or the options' (SavedModel).

    Without `saved_model`, the flags.json of the run in
    `options.model_dir`; the options in `OVERRIDABLE` override it when
    given. A dataset other than the run's is refused: the checkpoint's
    classes are those of the run's dataset; the run's `prepared:` file or
    `folder:` dataset at another path (a moved run) is accepted by its
    checksum (`ResolvedConfig.with_data`). A loss-mode run (or a SavedModel
    given mode="loss") keeps its mode, and tau / tau_grid are refused for
    it; the others are evaluated post hoc.
    """
    if saved_model:
        if keras.backend.backend() != "tensorflow":
            raise RunError(
                "--saved_model needs the TensorFlow backend; on "
                f"{keras.backend.backend()} evaluate a run with --model_dir."
            )
        config = ResolvedConfig.resolve(options)
        if config.mode == "loss":
            _refuse_post_hoc_options(
                options, f"{saved_model} is evaluated with"
            )
        # No run directory: a folder's index is built, not kept (it would
        # go to the default model_dir, a folder of the working directory).
        return config.replace(
            mode=_evaluation_mode(config.mode), folder_index=None
        )
    config = ResolvedConfig.read(options.model_dir).with_data(
        given_dataset(options)
    )
    if config.mode == "loss":
        _refuse_post_hoc_options(
            options, f"the run in {options.model_dir} was trained with"
        )
    changes = {
        name: getattr(options, name)
        for name in OVERRIDABLE
        if options.is_given(name)
    }
    if "tau_grid" in changes:
        changes["tau_grid"] = tuple(float(t) for t in changes["tau_grid"])
    return config.replace(mode=_evaluation_mode(config.mode), **changes)


def given_dataset(options) -> str | None:
    """The dataset when given (the run's data, perhaps at another path)."""
    return options.dataset if options.is_given("dataset") else None


def output_path(options, saved_model=None, output=None) -> str | None:
    """`output`, else <model_dir>/eval_metrics.json (none for a SavedModel)."""
    if output or saved_model:
        return output
    return os.path.join(options.model_dir, "eval_metrics.json")


def evaluate(
    options,
    *,
    saved_model=None,
    checkpoint=None,
    weight_norm_taus=(),
    test_prior=None,
    output=None,
    tta="none",
) -> dict:
    """Evaluates a run (or a SavedModel); returns and writes its report.

    Args:
        options: a `RunConfig`: `model_dir` names the run; `dataset` (the
            run's data at another path), tau, tau_grid, test_batch_size,
            data_dir and data_home apply when given. With `saved_model`, the
            data and mode to evaluate it on.
        saved_model: a serving SavedModel to evaluate instead of the run.
        checkpoint: a checkpoint path (default: the run's newest state).
        weight_norm_taus: taus of classifier tau-normalisation to report.
        test_prior: also report the test split resampled to this class mix
            (uniform, forward<N>, backward<N> or a prior file).
        output: the JSON report's path (default: <model_dir>/
            eval_metrics.json; none for a SavedModel).
        tta: "none", or also report test-time ensembling ("flip",
            "crops5"; `la_keras.tta`) under "tta", apart from the headline.
            Checkpoints only (a SavedModel serves its own, from export).
    """
    wn_taus = _weight_norm_taus(weight_norm_taus, saved_model)
    tta_lib.check_tta(tta)
    if saved_model and tta != "none":
        raise RunError(
            f"--tta={tta} needs --model_dir (the network), not "
            "--saved_model; launch.export --tta serves it in a SavedModel."
        )
    if test_prior and not os.path.isfile(test_prior):
        try:
            shifted.parse_test_prior(test_prior)
        except ValueError as e:
            raise RunError(f"--test_prior: {e} Or a file.") from e
    config = evaluation_config(options, saved_model)
    if saved_model:
        info = config.data.info()
        logits, served_tta = _saved_model_logits(saved_model, config)
        source, model = saved_model, None
    else:
        state = run_state.newest_state(config, checkpoint)
        model, info, source = state.model, state.info, state.path
        logits = _predict_splits(config, model)
    output = output_path(options, saved_model, output)
    report = reporting.evaluation_report(config, info, logits, source)
    if saved_model:
        report["served_tta"] = served_tta
    if tta != "none":
        report["tta"] = tta_report(config, info, model, tta)
    if wn_taus:
        report["weight_norm"] = weight_norm_report(config, model, info, wn_taus)
    if test_prior:
        mix = test_prior
        if os.path.isfile(mix):
            mix = target_prior_lib.read_target_prior(
                mix, info.priors, "--test_prior"
            )
        report["shifted_test"] = adaptation.shifted_test_report(
            config, info, logits, mix
        )
        report["shifted_test"]["source"] = test_prior
    reporting.log_metrics(report)
    if output:
        outputs.write_json(output, report)
        logging.info("Wrote %s.", output)
    return report


def _weight_norm_taus(values, saved_model) -> list[float]:
    if not values:
        return []
    if saved_model:
        raise RunError(
            "--weight_norm_taus needs --model_dir (the classifier weights), "
            "not --saved_model."
        )
    try:
        taus = [float(t) for t in values]
    except ValueError:
        taus = [-1.0]
    if any(not np.isfinite(t) or t < 0 for t in taus):
        raise RunError(f"--weight_norm_taus must be floats >= 0, got {values}.")
    return taus
