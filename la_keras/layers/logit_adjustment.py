"""The post-hoc logit adjustment layer."""

import numpy as np
from keras import layers
from keras import ops
from keras.saving import register_keras_serializable

from la_keras import adjustment as adjustment_lib
from la_keras import priors as priors_lib


@register_keras_serializable(package="la_keras")
class LogitAdjustment(layers.Layer):
    """Subtracts `tau * log(prior)` from logits: post-hoc logit adjustment.

    Turns the logits of a model trained with plain cross-entropy into
    estimates of the *balanced* class posterior (Menon et al. 2021, eq. 9).
    `tau` is a non-trainable weight: assign `layer.tau = 0.5` after training
    and the change reaches `predict`, saved `.keras` files and exports
    without retraining.

    Formula:

    ```python
    outputs = logits - log(priors**tau + epsilon)
    ```

    which is the negative of the adjustment that `LogitAdjustedLoss` adds
    during training, with the same epsilon convention as the official
    release.

    Args:
        priors: class probabilities or counts, one per class; normalized
            internally.
        tau: temperature, `>= 0`; 0 leaves the logits unchanged.
        epsilon: added to `priors**tau` inside the log so zero priors stay
            finite.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    inputs = keras.Input((16,))
    logits = keras.layers.Dense(3)(inputs)
    adjusted = la_keras.layers.LogitAdjustment([5000, 500, 50])(logits)
    model = keras.Model(inputs, adjusted)
    ```

    References:
        - [Menon et al., 2021](https://arxiv.org/abs/2007.07314)
    """

    def __init__(
        self,
        priors,
        tau=1.0,
        epsilon=adjustment_lib.DEFAULT_EPSILON,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Layers.
        self.priors = priors_lib.normalize(priors)
        self.epsilon = adjustment_lib.check_epsilon(epsilon)
        initial_tau = adjustment_lib.check_tau(tau)
        # Any tau > 0 set later would make log(0) = -inf: refuse it now.
        adjustment_lib.check_zero_priors(self.priors, self.epsilon)
        self._tau = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            dtype="float32",
            name="tau",
        )
        self._tau.assign(initial_tau)
        # The exact Python value, for configs; the variable feeds the graph.
        self._tau_value = initial_tau
        self.built = True

    @property
    def num_classes(self):
        return int(self.priors.shape[0])

    @property
    def tau(self):
        stored = float(ops.convert_to_numpy(self._tau))
        if np.float32(self._tau_value) != np.float32(stored):
            # The variable was restored from a checkpoint or file.
            self._tau_value = stored
        return self._tau_value

    @tau.setter
    def tau(self, value):
        value = adjustment_lib.check_tau(value)
        self._tau.assign(value)
        self._tau_value = value

    def adjustment(self):
        """`log(priors**tau + epsilon)` as a float32 tensor."""
        return adjustment_lib.log_adjustment_tensor(
            self.priors, self._tau, self.epsilon
        )

    def call(self, logits):
        adjustment_lib.check_num_classes(logits, self.num_classes)
        adjusted = ops.cast(logits, "float32") - self.adjustment()
        return ops.cast(adjusted, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "priors": priors_lib.as_float_list(self.priors),
                "tau": self.tau,
                "epsilon": self.epsilon,
            }
        )
        return config
