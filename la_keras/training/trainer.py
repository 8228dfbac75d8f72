"""`Trainer`: the `tf.distribute` step runner, `strategy.run` in a `tf.function`."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class Predictor:
    """Logits of a Keras model over a (distributed) dataset.

    Args:
        strategy: the strategy the model was built under.
        model: a Keras model mapping images to logits.
    """

    def __init__(self, strategy, model):
        self.strategy = strategy
        self.model = model
        self._predict = tf.function(self._predict_fn, reduce_retracing=True)

    def _predict_fn(self, images, labels):
        def replica_fn(images, labels):
            return self.model(images, training=False), labels

        logits, labels = self.strategy.run(replica_fn, args=(images, labels))
        return (
            self.strategy.gather(logits, axis=0),
            self.strategy.gather(labels, axis=0),
        )

    def predict(self, dataset) -> tuple[np.ndarray, np.ndarray]:
        """Logits and labels over a (distributed) `(images, labels)` dataset.

        Every worker gets all logits and labels (`strategy.gather`).

        Returns:
            `(logits [N, C] float32, labels [N] int64)` numpy arrays.
        """
        all_logits, all_labels = [], []
        for images, labels in dataset:
            logits, labels = self._predict(images, labels)
            all_logits.append(logits.numpy())
            all_labels.append(labels.numpy().reshape(-1))
        if not all_logits:
            raise ValueError("The evaluation dataset is empty.")
        return (
            np.concatenate(all_logits).astype(np.float32),
            np.concatenate(all_labels).astype(np.int64),
        )


class Trainer:
    """Trains and evaluates a Keras model with a `tf.distribute` strategy.

    The per-replica step computes the Keras loss (whose
    "sum_over_batch_size" reduction already divides by
    `num_replicas_in_sync` inside `strategy.run`, so summing it over
    replicas gives the global-batch mean) plus the model's regularization
    losses divided by `num_replicas_in_sync` (each replica holds the full
    penalty), and applies the gradients with `optimizer.apply_gradients`,
    which all-reduces them (sum) across replicas.

    Create the strategy first and build `model`, `loss` and `optimizer`
    inside `strategy.scope()` before creating the `Trainer`.

    Args:
        strategy: the `tf.distribute.Strategy` the model was built under.
        model: a Keras model mapping images to logits.
        loss: a Keras loss taking `(labels, logits)`.
        optimizer: a Keras optimizer.
        jit_compile: compile the forward and backward pass with XLA.
    """

    def __init__(self, strategy, model, loss, optimizer, *, jit_compile=False):
        self.strategy = strategy
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.jit_compile = bool(jit_compile)
        with strategy.scope():
            self.train_accuracy = keras.metrics.SparseCategoricalAccuracy(
                name="train_accuracy"
            )
            self.optimizer.build(model.trainable_variables)
        self._gradients = tf.function(
            self._replica_gradients, jit_compile=self.jit_compile
        )
        self._train_loop = tf.function(self._train_loop_fn)
        self.predictor = Predictor(strategy, model)

    def predict(self, dataset) -> tuple[np.ndarray, np.ndarray]:
        """See `Predictor.predict`."""
        return self.predictor.predict(dataset)

    @property
    def step(self) -> int:
        """The global step (`optimizer.iterations`) as a Python int."""
        return int(np.asarray(self.optimizer.iterations.numpy()))

    @property
    def learning_rate(self):
        """The optimizer's current learning rate: a scalar tensor, read
        now (`float()` converts it)."""
        return tf.identity(self.optimizer.learning_rate)

    def _replica_gradients(self, images, labels):
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            loss = self.loss(labels, logits)
            regularization = self.model.losses
            if regularization:
                loss += tf.add_n(regularization) / tf.cast(
                    self.strategy.num_replicas_in_sync, loss.dtype
                )
        variables = self.model.trainable_variables
        return loss, logits, tape.gradient(loss, variables)

    def _replica_step(self, images, labels):
        loss, logits, grads = self._gradients(images, labels)
        self.optimizer.apply_gradients(
            zip(grads, self.model.trainable_variables, strict=True)
        )
        self.train_accuracy.update_state(labels, logits)
        return loss

    def _train_loop_fn(self, iterator, num_steps):
        total = tf.constant(0.0)
        for _ in tf.range(num_steps):
            images, labels = next(iterator)
            per_replica = self.strategy.run(
                self._replica_step, args=(images, labels)
            )
            total += self.strategy.reduce(
                tf.distribute.ReduceOp.SUM, per_replica, axis=None
            )
        return total

    def train_steps(self, iterator, num_steps: int) -> float:
        """Runs `num_steps` steps from a distributed iterator.

        Returns:
            The sum over steps of the global-batch training loss
            (regularization included), as a Python float; NaN or inf when
            the training diverged.
        """
        return float(self.dispatch_steps(iterator, num_steps).numpy())

    def dispatch_steps(self, iterator, num_steps: int):
        """`train_steps` returning the loss sum as a scalar tensor, which
        an accelerator may still be computing."""
        return self._train_loop(iterator, tf.constant(int(num_steps), tf.int32))

    def any_worker(self, flag: bool) -> bool:
        """True if `flag` is true on any worker of a multi-worker run.

        A collective (every worker must call it at the same point): used so
        that a stop request reaching one worker stops all of them at the
        same step. On a single worker it is `flag` itself.
        """
        workers = getattr(self.strategy.extended, "_num_workers", 1) or 1
        if workers <= 1:
            return bool(flag)
        value = self.strategy.run(lambda: tf.constant(float(flag)))
        total = self.strategy.reduce(
            tf.distribute.ReduceOp.SUM, value, axis=None
        )
        return float(total.numpy()) > 0
