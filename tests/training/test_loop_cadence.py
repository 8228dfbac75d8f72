"""Tests for `TrainingLoop`'s cadences: saves by the clock, losses read one
chunk late, scalars written in batches, the next epoch's data made ahead."""

import math
import os
import threading

import keras
import numpy as np
import tensorflow as tf
from absl.testing import flagsaver

from la_keras.runs import common
from la_keras.runs.resolved import ResolvedConfig
from la_keras.training import Summaries
from la_keras.training import TrainingDivergedError
from la_keras.training import TrainingLoop
from la_keras.training import TrainingPreempted
from la_keras.training.cadence import Interval
from tests.launch import helpers
from tests.test_case import TestCase
from tests.training.test_loop import _Model


class _Clock:
    """A clock that the fake runner moves forward by `seconds_per_step`."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Loss:
    """A chunk's loss sum that records when the loop reads it."""

    def __init__(self, value, events, chunk):
        self.value, self.events, self.chunk = value, events, chunk

    def __float__(self):
        self.events.append(("read", self.chunk))
        return float(self.value)

    def __add__(self, other):
        # Lazy, as a backend tensor's sum: reading it is a read of "sum".
        other = other.value if isinstance(other, _Loss) else other
        return _Loss(self.value + other, self.events, "sum")

    __radd__ = __add__


class _Runner:
    """A step runner with `dispatch_steps`: batches are `(epoch, index)`.

    Every step takes `seconds_per_step` on `clock`; the chunk losses are
    1.0 per step, NaN from chunk `nan_chunk` on (and the weights too).
    """

    def __init__(self, clock, seconds_per_step=0.25, nan_chunk=None, step=0):
        self.clock = clock
        self.seconds_per_step = seconds_per_step
        self.nan_chunk = nan_chunk
        self.step = step
        self.model = _Model()
        self.train_accuracy = keras.metrics.Mean()
        self.learning_rate = 0.1
        self.batches = []
        self.events = []
        self.chunks = 0

    def dispatch_steps(self, iterator, num_steps):
        for _ in range(num_steps):
            self.batches.append(next(iterator))
            self.step += 1
            self.clock.now += self.seconds_per_step
        self.train_accuracy.update_state(0.5)
        chunk, self.chunks = self.chunks, self.chunks + 1
        self.events.append(("dispatch", chunk))
        value = float(num_steps)
        if self.nan_chunk is not None and chunk >= self.nan_chunk:
            value = math.nan
            self.model.trainable_variables[0].assign(np.full((3, 2), np.nan))
        return _Loss(value, self.events, chunk)

    def train_steps(self, iterator, num_steps):
        return float(self.dispatch_steps(iterator, num_steps))


class _Data:
    """`train_data(epoch, skip)` over `(epoch, index)` batches; records calls."""

    def __init__(self, events=None):
        self.calls = []
        self.events = events

    def __call__(self, epoch, skip):
        main = threading.current_thread() is threading.main_thread()
        self.calls.append((epoch, skip, main))
        if self.events is not None:
            self.events.append(("data", epoch))
        return iter([(epoch, i) for i in range(skip, 10**4)])


def _loop(runner, epochs=6, steps=4, save_log=None, **kwargs):
    save_log = [] if save_log is None else save_log

    def save(step, epoch):
        finite = bool(np.all(np.isfinite(runner.model.trainable_variables[0])))
        save_log.append((step, epoch, finite))
        return f"ckpt-{step}.npz"

    kwargs.setdefault("clock", runner.clock)
    loop = TrainingLoop(
        runner, kwargs.pop("data", _Data()), steps, epochs, save, **kwargs
    )
    return loop, save_log


class IntervalTest(TestCase):
    def test_due_after_the_interval(self):
        clock = _Clock()
        interval = Interval(2.0, clock)
        self.assertFalse(interval.due())
        clock.now = 1.99
        self.assertFalse(interval.due())
        clock.now = 2.0
        self.assertTrue(interval.due())
        interval.reset()
        self.assertFalse(interval.due())
        self.assertTrue(Interval(0.0, clock).due())

    def test_refuses_a_negative_interval(self):
        for bad in (-1.0, math.nan, math.inf):
            with self.assertRaisesRegex(ValueError, "Invalid value.*seconds"):
                Interval(bad)


class CheckpointCadenceTest(TestCase):
    def test_saves_when_the_interval_passed_and_at_the_end(self):
        # 1 s per epoch: t = 1, 2, 3 (due: save), 4, 5, 6 (the end: save).
        runner = _Runner(_Clock())
        loop, saved = _loop(runner, checkpoint_every_seconds=2.5)
        self.assertEqual(loop.run(), 24)
        self.assertEqual(saved, [(12, 3, True), (24, 6, True)])
        self.assertEqual(loop.last_checkpoint, "ckpt-24.npz")

    def test_zero_saves_every_epoch(self):
        runner = _Runner(_Clock())
        loop, saved = _loop(runner, epochs=3, checkpoint_every_seconds=0)
        loop.run()
        self.assertEqual([s[0] for s in saved], [4, 8, 12])

    def test_long_epochs_save_every_epoch(self):
        runner = _Runner(_Clock(), seconds_per_step=100.0)
        loop, saved = _loop(runner, epochs=3, checkpoint_every_seconds=60)
        loop.run()
        self.assertEqual([s[0] for s in saved], [4, 8, 12])

    def test_saves_before_every_evaluation(self):
        runner = _Runner(_Clock())
        saved = []
        evaluated = []

        def evaluate(epoch, step):
            evaluated.append((step, saved[-1][0]))

        loop, _ = _loop(
            runner,
            save_log=saved,
            checkpoint_every_seconds=1000,
            on_epoch_end=evaluate,
            eval_every_epochs=2,
        )
        loop.run()
        # Epochs 2 and 4 evaluate (6 is the last: the caller evaluates).
        self.assertEqual(evaluated, [(8, 8), (16, 16)])
        self.assertEqual([s[0] for s in saved], [8, 16, 24])

    def test_no_evaluation_before_the_end_by_default(self):
        runner = _Runner(_Clock())
        evaluated = []
        loop, saved = _loop(
            runner,
            checkpoint_every_seconds=1000,
            on_epoch_end=lambda epoch, step: evaluated.append(step),
            eval_every_epochs=0,
        )
        loop.run()
        self.assertEqual(evaluated, [])
        self.assertEqual([s[0] for s in saved], [24])

    def test_stop_request_saves_the_current_step(self):
        runner = _Runner(_Clock())
        stops = iter([False, True])
        loop, saved = _loop(
            runner,
            checkpoint_every_seconds=1000,
            stop_requested=lambda: next(stops),
        )
        with self.assertRaises(TrainingPreempted) as raised:
            loop.run()
        self.assertEqual(raised.exception.step, 8)
        self.assertEqual(raised.exception.checkpoint, "ckpt-8.npz")
        self.assertEqual(saved, [(8, 2, True)])

    def test_workers_agree_on_a_time_based_save(self):
        # Another worker's clock says due at every epoch's end: all save.
        runner = _Runner(_Clock())
        asked = []
        runner.any_worker = lambda flag: asked.append(flag) or True
        loop, saved = _loop(runner, epochs=3, checkpoint_every_seconds=1000)
        loop.run()
        self.assertEqual([s[0] for s in saved], [4, 8, 12])
        self.assertEqual(asked, [False, False])  # not asked at the end

    def test_step_cadence_still_saves(self):
        runner = _Runner(_Clock())
        loop, saved = _loop(
            runner,
            epochs=3,
            checkpoint_every_steps=6,
            checkpoint_every_seconds=1000,
        )
        loop.run()
        self.assertEqual([s[0] for s in saved], [6, 12])


class LossReadingTest(TestCase):
    def test_loss_is_read_one_chunk_late(self):
        runner = _Runner(_Clock())
        loop, _ = _loop(runner, epochs=3, checkpoint_every_seconds=1000)
        loop.run()
        # Chunk k's loss is read after chunk k + 1 is dispatched; the last
        # one before the final save.
        reads = [e for e in runner.events if e[0] == "read" and e[1] != "sum"]
        self.assertEqual(reads, [("read", 0), ("read", 1), ("read", 2)])
        order = runner.events
        self.assertLess(order.index(("dispatch", 1)), order.index(("read", 0)))
        self.assertLess(order.index(("dispatch", 2)), order.index(("read", 1)))
        self.assertIn(("read", 2), order)

    def test_nan_loss_is_read_before_a_save(self):
        runner = _Runner(_Clock(), nan_chunk=2)
        loop, saved = _loop(runner, checkpoint_every_seconds=0)
        with self.assertRaisesRegex(
            TrainingDivergedError,
            r"loss is nan between steps 8 and 12 \(epoch 2\).*"
            r"\(ckpt-8\.npz\)",
        ):
            loop.run()
        # Epoch 3's end reads chunk 2's loss before saving: no save of it.
        self.assertEqual(saved, [(4, 1, True), (8, 2, True)])

    def test_nan_without_a_save_stops_at_the_next_chunk(self):
        runner = _Runner(_Clock(), nan_chunk=1)
        loop, saved = _loop(runner, checkpoint_every_seconds=1000)
        with self.assertRaisesRegex(TrainingDivergedError, r"\(none\)"):
            loop.run()
        self.assertEqual(saved, [])
        self.assertEqual(runner.chunks, 3)  # chunk 1's read after chunk 2


class DataOrderTest(TestCase):
    def test_same_batches_with_the_next_epoch_made_ahead(self):
        runner = _Runner(_Clock(), step=6)  # resumed mid-epoch 1
        data = _Data(runner.events)
        loop, _ = _loop(runner, epochs=4, data=data)
        loop.run()
        expected = [(1, 2), (1, 3)] + [(e, i) for e in (2, 3) for i in range(4)]
        self.assertEqual(runner.batches, expected)
        # Epoch 1 (the first this loop runs) and 2 are made in the loop's
        # thread; epoch 3 in another one, as epoch 2 starts.
        self.assertEqual(
            data.calls, [(1, 2, True), (2, 0, True), (3, 0, False)]
        )
        self.assertIsNone(loop._maker)  # its thread ended with the run


class SummariesTest(TestCase):
    def _scalars(self, log_dir):
        values = {}
        for path in sorted(helpers.event_files(os.path.join(log_dir, "train"))):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    values.setdefault(value.tag, []).append(event.step)
        return values

    def _run(self, log_every_seconds):
        """A loop of 1 s epochs writing to summaries; the number of times
        the train writer flushed, and the scalars written."""
        log_dir = self.get_temp_dir()
        summaries = Summaries(log_dir)
        flushes = []
        flush = summaries.train.flush
        summaries.train.flush = lambda: flushes.append(1) or flush()
        loop, _ = _loop(
            _Runner(_Clock()),
            checkpoint_every_seconds=1000,
            log_every_seconds=log_every_seconds,
            summaries=summaries,
        )
        loop.run()
        return flushes, self._scalars(log_dir)

    def test_every_scalar_is_written_in_one_batch(self):
        flushes, scalars = self._run(log_every_seconds=1000)
        steps = [4, 8, 12, 16, 20, 24]
        self.assertEqual(scalars["batch loss"], steps)
        self.assertEqual(scalars["accuracy"], steps)
        self.assertEqual(scalars["learning rate"], steps)
        self.assertEqual(len(flushes), 1)  # at the final save

    def test_written_every_interval(self):
        flushes, scalars = self._run(log_every_seconds=2.0)
        # t = 2 and 4 (interval), 6 (the final save).
        self.assertEqual(len(flushes), 3)
        self.assertEqual(len(scalars["accuracy"]), 6)


class FlagTest(TestCase):
    def test_flag_reaches_the_loop(self):
        helpers.define_all_flags()
        from absl import flags

        for value, expected in ((None, 60.0), (0.0, 0.0), (300.0, 300.0)):
            overrides = (
                {} if value is None else {"checkpoint_every_seconds": value}
            )
            with flagsaver.flagsaver(**helpers.SMOKE_FLAGS, **overrides):
                config = ResolvedConfig.from_flags(flags.FLAGS)
            self.assertEqual(config.checkpoint_every_seconds, expected)
            runner = _Runner(_Clock())
            loop = common.training_loop(
                config, runner, _Data(), 4, lambda s, e: "", verbose=False
            )
            self.assertEqual(loop._checkpoint_due.seconds, expected)
            self.assertEqual(loop._log_due.seconds, common.LOG_EVERY_SECONDS)


class LogLinesTest(TestCase):
    def test_every_epoch_line_is_logged_in_batches(self):
        from absl import logging

        verbosity = logging.get_verbosity()
        logging.set_verbosity(logging.INFO)
        self.addCleanup(logging.set_verbosity, verbosity)
        runner = _Runner(_Clock())  # 1 s an epoch
        loop, _ = _loop(
            runner, checkpoint_every_seconds=1000, log_every_seconds=4.0
        )
        lines = []
        loop.records.epoch = _recorded(loop.records.epoch, lines, "record")
        loop.records.write = _recorded(loop.records.write, lines, "write")
        with self.assertLogs("absl", level="INFO") as logs:
            loop.run()
        epochs = [m for m in logs.output if "epoch " in m]
        self.assertEqual(len(epochs), 6)
        self.assertIn(
            "epoch 6/6 step 24: loss 1.0000  train acc 0.5000", epochs[-1]
        )
        # Written at t = 4 and at the final save: two batches.
        self.assertEqual(
            lines, ["record"] * 4 + ["write"] + ["record"] * 2 + ["write"] * 2
        )


def _recorded(fn, calls, name):
    def wrapper(*args, **kwargs):
        calls.append(name)
        return fn(*args, **kwargs)

    return wrapper
