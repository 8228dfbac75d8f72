"""The last rows of `soak.py`: a finished run evaluated, exported, served.

`launch.evaluate` of its checkpoint, `launch.export`, the SavedModel
evaluated by `launch.evaluate --saved_model` (TensorFlow 2's loader; its
balanced accuracy must match the run's), then served in a TF1 session as TF
Serving loads it (`tests/serving_session.py`).
"""

from __future__ import annotations

import glob
import json
import os
import time

import numpy as np

from bench import soak_report


def evaluate_export_serve(soak, run, folder):
    """`launch.evaluate` and `launch.export` of the finished `run`, then its
    SavedModel evaluated by `launch.evaluate --saved_model` and served;
    each a row of `soak` (a `soak.Soak`)."""
    backend = run.backend
    model_dir = run.model_dir
    row = soak.child(
        soak_report.Row("evaluate", backend, run.mode),
        "launch.evaluate", [f"--model_dir={model_dir}"], backend,
    )  # fmt: skip
    if row.exit_code == 0:
        _compare(row, os.path.join(model_dir, "eval_metrics.json"), run)
    export_dir = os.path.join(soak.args.output_dir, "export")
    soak.child(
        soak_report.Row("export", backend, run.mode),
        "launch.export",
        [f"--model_dir={model_dir}", f"--export_dir={export_dir}"],
        backend,
    )
    report = os.path.join(soak.args.output_dir, "served_metrics.json")
    row = soak.child(
        soak_report.Row("evaluate_savedmodel", "tensorflow", run.mode),
        "launch.evaluate",
        [f"--saved_model={export_dir}", f"--dataset=folder:{folder}",
         f"--image_size={soak.args.image_size}", f"--mode={run.mode}",
         f"--output={report}"],
        "tensorflow",
    )  # fmt: skip
    if row.exit_code == 0:
        _compare(row, report, run)
    soak.rows.append(_session_row(export_dir, folder))
    soak.print_row(soak.rows[-1])


def _compare(row, path, run, tolerance=0.02):
    """The balanced accuracy of the report `path` on `row`, a failure when
    it is not the training run's."""
    try:
        with open(path) as f:
            report = json.load(f)
        row.balanced_accuracy = report["test"]["raw"]["balanced_accuracy"]
    except (OSError, ValueError, KeyError) as e:
        row.note = f"FAIL: no balanced accuracy in {path} ({e})"
        return
    if run.balanced_accuracy is not None:
        gap = abs(row.balanced_accuracy - run.balanced_accuracy)
        row.note = ("FAIL: " if gap > tolerance else "") + (
            f"vs the run's {run.balanced_accuracy:.3f}"
        )


def _session_row(export_dir, folder):
    """The SavedModel in a TF1 session (TF Serving's loader): one request of
    test images at an odd size (the model resizes them), one of gray ones
    (the model takes RGB: refused)."""
    from PIL import Image

    from tests import serving_session

    row = soak_report.Row("serve_tf1_session", "tensorflow")
    start = time.monotonic()
    paths = sorted(glob.glob(os.path.join(folder, "test", "*", "*")))[::3]
    pixels, labels = [], []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB").resize((201, 123), Image.BILINEAR)
        pixels.append(np.asarray(image))
        labels.append(os.path.basename(os.path.dirname(path)))
    pixels = np.stack(pixels)
    try:
        out = serving_session.run_in_session(
            export_dir, pixels, pixels[..., :1]
        )
        if out["bad"] == "accepted":
            raise AssertionError("a one-channel request was accepted")
        names = out["outputs"]["class_names"].astype(str)
        row.balanced_accuracy = _balanced_accuracy(names, np.asarray(labels))
        row.exit_code = 0
        row.note = f"{len(paths)} images at 123x201; 1 channel refused"
    except AssertionError as e:
        row.exit_code = 1
        row.note = "FAIL: " + str(e).strip().splitlines()[-1][:100]
    row.seconds = time.monotonic() - start
    return row


def _balanced_accuracy(predicted, labels) -> float:
    return float(
        np.mean([np.mean(predicted[labels == c] == c) for c in set(labels)])
    )
