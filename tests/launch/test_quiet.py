"""The entry points' default output: no library deprecation notices.

(`tests/launch/test_flags.py::QuietOutputTest` checks a whole launch.train
run's output in a pipe: plain progress lines, no control characters.)
"""

import pytest

from tests.launch import helpers
from tests.test_case import TestCase

# An entry point (through `cli.app_run`) that makes TFDS log its own
# deprecation notice as la_keras's label reading does, warns a deprecation
# of its own kind, and logs an ordinary warning.
_APP = """
import warnings
from absl import logging
from launch import cli
from la_keras.runs import common

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

cli.app_run(main)
"""


class LibraryDeprecationsTest(TestCase):
    @pytest.mark.slow
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
