"""launch.train under MirroredStrategy (2 logical CPUs) and MultiWorkerMirrored."""

import json
import os
import re
import socket
import time

import pytest

from la_keras.training.checkpoints import checkpoint_dir
from tests.launch import helpers
from tests.test_case import TestCase


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _epoch_losses(log):
    return re.findall(r"epoch \d+/\d+ step (\d+): loss ([0-9.]+)", log)


class MirroredTrainTest(TestCase):
    def test_two_logical_cpus(self):
        model_dir = os.path.join(self.get_temp_dir(), "mirrored")
        result = helpers.run_module(
            "launch.train",
            helpers.smoke_args(model_dir, epochs=1)
            + ["--strategy=mirrored", "--num_logical_cpus=2"],
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("2 replicas", result.stderr)
        with open(os.path.join(model_dir, "metrics.json")) as f:
            self.assertEqual(json.load(f)["step"], 9)


# Slow (a minute): two worker processes. The default suite trains with
# MirroredStrategy end to end (MirroredTrainTest) and checks the
# multi-worker chief and the other workers' folders (tests/test_distribute.py).
@pytest.mark.slow
class MultiWorkerTrainTest(TestCase):
    def test_two_workers_on_localhost(self):
        root = self.get_temp_dir()
        model_dir = os.path.join(root, "mwms")
        ports = _free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        procs, logs = [], []
        try:
            for index in range(2):
                tf_config = {
                    "cluster": cluster,
                    "task": {"type": "worker", "index": index},
                }
                logs.append(os.path.join(root, f"worker{index}.log"))
                procs.append(
                    helpers.popen_module(
                        "launch.train",
                        helpers.smoke_args(model_dir, epochs=2)
                        # A checkpoint per epoch, whatever the epochs last.
                        + [
                            "--strategy=multi_worker_mirrored",
                            "--checkpoint_every_seconds=0",
                        ],
                        logs[-1],
                        extra_env={"TF_CONFIG": json.dumps(tf_config)},
                    )
                )
            deadline = time.time() + 400
            for proc in procs:
                proc.wait(timeout=max(deadline - time.time(), 1))
        finally:
            helpers.kill_all(procs)
        outputs = []
        for proc, log in zip(procs, logs, strict=True):
            with open(log) as f:
                outputs.append(f.read())
            self.assertEqual(proc.returncode, 0, outputs[-1][-3000:])
        # Both workers trained the same steps with the same global losses.
        chief, worker = (_epoch_losses(out) for out in outputs)
        self.assertLen(chief, 2)
        self.assertEqual(chief, worker)
        self.assertIn("2 replicas", outputs[0])
        # Only the chief wrote into model_dir.
        steps = sorted(
            name
            for name in os.listdir(checkpoint_dir(model_dir))
            if name.endswith(".index")
        )
        self.assertEqual(steps, ["ckpt-18.index", "ckpt-9.index"])
        with open(os.path.join(model_dir, "metrics.json")) as f:
            self.assertEqual(json.load(f)["step"], 18)
        self.assertTrue(os.path.isdir(os.path.join(model_dir, "export")))
