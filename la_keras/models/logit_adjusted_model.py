"""A Keras model wrapper for both logit adjustment modes."""

import keras
from keras.saving import register_keras_serializable

from la_keras import adjustment as adjustment_lib
from la_keras import priors as priors_lib
from la_keras.layers.logit_adjustment import LogitAdjustment
from la_keras.losses.logit_adjusted import LogitAdjustedLoss

MODES = ("posthoc", "loss")


@register_keras_serializable(package="la_keras")
class LogitAdjustedModel(keras.Model):
    """Wraps a logits classifier with logit adjustment (Menon et al. 2021).

    The two modes of the paper:

    | mode        | trained with                 | predicts                   |
    |-------------|------------------------------|----------------------------|
    | `"posthoc"` | plain softmax cross-entropy  | `logits - tau*log(prior)`  |
    | `"loss"`    | `LogitAdjustedLoss(priors)`  | raw `logits`               |

    `compile()` without a `loss` picks the mode's training loss. Inference
    (`predict`, `evaluate`, `__call__` with `training=False` or unset, and
    `export`) returns what the table says; training (`fit`, or
    `training=True`) always sees the raw logits. In loss mode the logits are
    never adjusted at test time: the loss already did it.

    `target_prior` (None: uniform) retargets inference to another class mix
    with `la_keras.adjustment.retarget`'s rule: post-hoc mode predicts
    `logits - log(prior**tau + eps) + log(target_prior + eps)`, loss mode
    `logits + log(target_prior + eps)`. Without it, each mode predicts what
    the table says, exactly.

    `tau` can be changed after training (`model.tau = 0.5`): the change
    reaches `predict`, `.keras` files and exports without retraining. In
    loss mode it only sets the tau of the default loss at the next
    `compile()`.

    Args:
        model: a Keras model that maps inputs to logits `[B, C]`.
        priors: class probabilities or counts, length `C`.
        tau: temperature on the priors, `>= 0`.
        mode: `"posthoc"` or `"loss"`.
        epsilon: added to `priors**tau` inside the log.
        target_prior: the deployment class probabilities or counts, length
            `C`, or None for uniform (the balanced rule of each mode).
        **kwargs: base `keras.Model` arguments (`name`, ...).

    Example:

    ```python
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model = la_keras.LogitAdjustedModel(base, [500, 50, 5], mode="posthoc")
    model.compile(optimizer="sgd")  # plain cross-entropy
    model.fit(x, y)
    model.predict(x)  # adjusted logits
    model.export("exported/")  # SavedModel whose `serve` returns the same
    ```

    References:
        - [Menon et al., 2021](https://arxiv.org/abs/2007.07314)
    """

    def __init__(
        self,
        model,
        priors,
        tau=1.0,
        mode="posthoc",
        epsilon=adjustment_lib.DEFAULT_EPSILON,
        target_prior=None,
        **kwargs,
    ):
        if mode not in MODES:
            raise ValueError(
                "Invalid value for argument `mode`. Expected one of "
                f"{MODES}. Received: mode={mode!r}"
            )
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Invalid value for argument `model`. Expected a keras.Model "
                f"that outputs logits. Received: model={model!r}"
            )
        super().__init__(**kwargs)
        # Layers.
        self.model = model
        self.adjustment = LogitAdjustment(
            priors,
            tau=tau,
            epsilon=epsilon,
            target_prior=target_prior,
            name="logit_adjustment",
        )
        # Config.
        self.mode = mode
        self.epsilon = self.adjustment.epsilon
        if model.built and getattr(model, "inputs", None):
            self.build(model.inputs[0].shape)

    @property
    def priors(self):
        return self.adjustment.priors

    @property
    def target_prior(self):
        return self.adjustment.target_prior

    @property
    def tau(self):
        return self.adjustment.tau

    @tau.setter
    def tau(self, value):
        self.adjustment.tau = value

    def build(self, input_shape):
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        logits = self.model(inputs, training=training)
        if training:
            return logits
        if self.mode == "posthoc":
            return self.adjustment(logits)
        if self.target_prior is not None:
            # Loss mode: the logits already target the uniform mix.
            shifted = keras.ops.cast(logits, "float32")
            shifted = shifted + self.adjustment.target_adjustment()
            return keras.ops.cast(shifted, logits.dtype)
        return logits

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """Compiles the model; without `loss`, uses the mode's loss."""
        if loss is None:
            if self.mode == "loss":
                loss = LogitAdjustedLoss(
                    self.priors, tau=self.tau, epsilon=self.epsilon
                )
            else:
                loss = keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True
                )
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def export(
        self,
        filepath,
        format="tf_saved_model",
        verbose=None,
        input_signature=None,
        **kwargs,
    ):
        """Exports for inference; `serving_default` returns what `predict` does.

        Without `input_signature`, the wrapped model's input spec is used, so
        a wrapper that was never called can be exported directly.
        """
        inputs = getattr(self.model, "inputs", None)
        if input_signature is None and not self._called and inputs:
            input_signature = [
                keras.InputSpec(shape=(None, *x.shape[1:]), dtype=x.dtype)
                for x in inputs
            ]
        return super().export(
            filepath,
            format=format,
            verbose=verbose,
            input_signature=input_signature,
            **kwargs,
        )

    def compile_from_config(self, config):
        """Recompiles a loaded model exactly as it was compiled."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.model),
                "priors": priors_lib.as_float_list(self.priors),
                "tau": self.tau,
                "mode": self.mode,
                "epsilon": self.epsilon,
                "target_prior": None
                if self.target_prior is None
                else priors_lib.as_float_list(self.target_prior),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)
