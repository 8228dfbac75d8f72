"""`LossOptions`: the adjustment mode, the training loss and its hyperparameters."""

from __future__ import annotations

import dataclasses

from la_keras.runs.parts import checks
from la_keras.runs.parts.option import at_least
from la_keras.runs.parts.option import nonnegative_floats
from la_keras.runs.parts.option import option


@dataclasses.dataclass(frozen=True)
class LossOptions:
    """The adjustment mode, the training loss and its hyperparameters."""

    mode: str = option(
        "posthoc",
        (
            "Logit-adjustment mode. See paper for "
            "details. baseline and posthoc train with cross-entropy, loss with "
            "the logit-adjusted loss; posthoc also evaluates logits - "
            "log(priors**tau + 1e-12)."
        ),
        choices=("baseline", "posthoc", "loss"),
    )
    tau: float = option(
        1.0,
        "Tau parameter for logit adjustment.",
        check=at_least(0, finite=True, note=" (0 disables it)"),
    )
    tau_grid: tuple = option(
        (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0),
        "Taus tried on the holdout for post-hoc adjustment.",
        kind="list",
        check=nonnegative_floats,
    )
    loss: str | None = option(
        None,
        (
            "Training loss from la_keras.losses.names(); default from --mode: "
            "logit_adjusted for mode=loss, else crossentropy."
        ),
        check=checks.loss,
    )
    ldam_max_m: float | None = option(
        None,
        "--loss=ldam / ldam_drw: margin of the rarest class (default 0.5).",
    )
    ldam_s: float | None = option(
        None,
        (
            "--loss=ldam / ldam_drw: logit scale s (default 30, Cao et al.'s "
            "value for the cosine classifier that --classifier=auto gives the "
            "LDAM losses; with --classifier=dense pick a small s, e.g. 1)."
        ),
    )
    drw_start_epoch: int | None = option(
        None,
        (
            "--loss=ldam_drw: 0-based epoch from which deferred re-weighting "
            "applies class-balanced weights (default 160)."
        ),
    )
    drw_beta: float | None = option(
        None,
        (
            "--loss=ldam_drw: effective-number beta of the DRW weights (default "
            "0.9999)."
        ),
    )
    eql_lambda: float | None = option(
        None,
        "--loss=equalized: tail frequency threshold (default 1/classes).",
    )
    eql_gamma: float | None = option(
        None,
        (
            "--loss=equalized: probability of dropping a tail class from the "
            "softmax denominator (default 1)."
        ),
    )
    cb_beta: float | None = option(
        None,
        (
            "--loss=class_balanced / class_balanced_focal: effective-number "
            "beta (default 0.9999)."
        ),
    )
    focal_gamma: float | None = option(
        None,
        "--loss=focal / class_balanced_focal: focusing gamma (default 2).",
    )


# Loss hyperparameter field -> (keyword of `la_keras.losses.build`, the
# losses that take it). Each is passed to those losses only; None keeps the
# loss's own default.
LOSS_OPTIONS = {
    "ldam_max_m": ("max_m", ("ldam", "ldam_drw")),
    "ldam_s": ("s", ("ldam", "ldam_drw")),
    "drw_start_epoch": ("drw_start_epoch", ("ldam_drw",)),
    "drw_beta": ("drw_beta", ("ldam_drw",)),
    "eql_lambda": ("lambda_", ("equalized",)),
    "eql_gamma": ("gamma", ("equalized",)),
    "cb_beta": ("beta", ("class_balanced", "class_balanced_focal")),
    "focal_gamma": ("gamma", ("class_balanced_focal", "focal")),
}
