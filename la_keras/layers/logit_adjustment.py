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
    # with a target_prior (la_keras.adjustment.retarget):
    outputs = logits - log(priors**tau + epsilon) + log(target_prior + epsilon)
    ```

    which is the negative of the adjustment that `LogitAdjustedLoss` adds
    during training, with the same epsilon convention as the official
    release. A `target_prior` makes the argmax the Bayes rule for that class
    mix instead of the uniform one.

    Args:
        priors: class probabilities or counts, one per class; normalized
            internally.
        tau: temperature, `>= 0`; 0 leaves the logits unchanged.
        epsilon: added to `priors**tau` inside the log so zero priors stay
            finite.
        target_prior: the deployment class probabilities or counts, one per
            class, or None for uniform (the balanced rule, exactly as
            without it).
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
        target_prior=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Layers.
        self.priors = priors_lib.normalize(priors)
        self.epsilon = adjustment_lib.check_epsilon(epsilon)
        self.target_prior = None
        if target_prior is not None:
            self.target_prior = priors_lib.normalize(
                target_prior, "target_prior"
            )
            if self.target_prior.shape != self.priors.shape:
                raise ValueError(
                    "Invalid value for argument `target_prior`. Expected "
                    f"one entry per class ({self.priors.shape[0]}). "
                    f"Received: target_prior={target_prior!r}"
                )
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

    def target_adjustment(self):
        """`log(target_prior + epsilon)` as float32 numpy; None if uniform."""
        if self.target_prior is None:
            return None
        return adjustment_lib.log_adjustment(
            self.target_prior, 1.0, self.epsilon
        )

    def call(self, logits):
        adjustment_lib.check_num_classes(logits, self.num_classes)
        adjusted = ops.cast(logits, "float32") - self.adjustment()
        if self.target_prior is not None:
            adjusted = adjusted + self.target_adjustment()
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
                "target_prior": None
                if self.target_prior is None
                else priors_lib.as_float_list(self.target_prior),
            }
        )
        return config
