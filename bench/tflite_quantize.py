"""How far `--quantize=dynamic` and `int8` move a run's TFLite predictions.

    python bench/tflite_quantize.py --model_dir=runs/mine

Exports the run with `launch.export --format=tflite` three times (none,
dynamic, int8; into `--out_dir`, default a temporary folder) and prints, for
each on the run's test split: the file size, the balanced and plain
accuracy, the share of predictions equal to the float model's and the
largest |logit - float logit|. Images of a folder run with `--image_size`
come resized by the run's own pipeline.
"""

import os
import sys
import tempfile

import numpy as np
from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from la_keras.runs.resolved import ResolvedConfig  # noqa: E402
from la_keras.tflite_classifier import TFLiteClassifier  # noqa: E402
from launch import export  # noqa: E402

FLAGS = flags.FLAGS


def _balanced(labels, predictions):
    classes = np.unique(labels)
    return np.mean([np.mean(predictions[labels == c] == c) for c in classes])


def main(_):
    out_dir = FLAGS.out_dir or tempfile.mkdtemp(prefix="tflite_bench_")
    config = ResolvedConfig.read(FLAGS.model_dir)
    images, labels = [], []
    for batch_images, batch_labels in config.data.load("test")[0].batch(256):
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    reference = None
    print(f"{'quantize':<10}{'MB':>8}{'acc':>8}{'bal acc':>9}"
          f"{'= float':>9}{'max |dlogit|':>14}")  # fmt: skip
    for quantize in ("none", "dynamic", "int8"):
        FLAGS.format = "tflite"
        FLAGS.quantize = quantize
        FLAGS.export_dir = os.path.join(out_dir, quantize)
        path = export.run(FLAGS)
        classifier = TFLiteClassifier(path)
        logits = np.concatenate([
            classifier(images[i : i + 64])[0]
            for i in range(0, len(images), 64)
        ])  # fmt: skip
        predictions = logits.argmax(-1)
        if reference is None:
            reference = logits
        print(
            f"{quantize:<10}{os.path.getsize(path) / 2**20:>8.2f}"
            f"{np.mean(predictions == labels):>8.4f}"
            f"{_balanced(labels, predictions):>9.4f}"
            f"{np.mean(predictions == reference.argmax(-1)):>9.4f}"
            f"{np.max(np.abs(logits - reference)):>14.4g}"
        )


if __name__ == "__main__":
    export.define_flags()
    flags.DEFINE_string("out_dir", None, "Where the three exports go.")
    app.run(main)
