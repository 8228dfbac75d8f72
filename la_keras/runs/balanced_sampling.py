"""Class-balanced batches train plain cross-entropy.

`--sampler=class_balanced` draws every class equally often, so its batches
no longer carry the long-tailed prior. A loss or post-hoc step that
corrects for that prior once more over-corrects toward the tail: a
bias-only head (cRT's `--finetune=linear`) shifts by `tau * log(1/prior)`.
So with this sampler a run whose `--mode` is not given trains in baseline
mode (plain cross-entropy, raw logits served; metrics.json still reports
the post-hoc rows for analysis), whatever LIFT's defaults say, and a prior
correction asked for explicitly is refused in one line:

- a loss that shifts the logits by the priors or re-weights the classes by
  their counts (`PRIOR_CORRECTING_LOSSES`; `logit_adjusted` unless
  `--tau=0`), whether given as `--loss` or implied by `--mode=loss`;
- `--mode=posthoc`, which serves `logits - tau * log(prior)` with `--tau`,
  or with tau* tuned on the holdout over `--tau_grid`, unless both are 0.

The losses that add margins or suppress gradients without a prior (ldam,
equalized, focal) stay allowed: Cao et al. combine LDAM with re-sampling.
"""

from __future__ import annotations

from absl import logging

from la_keras.runs.errors import RunError

SAMPLER = "class_balanced"

# Losses whose correction is the class prior: a logit shift by log(prior)
# (tau * log(prior) for logit_adjusted) or class weights from the counts
# (class_balanced's effective numbers, LDAM-DRW's deferred re-weighting).
PRIOR_CORRECTING_LOSSES = (
    "logit_adjusted",
    "balanced_softmax",
    "class_balanced",
    "class_balanced_focal",
    "ldam_drw",
)

_WHY = (
    "--sampler=class_balanced batches already remove the class prior, and "
    "adjusting for it again over-corrects toward the tail"
)


def default_mode(config, sampler: str) -> str | None:
    """ "baseline" for class-balanced batches when --mode is not given."""
    if sampler != SAMPLER or config.is_given("mode"):
        return None
    logging.info(
        "--sampler=class_balanced: --mode=baseline (plain cross-entropy), "
        "since the batches are class-balanced already."
    )
    return "baseline"


def check(flat: dict, loss: str, tau_grid) -> None:
    """Refuses a prior correction on class-balanced batches.

    Args:
        flat: the flat config (`sampler`, `mode`, `loss` as given, `tau`).
        loss: the loss the run trains (`--loss`, or the mode's default).
        tau_grid: the taus a post-hoc run may tune on the holdout.

    Raises:
        RunError: one line saying why and what to pass instead.
    """
    if flat["sampler"] != SAMPLER:
        return
    tau = float(flat["tau"])
    if loss in PRIOR_CORRECTING_LOSSES and not (
        loss == "logit_adjusted" and tau == 0.0
    ):
        given = f"--loss={loss}"
        if not flat["loss"]:
            given = f"--mode={flat['mode']} (--loss={loss})"
        if loss == "logit_adjusted":
            given += f" with --tau={tau:g}"
        raise RunError(
            f"{given} corrects for the class prior, but {_WHY}: leave out "
            "--mode and --loss to train plain cross-entropy, or keep the "
            "loss with --sampler=shuffle."
        )
    taus = [tau, *(float(t) for t in tau_grid)]
    if flat["mode"] == "posthoc" and any(t != 0.0 for t in taus):
        raise RunError(
            f"--mode=posthoc serves logits - tau*log(prior) (--tau={tau:g}, "
            f"or tau* tuned on the holdout over --tau_grid), but {_WHY}: use "
            "--mode=baseline (the post-hoc figures are still reported, the "
            "raw logits served), or --sampler=shuffle."
        )
