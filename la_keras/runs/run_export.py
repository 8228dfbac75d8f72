"""Export a run: `la_keras.runs.export`, to a SavedModel or TFLite.

Rebuilds the model of a run from its flags.json and restores its newest
state (or `checkpoint`): the newest checkpoint, or a JAX-backend run's
`model.keras` when that holds a later step (`la_keras.runs.run_state`; the
log names the file and step exported). The SavedModel's `serving_default`
takes uint8 `images` and returns `logits`, `raw_logits`, `probabilities`
and `classes`, preprocessing included (`la_keras.serving`). Post-hoc runs
bake in the adjustment with the tau chosen during training (metrics.json's
`served_tau`) unless tau is given; baseline runs serve raw logits unless
tau is given. Loss-mode runs always serve their raw logits (tau 0): the loss
already adjusted them, and tau is refused. `target_prior` bakes a class mix
into `serving_default` instead of the uniform one
(`la_keras.runs.target_prior`); every SavedModel also has the
`serve_with_prior` signature, which takes the mix per request.
`format="tflite"` writes a TFLite model of `serving_default` instead
(`la_keras.runs.export_tflite`). `tta` ("flip", "crops5") serves logits
averaged over test-time views (`la_keras.tta`), recorded in the
SavedModel's `tta` variable; the TFLite export refuses it (it converts one
network pass, and its int8 rounding reads the network's own layers).
"""

from __future__ import annotations

import json
import os

import keras
from absl import logging

from la_keras import tta as tta_lib
from la_keras.models import finetune
from la_keras.runs import outputs
from la_keras.runs import reporting
from la_keras.runs import run_evaluate
from la_keras.runs import run_state
from la_keras.runs import target_prior as target_prior_lib
from la_keras.runs.errors import RunError
from la_keras.runs.resolved import ResolvedConfig

FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("none", "dynamic", "int8")


def export_tau(config, options) -> float | None:
    """--tau if given; else the run's served tau (posthoc) or None.

    Raises:
        RunError: --tau for a loss-mode run, whose logits the loss
            already adjusted (a post-hoc tau would adjust them twice).
    """
    if config.mode == "loss":
        if options.is_given("tau"):
            raise RunError(
                f"--tau={options.tau:g}: the run in {config.model_dir} was "
                "trained with --mode=loss, whose logits are already "
                "adjusted by the loss; leave --tau out to export them as "
                "they are."
            )
        return None
    if options.is_given("tau"):
        return float(options.tau)
    metrics_path = os.path.join(config.model_dir, "metrics.json")
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            return json.load(f).get("served_tau")
    return config.tau if config.mode == "posthoc" else None


def export(
    options,
    *,
    format="saved_model",
    quantize="none",
    target_prior="uniform",
    checkpoint=None,
    representative_images=300,
    tta="none",
) -> str:
    """Exports a run; returns the SavedModel directory (or .tflite file).

    Args:
        options: a `RunConfig`: `model_dir` names the run; `export_dir`
            (default: <model_dir>/export, or <model_dir>/tflite), `tau`
            and `dataset` (the run's data at another path) apply when given.
        format: "saved_model" or "tflite".
        quantize: TFLite only: "none", "dynamic" or "int8".
        target_prior: the class mix serving_default serves: "uniform",
            "train" or a file of class priors or counts.
        checkpoint: a checkpoint path (default: the run's newest state).
        representative_images: int8 only: the calibration images.
        tta: SavedModel only: "none", or the test-time ensembling served,
            "flip" or "crops5" (`la_keras.tta`).
    """
    if format not in FORMATS:
        raise RunError(f"--format={format!r}: one of {', '.join(FORMATS)}.")
    if keras.backend.backend() != "tensorflow":
        raise RunError(
            f"Exporting writes a TensorFlow {'TFLite model' if format == 'tflite' else 'SavedModel'}: "
            f"run it with KERAS_BACKEND=tensorflow (now {keras.backend.backend()}); "
            "it reads runs of either backend."
        )
    if format != "tflite" and quantize != "none":
        raise RunError("--quantize applies to --format=tflite only.")
    tta_lib.check_tta(tta)
    if format == "tflite" and tta != "none":
        raise RunError(
            f"--tta={tta}: --format=tflite exports one pass of the network; "
            "test-time ensembling is served by --format=saved_model."
        )
    config = ResolvedConfig.read(options.model_dir).with_data(
        run_evaluate.given_dataset(options)
    )
    tau = export_tau(config, options)
    state = run_state.newest_state(config, checkpoint)
    info = state.info
    target = target_prior_lib.read_target_prior(target_prior, info.priors)
    if format == "tflite":
        return _export_tflite(
            config,
            state,
            tau,
            target,
            options.export_dir,
            quantize,
            representative_images,
            target_prior,
        )
    export_dir = options.export_dir or os.path.join(config.model_dir, "export")
    # Written beside export_dir and swapped in: a kill leaves the previous
    # complete SavedModel or the new one.
    from la_keras import serving  # TensorFlow: imported when exporting

    with outputs.atomic_dir(export_dir) as tmp:
        serving.export_saved_model(
            finetune.merged(state.model),
            tmp,
            info.image_shape,
            info.preprocessing,
            priors=None if tau is None else info.priors,
            tau=tau or 0.0,
            class_names=info.class_names,
            resize=info.resize,
            target_prior=target,
            tta=tta,
            **reporting.serving_rule(config, info, tau),
        )
    logging.info(
        "Exported %s (step %s) to %s (post-hoc tau: %s; target prior: %s%s; "
        "test-time ensembling: %s).",
        state.path,
        "unknown" if state.step is None else state.step,
        export_dir,
        tau,
        target_prior,
        "" if target is None else f" {[round(float(v), 6) for v in target]}",
        tta,
    )
    return export_dir


def _export_tflite(
    config, state, tau, target, export_dir, quantize, images, target_prior
) -> str:
    from la_keras.runs import export_tflite

    directory = export_dir or os.path.join(config.model_dir, "tflite")
    path = export_tflite.write(
        config,
        state,
        tau,
        os.path.join(directory, export_tflite.MODEL_FILE),
        quantize,
        images,
        target,
    )
    logging.info(
        "Exported %s (step %s) to %s (post-hoc tau: %s, quantize: %s, "
        "target prior: %s).",
        state.path,
        "unknown" if state.step is None else state.step,
        path,
        tau,
        quantize,
        target_prior,
    )
    return path
