"""Long-tail classification metrics: per-class, balanced and shot accuracy.

All three metrics keep the same state, two `[num_classes]` counters (correct
predictions and examples per true class), as Keras metric variables with SUM
aggregation. Under `tf.distribute` each replica updates its own counters and
`result()` sums them across replicas, so the metrics are exact for any
number of replicas and any batch split.
"""

from __future__ import annotations

import numpy as np
from keras import ops
from keras.metrics import Metric
from keras.saving import register_keras_serializable

from la_keras import labels as labels_lib
from la_keras import priors as priors_lib

MANY = "many"
MEDIUM = "medium"
FEW = "few"


def shot_groups(train_class_counts, many_threshold=100, few_threshold=20):
    """Assigns each class to a many / medium / few-shot group.

    Following Liu et al. 2019 (OLTR): many-shot classes have more than
    `many_threshold` training images, few-shot classes fewer than
    `few_threshold`, medium-shot classes the rest (`few_threshold` to
    `many_threshold`, both included).

    Returns:
        An int array: 0 for many, 1 for medium, 2 for few.
    """
    counts = np.asarray(train_class_counts, dtype=np.float64)
    priors_lib.normalize(counts, name="train_class_counts")
    if not few_threshold <= many_threshold:
        raise ValueError(
            "Invalid value for arguments `few_threshold` and "
            "`many_threshold`. Expected few_threshold <= many_threshold. "
            f"Received: few_threshold={few_threshold}, "
            f"many_threshold={many_threshold}"
        )
    groups = np.ones(counts.shape, dtype=np.int32)
    groups[counts > many_threshold] = 0
    groups[counts < few_threshold] = 2
    return groups


class _PerClassCounts(Metric):
    """Counts correct predictions and examples per true class."""

    def __init__(self, num_classes, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        num_classes = int(num_classes)
        if num_classes < 1:
            raise ValueError(
                "Invalid value for argument `num_classes`. Expected an "
                f"integer >= 1. Received: num_classes={num_classes}"
            )
        self.num_classes = num_classes
        self.correct, self.total = (
            self.add_variable(
                shape=(num_classes,),
                initializer="zeros",
                dtype="float32",
                aggregation="sum",
                name=variable,
            )
            for variable in ("correct", "total")
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulates one batch.

        Args:
            y_true: integer labels `[B]` or `[B, 1]`, or one-hot `[B, C]`.
                Integer labels must be whole numbers in `[0, num_classes)`,
                see `la_keras.labels.class_ids`: others raise an error.
            y_pred: logits or probabilities `[B, C]`.
            sample_weight: optional per-example weights `[B]`.
        """
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        classes = y_pred.shape[-1]
        if classes is not None and classes != self.num_classes:
            raise ValueError(
                f"{self.__class__.__name__} was built for {self.num_classes} "
                f"classes but the predictions have {classes} (shape "
                f"{tuple(y_pred.shape)})."
            )
        # Where an invalid label cannot raise (jax.jit, XLA), it makes every
        # count, and so the result, NaN.
        invalid = 0.0
        if labels_lib.is_dense(y_true, y_pred):
            labels = ops.cast(ops.argmax(y_true, axis=-1), "int32")
        else:
            labels, valid = labels_lib.class_ids(y_true, y_pred)
            invalid = ops.where(ops.all(valid), 0.0, float("nan"))
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        hit = ops.cast(ops.equal(labels, predicted), "float32")
        weight = ops.ones_like(hit)
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
            weight = ops.broadcast_to(weight, ops.shape(hit))
        one_hot = ops.one_hot(labels, self.num_classes, dtype="float32")
        correct = ops.sum(one_hot * (hit * weight)[:, None], axis=0)
        self.correct.assign_add(correct + invalid)
        self.total.assign_add(ops.sum(one_hot * weight[:, None], 0) + invalid)

    def per_class_accuracy(self):
        """Recall of each class; NaN for classes with no examples."""
        total = ops.convert_to_tensor(self.total)
        safe = ops.where(total > 0, total, ops.ones_like(total))
        nan = ops.full_like(total, float("nan"))
        return ops.where(total > 0, self.correct / safe, nan)

    def reset_state(self):
        self.correct.assign(ops.zeros_like(self.correct))
        self.total.assign(ops.zeros_like(self.total))

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "name": self.name,
            "dtype": self.dtype,
        }


def _nanmean(values):
    present = ops.logical_not(ops.isnan(values))
    count = ops.sum(ops.cast(present, "float32"))
    total = ops.sum(ops.where(present, values, ops.zeros_like(values)))
    return ops.where(count > 0, total / ops.maximum(count, 1.0), float("nan"))


@register_keras_serializable(package="la_keras")
class PerClassAccuracy(_PerClassCounts):
    """Accuracy (recall) of each class.

    `result()` is a `[num_classes]` vector; classes absent from the evaluated
    data are NaN, not 0.

    Args:
        num_classes: number of classes; `name` and `dtype` as for any Keras
            metric.

    Example:

    ```python
    m = la_keras.metrics.PerClassAccuracy(3)
    m.update_state([0, 0, 1], [[1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0]])
    m.result()  # [0.5, 1.0, nan]
    ```
    """

    def __init__(self, num_classes, name="per_class_accuracy", dtype=None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result(self):
        return self.per_class_accuracy()


@register_keras_serializable(package="la_keras")
class BalancedAccuracy(_PerClassCounts):
    """Balanced accuracy: the mean of per-class recalls.

    Classes absent from the evaluated data are left out of the mean, not
    counted as 0. On a balanced test set with uniform weights this is the
    complement of the paper's balanced error.

    Formula:

    ```python
    balanced_accuracy = mean over present classes y of
        correct[y] / total[y]
    ```

    Args:
        num_classes: number of classes.
        name: metric name.
        dtype: metric dtype.

    Example:

    ```python
    m = la_keras.metrics.BalancedAccuracy(num_classes=3)
    m.update_state([0, 0, 1], [[1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0]])
    m.result()  # (0.5 + 1.0) / 2 = 0.75
    ```

    References:
        - [Brodersen et al., 2010](https://doi.org/10.1109/ICPR.2010.764)
        - [Menon et al., 2021](https://arxiv.org/abs/2007.07314)
    """

    def __init__(self, num_classes, name="balanced_accuracy", dtype=None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result(self):
        return _nanmean(self.per_class_accuracy())


@register_keras_serializable(package="la_keras")
class ShotAccuracy(_PerClassCounts):
    """Many-, medium- and few-shot accuracy (Liu et al. 2019).

    Classes are grouped by their *training* counts: many-shot above
    `many_threshold` images, few-shot below `few_threshold`, medium-shot in
    between. Each group's accuracy is the mean per-class recall over its
    classes present in the evaluated data (NaN for a group with none), so
    on a balanced test set it equals the group's top-1 accuracy.

    `result()` is a dict with keys `"many"`, `"medium"` and `"few"`.

    Args:
        train_class_counts: per-class training-set counts.
        many_threshold: classes with more images than this are many-shot.
        few_threshold: classes with fewer images than this are few-shot.
        name: metric name.
        dtype: metric dtype.

    Example:

    ```python
    m = la_keras.metrics.ShotAccuracy([5000, 50, 5])
    m.update_state([0, 1, 2], [[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]])
    m.result()  # {"many": 1.0, "medium": 1.0, "few": 0.0}
    ```

    References:
        - [Liu et al., 2019](https://arxiv.org/abs/1904.05160)
    """

    def __init__(
        self,
        train_class_counts,
        many_threshold=100,
        few_threshold=20,
        name="shot_accuracy",
        dtype=None,
    ):
        counts = [float(c) for c in np.asarray(train_class_counts).reshape(-1)]
        self.groups = shot_groups(counts, many_threshold, few_threshold)
        super().__init__(len(counts), name=name, dtype=dtype)
        self.train_class_counts = counts
        self.many_threshold = many_threshold
        self.few_threshold = few_threshold

    def result(self):
        per_class = self.per_class_accuracy()
        nan = ops.full_like(per_class, float("nan"))
        out = {}
        for index, key in enumerate((MANY, MEDIUM, FEW)):
            member = ops.convert_to_tensor(self.groups == index)
            out[key] = _nanmean(ops.where(member, per_class, nan))
        return out

    def get_config(self):
        return {
            "train_class_counts": self.train_class_counts,
            "many_threshold": self.many_threshold,
            "few_threshold": self.few_threshold,
            "name": self.name,
            "dtype": self.dtype,
        }
