"""Models: the logit adjustment wrapper and long-tail backbones."""

from la_keras.models import registry
from la_keras.models.cifar_resnet import cifar_resnet
from la_keras.models.cifar_resnet import official_resnet32
from la_keras.models.cifar_resnet import resnet32
from la_keras.models.logit_adjusted_model import LogitAdjustedModel
from la_keras.models.registry import build
from la_keras.models.resnet50 import resnet50
from la_keras.models.weight_norm import sweep_weight_norm_tau
from la_keras.models.weight_norm import tau_normalize
