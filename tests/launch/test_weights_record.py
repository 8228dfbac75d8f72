"""Tests for la_keras.runs.weights_record: flags.json names the weights file a run
started from (absolute path and SHA-256), and keeps it on resume."""

import hashlib
import json
import os
from unittest import mock

from la_keras.runs import weights_record
from la_keras.runs.resolved import ResolvedConfig
from tests.launch import helpers
from tests.test_case import TestCase

# The real ImageNet weights (2 MB), beside the checkout where present.
SHARED_WEIGHTS = os.path.join(
    os.path.dirname(helpers.REPO),
    "shared",
    "pretrained",
    "mobilenet_2_5_224_tf_no_top.h5",
)


def _config(model_dir, pretrained):
    return helpers.resolved_config(
        epochs=1,
        model="mobilenet",
        backbone=True,
        pretrained=pretrained,
        model_dir=model_dir,
    )


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class WeightsRecordTest(TestCase):
    def setUp(self):
        super().setUp()
        self.root = self.get_temp_dir()
        self.model_dir = os.path.join(self.root, "run")
        os.makedirs(self.model_dir, exist_ok=True)
        self.weights = os.path.join(self.root, "w.h5")
        with open(self.weights, "wb") as f:
            f.write(os.urandom(1000))

    def _start(self, pretrained):
        """A new run's flags.json; returns what it records."""
        config = weights_record.as_started(
            _config(self.model_dir, pretrained), resumed=False
        )
        config.write(self.model_dir)
        with open(os.path.join(self.model_dir, "flags.json")) as f:
            flat = json.load(f)
        return flat["pretrained"], flat["pretrained_sha256"]

    def test_hash_is_streamed_in_chunks(self):
        with mock.patch.object(weights_record, "CHUNK_BYTES", 7):
            self.assertEqual(
                weights_record.sha256(self.weights), _sha256(self.weights)
            )
        if os.path.exists(SHARED_WEIGHTS):
            self.assertEqual(
                weights_record.sha256(SHARED_WEIGHTS), _sha256(SHARED_WEIGHTS)
            )

    def test_new_run_records_the_absolute_path_and_hash(self):
        cwd = os.getcwd()
        os.chdir(self.root)
        try:
            recorded = self._start("w.h5")
        finally:
            os.chdir(cwd)
        self.assertEqual(recorded, (self.weights, _sha256(self.weights)))
        # Named weights and no weights are recorded as given, unhashed.
        for value in ("imagenet", "preset", None):
            self.assertEqual(self._start(value), (value, None))

    def test_resume_keeps_the_record_when_the_file_went(self):
        self._start(self.weights)
        started = ResolvedConfig.read(self.model_dir)
        os.remove(self.weights)
        config = _config(self.model_dir, "elsewhere/w.h5")
        # Result-neutral: neither the path nor the (unhashed) file refuses.
        config.check_resume(has_checkpoint=True)
        resumed = weights_record.as_started(config, resumed=True)
        self.assertEqual(resumed.pretrained, self.weights)
        self.assertEqual(resumed.pretrained_sha256, started.pretrained_sha256)

    def test_resume_warns_when_the_file_changed(self):
        recorded = self._start(self.weights)
        config = _config(self.model_dir, self.weights)
        with self.assertNoLogs(level="WARNING"):
            weights_record.as_started(config, resumed=True)
        with open(self.weights, "wb") as f:
            f.write(b"other weights")
        with self.assertLogs(level="WARNING") as logs:
            resumed = weights_record.as_started(config, resumed=True)
        self.assertIn("now holds other weights", logs.output[0])
        self.assertIn(recorded[1], logs.output[0])
        self.assertEqual(
            (resumed.pretrained, resumed.pretrained_sha256), recorded
        )
        config.check_resume(has_checkpoint=True)

    def test_resume_of_a_run_recorded_without_a_hash(self):
        # flags.json written before the hash was recorded: kept as it is.
        _config(self.model_dir, "w.h5").write(self.model_dir)
        resumed = weights_record.as_started(
            _config(self.model_dir, self.weights), resumed=True
        )
        self.assertEqual(resumed.pretrained, "w.h5")
        self.assertIsNone(resumed.pretrained_sha256)
