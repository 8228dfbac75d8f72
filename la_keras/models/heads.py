"""The classifier heads a registry model can end in."""

from __future__ import annotations

# "dense": a linear layer (logits); "normed": a cosine classifier
# (`la_keras.layers.NormedDense`, the head of Cao et al.'s LDAM).
CLASSIFIERS = ("dense", "normed")


def check_classifier(classifier: str) -> str:
    """`classifier` if it is one of `CLASSIFIERS`; ValueError otherwise."""
    if classifier not in CLASSIFIERS:
        raise ValueError(
            "Invalid value for argument `classifier`. Expected one of "
            f"{', '.join(CLASSIFIERS)}. Received: classifier={classifier!r}"
        )
    return classifier
