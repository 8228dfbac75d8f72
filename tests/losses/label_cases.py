"""The losses and labels of the label-check tests (not a test module).

It imports no TensorFlow, so that the JAX-backend test can import it too.
"""

import numpy as np

from la_keras import losses

COUNTS = [50, 20, 10, 5]
NUM_CLASSES = 4
MARGINS = np.log(np.outer(1.0 / np.array(COUNTS), COUNTS))

# Label batches of 3 whose middle label is invalid for 4 classes.
INVALID = {
    "too large": [0, NUM_CLASSES, 1],
    "negative": [0, -1, 1],
    "not a whole number": [0.0, 2.5, 1.0],
}
VALID = [0, 3, 1]


def logits(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, NUM_CLASSES)).astype(np.float32)


def sparse_losses():
    """name -> a per-example (`reduction=None`) loss that takes class ids."""
    drw = losses.LDAMLoss(COUNTS, drw_start_epoch=0, reduction=None)
    drw.on_epoch_begin(0)
    return {
        "logit_adjusted": losses.LogitAdjustedLoss(COUNTS, reduction=None),
        "pairwise_margin": losses.PairwiseMarginLoss(MARGINS, reduction=None),
        "balanced_softmax": losses.BalancedSoftmaxLoss(COUNTS, reduction=None),
        "ldam": losses.LDAMLoss(COUNTS, reduction=None),
        "ldam_drw": drw,
        "equalized": losses.EqualizedLoss(COUNTS, reduction=None),
        "class_balanced": losses.ClassBalancedLoss(
            COUNTS, beta=0.9, reduction=None
        ),
        "class_balanced_focal": losses.ClassBalancedLoss(
            COUNTS, beta=0.9, loss_type="focal", reduction=None
        ),
        "focal": losses.FocalLoss(reduction=None),
    }


def loss_functions():
    """name -> the functional form `fn(y_true, y_pred)`, no `Loss.__call__`."""
    return {
        "logit_adjusted_crossentropy": lambda y, z: (
            losses.logit_adjusted_crossentropy(y, z, COUNTS)
        ),
        "pairwise_margin_loss": lambda y, z: losses.pairwise_margin_loss(
            y, z, MARGINS
        ),
        "balanced_softmax_crossentropy": lambda y, z: (
            losses.balanced_softmax_crossentropy(y, z, COUNTS)
        ),
        "ldam_loss": lambda y, z: losses.ldam_loss(y, z, COUNTS),
        "equalized_crossentropy": lambda y, z: losses.equalized_crossentropy(
            y, z, COUNTS
        ),
        "class_balanced_crossentropy": lambda y, z: (
            losses.class_balanced_crossentropy(y, z, COUNTS, beta=0.9)
        ),
        "softmax_focal_crossentropy": losses.softmax_focal_crossentropy,
    }


def all_losses():
    return {**sparse_losses(), **loss_functions()}
