"""Checkpoint to SavedModel: `python -m launch.export`, the flags of
`la_keras.runs.export`.

Rebuilds the model of a `launch.train` run from its flags.json, restores its
newest state (or --checkpoint): the newest checkpoint, or a JAX-backend
run's `model.keras` when that holds a later step (`la_keras.runs.run_state`; the
log names the file and step exported), and writes a SavedModel whose
`serving_default` signature takes uint8 `images` and returns `logits`,
`raw_logits`, `probabilities` and `classes`, preprocessing included, as
`la_keras.serving.export_saved_model`. Post-hoc runs bake in the adjustment
with the tau chosen during training (metrics.json's `served_tau`) unless
--tau is given; baseline runs serve raw logits unless --tau is given.
Loss-mode runs always serve their raw logits (tau 0): the loss already
adjusted them, and --tau is refused. `--target_prior=train` or a file of
class priors bakes that class mix into `serving_default` instead of the
uniform one (`la_keras.runs.target_prior`); every export also has the
`serve_with_prior` signature, which takes the mix per request.
`--format=tflite` writes a TFLite model of `serving_default` instead
(`la_keras.runs.export_tflite`). A run moved with its prepared file (or folder)
takes `--dataset=prepared:NEWPATH`, recognised by checksum. `--tta=flip`
or `--tta=crops5` serves logits averaged over test-time views
(`la_keras.tta`; the SavedModel's `tta` variable says which; refused with
--format=tflite).

    python -m launch.export --model_dir=/tmp/run --export_dir=/tmp/run/serving
"""

from __future__ import annotations

from absl import flags

from la_keras import runs
from la_keras.runs import run_export
from launch import cli
from launch import common_flags
from launch import evaluate


def define_flags() -> None:
    common_flags.define_flags()
    evaluate.define_tta_flag()
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
        list(run_export.FORMATS),
        "saved_model: the serving SavedModel in --export_dir. tflite: "
        "model.tflite and model.tflite.json in --export_dir (default: "
        "<model_dir>/tflite), whose logits are serving_default's "
        "(--target_prior included).",
    )
    flags.DEFINE_enum(
        "quantize",
        "none",
        list(run_export.QUANTIZATIONS),
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


_KEYWORDS = (
    "format", "quantize", "target_prior", "checkpoint", "representative_images",
    "tta",
)  # fmt: skip


def run(flags_obj) -> str:
    """Exports (`la_keras.runs.export`); returns the SavedModel directory
    (or the .tflite file)."""
    return cli.call(runs.export, flags_obj, _KEYWORDS)


def main(_):
    cli.require_model_dir(flags.FLAGS)
    cli.run_main("launch.export", lambda: run(flags.FLAGS))


if __name__ == "__main__":
    define_flags()
    cli.app_run(main)
