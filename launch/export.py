"""Checkpoint to SavedModel: `python -m launch.export`.

Rebuilds the model of a `launch.train` run from its flags.json, restores its
newest state (or --checkpoint): the newest checkpoint, or a JAX-backend
run's `model.keras` when that holds a later step (`launch.run_state`; the
log names the file and step exported), and writes a SavedModel whose
`serving_default` signature takes uint8 `images` and returns `logits`,
`raw_logits`, `probabilities` and `classes`, preprocessing included, as
`la_keras.serving.export_saved_model`. Post-hoc runs bake in the adjustment
with the tau chosen during training (metrics.json's `served_tau`) unless
--tau is given; baseline runs serve raw logits unless --tau is given.
Loss-mode runs always serve their raw logits (tau 0): the loss already
adjusted them, and --tau is refused. `--target_prior=train` or a file of
class priors bakes that class mix into `serving_default` instead of the
uniform one (`launch.target_prior`); every export also has the
`serve_with_prior` signature, which takes the mix per request.
`--format=tflite` writes a TFLite model of `serving_default` instead
(`launch.export_tflite`). A run moved with its prepared file (or folder)
takes `--dataset=prepared:NEWPATH`, recognised by checksum.

    python -m launch.export --model_dir=/tmp/run --export_dir=/tmp/run/serving
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
from absl import logging

from la_keras import serving
from la_keras.models import finetune
from launch import common
from launch import common_flags
from launch import evaluate
from launch import outputs
from launch import reporting
from launch import run_state
from launch import target_prior as target_prior_lib
from launch.config import RunConfig


def define_flags() -> None:
    common_flags.define_flags()
    if "checkpoint" not in flags.FLAGS:
        flags.DEFINE_string(
            "checkpoint",
            None,
            "Checkpoint path (default: the newest state of --model_dir, its "
            "newest checkpoint or model.keras, whichever holds the later "
            "step).",
        )
    if "target_prior" in flags.FLAGS:
        return
    flags.DEFINE_string(
        "target_prior",
        "uniform",
        "The class mix serving_default serves: uniform (the balanced rule), "
        "train (the run's training prior) or a file of one class prior or "
        "count per class (a JSON list, or whitespace-separated numbers).",
    )
    flags.DEFINE_enum(
        "format",
        "saved_model",
        ["saved_model", "tflite"],
        "saved_model: the serving SavedModel in --export_dir. tflite: "
        "model.tflite and model.tflite.json in --export_dir (default: "
        "<model_dir>/tflite), whose logits are serving_default's "
        "(--target_prior included).",
    )
    flags.DEFINE_enum(
        "quantize",
        "none",
        ["none", "dynamic", "int8"],
        "--format=tflite only: float32 weights (none), int8 weights "
        "(dynamic) or int8 weights and activations calibrated on training "
        "images (int8).",
    )
    flags.DEFINE_integer(
        "representative_images",
        300,
        "--quantize=int8: training images that calibrate the activations.",
        lower_bound=1,
    )


def export_tau(config, flags_obj) -> float | None:
    """--tau if given; else the run's served tau (posthoc) or None.

    Raises:
        app.UsageError: --tau for a loss-mode run, whose logits the loss
            already adjusted (a post-hoc tau would adjust them twice).
    """
    if config.mode == "loss":
        if not flags_obj["tau"].using_default_value:
            raise app.UsageError(
                f"--tau={flags_obj.tau:g}: the run in {config.model_dir} was "
                "trained with --mode=loss, whose logits are already "
                "adjusted by the loss; leave --tau out to export them as "
                "they are."
            )
        return None
    if not flags_obj["tau"].using_default_value:
        return float(flags_obj.tau)
    metrics_path = os.path.join(config.model_dir, "metrics.json")
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            return json.load(f).get("served_tau")
    return config.tau if config.mode == "posthoc" else None


def run(flags_obj) -> str:
    """Exports; returns the SavedModel directory (or the .tflite file)."""
    if flags_obj.format != "tflite" and flags_obj.quantize != "none":
        raise app.UsageError("--quantize applies to --format=tflite only.")
    config = RunConfig.read(flags_obj.model_dir).with_data(
        evaluate.given_dataset(flags_obj)
    )
    tau = export_tau(config, flags_obj)
    state = run_state.newest_state(config, flags_obj.checkpoint)
    info = state.info
    target = target_prior_lib.read_target_prior(
        flags_obj.target_prior, info.priors
    )
    if flags_obj.format == "tflite":
        return _export_tflite(config, state, tau, target, flags_obj)
    export_dir = flags_obj.export_dir or os.path.join(
        flags_obj.model_dir, "export"
    )
    # Written beside export_dir and swapped in: a kill leaves the previous
    # complete SavedModel or the new one.
    with outputs.atomic_dir(export_dir) as tmp:
        serving.export_saved_model(
            finetune.merge_lora(state.model),
            tmp,
            info.image_shape,
            info.preprocessing,
            priors=None if tau is None else info.priors,
            tau=tau or 0.0,
            class_names=info.class_names,
            resize=info.resize,
            target_prior=target,
            **reporting.serving_rule(config, info, tau),
        )
    logging.info(
        "Exported %s (step %s) to %s (post-hoc tau: %s; target prior: %s%s).",
        state.path,
        "unknown" if state.step is None else state.step,
        export_dir,
        tau,
        flags_obj.target_prior,
        "" if target is None else f" {[round(float(v), 6) for v in target]}",
    )
    return export_dir


def _export_tflite(config, state, tau, target, flags_obj) -> str:
    from launch import export_tflite

    directory = flags_obj.export_dir or os.path.join(
        flags_obj.model_dir, "tflite"
    )
    path = export_tflite.write(
        config,
        state,
        tau,
        os.path.join(directory, export_tflite.MODEL_FILE),
        flags_obj.quantize,
        flags_obj.representative_images,
        target,
    )
    logging.info(
        "Exported %s (step %s) to %s (post-hoc tau: %s, quantize: %s, "
        "target prior: %s).",
        state.path,
        "unknown" if state.step is None else state.step,
        path,
        tau,
        flags_obj.quantize,
        flags_obj.target_prior,
    )
    return path


def main(_):
    if flags.FLAGS["model_dir"].using_default_value:
        raise app.UsageError("Pass --model_dir of a launch.train run.")
    common.run_main("launch.export", lambda: run(flags.FLAGS))


if __name__ == "__main__":
    define_flags()
    common.app_run(main)
