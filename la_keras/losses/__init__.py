"""Losses for long-tail classification."""

from la_keras.losses.catalogue import build
from la_keras.losses.catalogue import describe
from la_keras.losses.catalogue import names
from la_keras.losses.logit_adjusted import LogitAdjustedLoss
from la_keras.losses.logit_adjusted import logit_adjusted_crossentropy
