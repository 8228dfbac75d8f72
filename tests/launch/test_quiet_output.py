"""The entry points' default output sent to a file: plain and quiet."""

import os
import re

from tests.launch import helpers
from tests.test_case import TestCase

# An entry point (through `common.app_run`) that makes TFDS log its own
# deprecation notice as la_keras's label reading does, warns a deprecation
# of its own kind, and logs an ordinary warning.
_APP = """
import warnings
from absl import logging
from launch import common

def main(argv):
    import tensorflow_datasets as tfds
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(4, 4, 3)),
        "label": tfds.features.ClassLabel(num_classes=3),
    })
    tfds.decode.PartialDecoding({"label": True}).extract_features(features)
    warnings.warn("`old_api` is deprecated, use `new_api`.", FutureWarning)
    logging.warning("a warning that stays")
    print("done")

common.app_run(main)
"""


class QuietOutputTest(TestCase):
    def test_library_deprecations_are_hidden_by_default(self):
        result = helpers.run_python(["-c", _APP])
        out = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, out[-3000:])
        self.assertNotIn("deprecated", out)
        self.assertIn("a warning that stays", out)
        self.assertIn("done", out)
        # --verbosity shows everything: the notices are really made.
        result = helpers.run_python(["-c", _APP, "--verbosity=0"])
        out = result.stdout + result.stderr
        self.assertIn("`FeatureConnector.dtype` is deprecated", out)
        self.assertIn("`old_api` is deprecated", out)

    def test_train_output_to_a_file(self):
        model_dir = os.path.join(self.get_temp_dir(), "run")
        values = dict(
            helpers.SMOKE_FLAGS,
            epochs=1,
            model_dir=model_dir,
            tb_log_dir=os.path.join(model_dir, "log"),
        )
        args = [f"--{name}={value}" for name, value in values.items()]
        result = helpers.run_module("launch.train", args)
        out = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, out[-3000:])
        for control in ("\x1b", "\r", "\b"):
            self.assertNotIn(control, out)
        self.assertNotIn("deprecated", out)
        progress = re.findall(r"^step (\d+)/(\d+)", result.stdout, re.M)
        # The first and the last line; a short run has no others.
        self.assertEqual(progress[0], ("0", "9"))
        self.assertEqual(progress[-1], ("9", "9"))
        self.assertLessEqual(len(progress), 3)
        self.assertIn("SavedModel:", result.stdout)
