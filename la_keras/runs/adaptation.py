"""The steps of `la_keras.runs.adapt`: logits of the deployment data, calibration,
the prior estimate, and the top-1 of the three decision rules."""

from __future__ import annotations

import os

import keras
import numpy as np
from absl import logging

from la_keras import calibration as calibration_lib
from la_keras import prior_shift
from la_keras.adjustment import retarget
from la_keras.datasets import folder
from la_keras.datasets import shifted
from la_keras.runs import outputs
from la_keras.runs import reporting
from la_keras.runs.errors import RunError

CALIBRATION_FILE = "calibration.json"
TARGET_PRIOR_FILE = "target_prior.json"


def predict_images(model, images: np.ndarray, info, batch_size: int):
    """Raw logits `[N, C]` of uint8 images, with the run's evaluation
    preprocessing (as `launch.evaluate`'s pipelines)."""
    if keras.backend.backend() == "tensorflow":
        from la_keras.datasets import preprocess_images

        def prepare(batch):
            return preprocess_images(
                batch, info.preprocessing, image_size=info.image_shape[:2]
            )
    else:
        from la_keras.training.jax_data import normalize as prepare
    out = []
    for start in range(0, len(images), batch_size):
        batch = prepare(images[start : start + batch_size])
        out.append(keras.ops.convert_to_numpy(model(batch, training=False)))
    return np.concatenate(out).astype(np.float64)


def split_logits(config, model, split: str):
    """`(logits, labels)` of a split of the run's dataset."""
    images, labels, info = config.data.arrays(split)
    logits = predict_images(model, images, info, config.data.test_batch_size)
    return logits, np.asarray(labels, np.int64)


def unlabelled_logits(dataset: str, model, info, batch_size: int):
    """`(logits, None)` of the images of an unlabelled `folder:` dataset."""
    paths, images = folder.unlabelled_arrays(dataset, info.image_shape)
    logging.info("Read %d unlabelled images from %s.", len(paths), dataset)
    return predict_images(model, images, info, batch_size), None


def fit_calibration(config, model, kind: str):
    """`(Calibration, holdout logits and labels or None)`; saved as JSON.

    Without a holdout, no calibration (and a warning saying so).
    """
    if not config.data.has_holdout:
        if kind != "none":
            logging.warning(
                "The run has no holdout (--holdout_fraction=0): no "
                "calibration is fitted; the estimate uses the raw softmax."
            )
        return calibration_lib.Calibration(), None
    holdout = split_logits(config, model, "holdout")
    calibration = calibration_lib.fit_calibration(*holdout, kind)
    path = os.path.join(config.model_dir, CALIBRATION_FILE)
    outputs.write_json(path, calibration.to_dict())
    logging.info("Fitted %r on the holdout; wrote %s.", calibration, path)
    return calibration, holdout


def reference_prior(config, info, calibration) -> np.ndarray:
    """The class mix the calibrated probabilities refer to.

    Plain cross-entropy logits estimate the training mix's posterior; a
    loss-mode model's, the balanced (uniform) mix's, unless BCTS fitted on
    the holdout (training mix) put the training prior back in its biases.
    """
    if config.mode == "loss" and calibration.kind != "bcts":
        return np.full(info.num_classes, 1.0 / info.num_classes)
    return np.asarray(info.priors, np.float64)


def estimate(logits, config, info, method, calibration, holdout):
    """The `PriorEstimate` of the deployment logits."""
    train = reference_prior(config, info, calibration)
    confusion = None
    if method == "bbse":
        if holdout is None:
            raise RunError(
                "--method=bbse needs the run's holdout (its confusion "
                "matrix); the run has none: use --method=em."
            )
        confusion = prior_shift.confusion_matrix(
            *holdout, calibration=calibration
        )
    return prior_shift.estimate_prior(
        logits,
        train,
        method,
        calibration=calibration,
        confusion=confusion,
        return_info=True,
    )


def rule_accuracies(config, info, logits, labels, estimated) -> dict:
    """Top-1 of the balanced, estimated-prior and true-prior rules.

    "balanced" is the served rule (the run's served tau; raw logits for a
    baseline or loss-mode run); the other two retarget the logits to the
    estimated prior and to the split's label frequencies (tau 1: the Bayes
    rule of calibrated cross-entropy logits).
    """
    metrics = _read_metrics(config.model_dir)
    served = reporting.served_tau(config, metrics) or 0.0
    true = np.bincount(labels, minlength=info.num_classes) / len(labels)
    uniform = np.ones(info.num_classes)
    rules = {
        "balanced": (uniform, served),
        "estimated_prior": (estimated, 1.0),
        "true_prior": (true, 1.0),
    }
    out = {}
    for name, (target, tau) in rules.items():
        adjusted = retarget(logits, info.priors, target, tau, mode=config.mode)
        predicted = np.argmax(keras.ops.convert_to_numpy(adjusted), axis=1)
        out[name] = float(np.mean(predicted == labels))
    return out


def _read_metrics(model_dir: str) -> dict:
    try:
        return outputs.read_json(os.path.join(model_dir, "metrics.json"))
    except (FileNotFoundError, ValueError):
        return {}


def format_table(info, estimated, true=None) -> str:
    """The estimated prior, largest first, beside the training prior."""
    names = info.class_names
    width = max(5, *(len(n) for n in names))
    head = f"{'class':<{width}}  estimated  train"
    head += "  true" if true is not None else ""
    lines = [head]
    for i in np.argsort(-estimated, kind="stable"):
        row = f"{names[i]:<{width}}  {estimated[i]:9.4f}  {info.priors[i]:5.3f}"
        row += f"  {true[i]:.3f}" if true is not None else ""
        lines.append(row)
    return "\n".join(lines)


def shifted_test_report(config, info, logits: dict, test_prior) -> dict:
    """The three rules on the test split resampled to `test_prior`.

    `launch.evaluate --test_prior`: the balanced test split subsampled to a
    long-tailed mix (`la_keras.datasets.shifted`, seeded by the run seed);
    the prior estimated by EM from its logits, calibrated by BCTS fitted on
    the holdout when the run has one (nothing is written).

    Args:
        logits: `{split: (logits, labels)}` of the evaluation splits.
        test_prior: "uniform", "forward<N>" or "backward<N>", or the mix
            as one number per class.
    """
    test_logits, test_labels = logits["test"]
    test_labels = np.asarray(test_labels, np.int64)
    keep = shifted.shifted_indices(
        test_labels, info.train_counts, test_prior, config.data.seed
    )
    holdout = logits.get("holdout")
    calibration = calibration_lib.Calibration()
    if holdout is not None:
        holdout = (np.asarray(holdout[0], np.float64), holdout[1])
        calibration = calibration_lib.fit_calibration(*holdout, "bcts")
    sub_logits = np.asarray(test_logits, np.float64)[keep]
    sub_labels = test_labels[keep]
    found = estimate(sub_logits, config, info, "em", calibration, holdout)
    return {
        "test_prior": test_prior
        if isinstance(test_prior, str)
        else [round(float(p), 6) for p in test_prior],
        "num_examples": int(len(keep)),
        "calibration": calibration.to_dict(),
        "estimated_prior": [float(p) for p in found.prior],
        "top1": rule_accuracies(
            config, info, sub_logits, sub_labels, found.prior
        ),
    }
