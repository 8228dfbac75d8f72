"""la_keras: long-tail learning via logit adjustment, for Keras 3."""

from la_keras import datasets
from la_keras import layers
from la_keras import losses
from la_keras import metrics
from la_keras import models
from la_keras import priors
from la_keras.losses import LogitAdjustedLoss
from la_keras.models import LogitAdjustedModel

__version__ = "0.1.0"
