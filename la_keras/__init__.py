"""la_keras: long-tail learning via logit adjustment, for Keras 3."""

from la_keras import losses
from la_keras import priors
from la_keras.losses import LogitAdjustedLoss

__version__ = "0.1.0"
