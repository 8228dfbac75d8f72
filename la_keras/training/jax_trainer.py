"""`JaxTrainer`: the step runner of Keras's JAX backend.

The same step as `Trainer` (the Keras loss plus the model's regularization
losses, gradients, `optimizer.apply`, train accuracy), written with Keras's
stateless API (`model.stateless_call`, `optimizer.stateless_apply`,
`metric.stateless_update_state`) and compiled with `jax.jit`. It has the
step-runner interface of `TrainingLoop` (`step`, `train_steps`,
`train_accuracy`, `learning_rate`), so the epoch loop, its checkpoint
cadence, NaN stop and hooks are the same on both backends.

Everything the step reads that can change between steps is an input of
the compiled step, never a constant captured by its trace: the model's,
the optimizer's and the metric's variables, and the variables the loss
holds (LDAM's per-class weights, which deferred re-weighting changes in
`on_epoch_begin`), which the loss reads inside a `keras.StatelessScope`.
The state lives in JAX arrays between steps and is written back to the
Keras variables after every `train_steps` call, so checkpoints, evaluation
and `model.save` see the trained weights.

Use it with `KERAS_BACKEND=jax`; importing it needs `jax`.
"""

from __future__ import annotations

import jax
import keras
import numpy as np

LOOPS = ("python", "scan")


def held_variables(obj) -> list:
    """The `keras.Variable`s that `obj` holds, in a fixed order.

    Those of its `variables` if it has them (a layer), else those among its
    attributes, in lists, tuples and dicts too: how a Keras `Loss`, which
    does not track variables, keeps state (`LDAMLoss`'s class weights).
    """
    found = getattr(obj, "variables", None)
    if found is None:
        found = keras.tree.flatten(
            [value for _, value in sorted(vars(obj).items())]
        )
    variables, seen = [], set()
    for value in found:
        if isinstance(value, keras.Variable) and id(value) not in seen:
            seen.add(id(value))
            variables.append(value)
    return variables


class JaxTrainer:
    """Trains a Keras model on the JAX backend, one jitted step at a time.

    Args:
        model: a Keras model mapping images to logits.
        loss: a Keras loss taking `(labels, logits)`.
        optimizer: a Keras optimizer.
        jit_compile: compile the step with `jax.jit` (False: eager, for
            debugging).
        loop: how `train_steps` runs its steps: "python" (a Python loop
            over the jitted step) or "scan" (all the steps of a call in one
            compiled `jax.lax.scan`, the batches made inside it; needs the
            iterator of a `DeviceDataset` epoch, else it falls back to
            "python"). Both give the same result. Which is faster depends on
            the device: XLA runs convolutions inside compiled loops much
            slower on CPU (jax-ml/jax#12868), and one scanned epoch wins on
            GPUs; `bench/bench_backends.py` measures both.
    """

    def __init__(
        self, model, loss, optimizer, *, jit_compile=True, loop="python"
    ):
        if loop not in LOOPS:
            raise ValueError(
                f"Invalid value for argument `loop`: expected one of {LOOPS}. "
                f"Received: loop={loop!r}"
            )
        self.loop = loop
        if keras.backend.backend() != "jax":
            raise ValueError(
                "JaxTrainer needs the JAX backend of Keras (KERAS_BACKEND=jax);"
                f" the backend is {keras.backend.backend()!r}. Use "
                "la_keras.training.Trainer on TensorFlow."
            )
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.train_accuracy = keras.metrics.SparseCategoricalAccuracy(
            name="train_accuracy"
        )
        optimizer.build(model.trainable_variables)
        self._loss_variables = held_variables(loss)
        self._step = jax.jit(self._step_fn) if jit_compile else self._step_fn
        self._scan = jax.jit(self._scan_fn, static_argnums=(4, 5))
        self._predictor = JaxPredictor(model, jit_compile=jit_compile)

    @property
    def step(self) -> int:
        """The global step (`optimizer.iterations`) as a Python int."""
        return int(np.asarray(self.optimizer.iterations.value))

    @property
    def learning_rate(self):
        """The optimizer's current learning rate: a JAX scalar, computed
        without waiting for the device (`float()` reads it)."""
        return keras.ops.convert_to_tensor(self.optimizer.learning_rate)

    def any_worker(self, flag: bool) -> bool:
        """True on every process if `flag` is True on any (a collective:
        every process calls it at the same point); `flag` on one process."""
        if jax.process_count() == 1:
            return bool(flag)
        from jax.experimental import multihost_utils

        gathered = multihost_utils.process_allgather(np.array(flag))
        return bool(np.any(gathered))

    def _state(self):
        return (
            [v.value for v in self.model.trainable_variables],
            [v.value for v in self.model.non_trainable_variables],
            [v.value for v in self.optimizer.variables],
            [v.value for v in self.train_accuracy.variables],
            [v.value for v in self._loss_variables],
        )

    def _assign(self, state) -> None:
        owners = (
            self.model.trainable_variables,
            self.model.non_trainable_variables,
            self.optimizer.variables,
            self.train_accuracy.variables,
            self._loss_variables,
        )
        for variables, values in zip(owners, state, strict=True):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)

    def _loss_fn(self, trainable, non_trainable, loss_vars, images, labels):
        logits, non_trainable, losses = self.model.stateless_call(
            trainable,
            non_trainable,
            images,
            training=True,
            return_losses=True,
        )
        # The loss reads (and may update) its variables as step inputs.
        mapping = list(zip(self._loss_variables, loss_vars, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            loss = self.loss(labels, logits)
        loss_vars = [
            scope.get_current_value(variable)
            for variable in self._loss_variables
        ]
        if losses:
            loss = loss + sum(losses)
        return loss, (logits, non_trainable, loss_vars)

    def _step_fn(self, state, images, labels):
        trainable, non_trainable, optimizer_vars, metric_vars, loss_vars = state
        grad_fn = jax.value_and_grad(self._loss_fn, has_aux=True)
        (loss, (logits, non_trainable, loss_vars)), grads = grad_fn(
            trainable, non_trainable, loss_vars, images, labels
        )
        trainable, optimizer_vars = self.optimizer.stateless_apply(
            optimizer_vars, grads, trainable
        )
        metric_vars = self.train_accuracy.stateless_update_state(
            metric_vars, labels, logits
        )
        state = (trainable, non_trainable, optimizer_vars, metric_vars)
        return (*state, loss_vars), loss

    def train_steps(self, iterator, num_steps: int) -> float:
        """Runs `num_steps` steps on `(images, labels)` batches of `iterator`.

        Returns:
            The sum over steps of the training loss (regularization
            included), as a Python float; NaN or inf when training diverged.
        """
        return float(self.dispatch_steps(iterator, num_steps))

    def dispatch_steps(self, iterator, num_steps: int):
        """`train_steps` without waiting: the loss sum as a JAX scalar.

        JAX dispatches the steps asynchronously; the Keras variables hold
        the (future) results, so the host can prepare the next call while
        the device runs these.
        """
        state = self._state()
        if self.loop == "scan" and hasattr(iterator, "batch_at"):
            state, losses = self._scan(
                state,
                iterator.key,
                iterator.order,
                iterator.index,
                iterator.batch_at,
                int(num_steps),
            )
            iterator.advance(int(num_steps))
        else:
            losses = []
            for _ in range(int(num_steps)):
                images, labels = next(iterator)
                state, loss = self._step(state, images, labels)
                losses.append(loss)
        self._assign(state)
        return jax.numpy.sum(jax.numpy.asarray(losses, jax.numpy.float32))

    def _scan_fn(self, state, key, order, start, batch_at, num_steps):
        def body(state, i):
            images, labels = batch_at(key, order, start + i)
            return self._step_fn(state, images, labels)

        return jax.lax.scan(body, state, jax.numpy.arange(num_steps))

    def predict(self, batches) -> tuple[np.ndarray, np.ndarray]:
        """Logits and labels over an iterable of `(images, labels)` batches."""
        return self._predictor.predict(batches)


class JaxPredictor:
    """The model's outputs over batches, one jitted inference call each.

    It reads the model's current variables at every `predict`, so one
    predictor serves a whole training (compiled once).

    Args:
        model: a Keras model.
        jit_compile: compile with `jax.jit` (False: eager).
    """

    def __init__(self, model, *, jit_compile=True):
        self.model = model
        self._predict = (
            jax.jit(self._predict_fn) if jit_compile else self._predict_fn
        )

    def _predict_fn(self, trainable, non_trainable, images):
        logits, _ = self.model.stateless_call(
            trainable, non_trainable, images, training=False
        )
        return logits

    def predict(self, batches) -> tuple[np.ndarray, np.ndarray]:
        """Outputs and labels over an iterable of `(images, labels)` batches."""
        trainable = [v.value for v in self.model.trainable_variables]
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        all_logits, all_labels = [], []
        for images, labels in batches:
            logits = self._predict(trainable, non_trainable, images)
            all_logits.append(np.asarray(logits, np.float32))
            all_labels.append(np.asarray(labels).reshape(-1))
        if not all_logits:
            raise ValueError("The evaluation dataset is empty.")
        return (
            np.concatenate(all_logits),
            np.concatenate(all_labels).astype(np.int64),
        )
