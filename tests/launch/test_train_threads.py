"""No process-wide TensorFlow state is touched off the main thread.

`TrainingLoop` builds the next epoch's input pipeline on its data thread
while the main thread runs the compiled train loop. Setting TensorFlow's
global seed there (or clearing the eager context's caches, which
`tf.random.set_seed` does) frees the per-step container that the running
function still uses: a SIGSEGV at an epoch boundary once Grappler puts
`TemporaryVariable` ops in a large graph. These tests record every call
that changes process-wide TensorFlow state during a run of several epochs,
with the thread that made it.
"""

import os
import threading

import tensorflow as tf
from absl import flags
from absl.testing import flagsaver
from tensorflow.python.eager import context

from launch import train
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS

# What changes the eager context of the whole process: the global seed
# (`tf.random.set_seed`, `keras.utils.set_random_seed`) and its caches.
_CONTEXT_METHODS = ("_set_global_seed", "clear_kernel_cache", "_clear_caches")
# Setters of `tf.config` (devices, threads, determinism, optimizer options).
_CONFIG_MODULES = (
    tf.config,
    tf.config.experimental,
    tf.config.optimizer,
    tf.config.threading,
)
_SETTERS = ("set_", "enable_", "disable_", "reset_", "experimental_connect")


def setUpModule():
    helpers.define_all_flags()


class GlobalStateCalls:
    """Records `(name, thread name)` of each call that changes process-wide
    TensorFlow state while it is active."""

    def __init__(self, test):
        self.calls = []
        for name in _CONTEXT_METHODS:
            self._wrap(test, context.Context, name, f"Context.{name}")
        for module in _CONFIG_MODULES:
            for name in dir(module):
                if name.startswith(_SETTERS):
                    self._wrap(test, module, name, f"{module.__name__}.{name}")

    def _wrap(self, test, owner, name, label):
        original = getattr(owner, name)

        def recorded(*args, **kwargs):
            self.calls.append((label, threading.current_thread().name))
            return original(*args, **kwargs)

        setattr(owner, name, recorded)
        test.addCleanup(setattr, owner, name, original)

    def off_main_thread(self):
        main = threading.main_thread().name
        return [call for call in self.calls if call[1] != main]


class TrainThreadsTest(TestCase):
    def _train(self, **overrides):
        model_dir = os.path.join(self.get_temp_dir(), "run")
        values = dict(
            helpers.SMOKE_FLAGS,
            model_dir=model_dir,
            tb_log_dir=os.path.join(model_dir, "log"),
            epochs=4,
            holdout_fraction=0.0,
        )
        values.update(overrides)
        with flagsaver.flagsaver(**values):
            return train.run(FLAGS)

    def test_no_global_state_off_the_main_thread(self):
        # Epochs 2 and 3 are built on the data thread while 1 and 2 train.
        calls = GlobalStateCalls(self)
        metrics = self._train()
        self.assertEqual(metrics["epoch"], 4)
        self.assertEqual(calls.off_main_thread(), [])
        # The run seeds TensorFlow once, at its start, on the main thread.
        seeds = [c for c in calls.calls if c[0] == "Context._set_global_seed"]
        self.assertLen(seeds, 1)

    def test_no_global_state_off_the_main_thread_class_balanced(self):
        calls = GlobalStateCalls(self)
        self._train(sampler="class_balanced", mode="baseline")
        self.assertEqual(calls.off_main_thread(), [])
