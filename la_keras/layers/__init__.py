"""Layers for long-tail classification."""

from la_keras.layers.backbone_input import BackboneInput
from la_keras.layers.logit_adjustment import LogitAdjustment
from la_keras.layers.normed_dense import NormedDense
