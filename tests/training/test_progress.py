"""Tests for `Progress`: the bar on a terminal, plain lines elsewhere."""

import io
from unittest import mock

from la_keras.training import Progress
from la_keras.training import progress as progress_lib
from tests.test_case import TestCase


class _Clock:
    """A `time.time` that the test advances."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class PlainLinesTest(TestCase):
    def _train(self, stream, total_steps, seconds_per_step, line_interval):
        clock = _Clock()
        with mock.patch.object(progress_lib.time, "time", clock):
            progress = Progress(
                total_steps, 8, stream=stream, line_interval=line_interval
            )
            progress.start(0)
            for step in range(1, total_steps + 1):
                clock.now += seconds_per_step
                progress.update(step, 2.0 / step)
            progress.finish(total_steps)
        return stream.getvalue()

    def test_no_control_characters_and_few_lines(self):
        # 1,000 steps of 0.5 s: 500 s, a line every 30 s at most.
        out = self._train(io.StringIO(), 1000, 0.5, 30.0)
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\r", out)
        self.assertNotIn("\b", out)
        lines = out.splitlines()
        self.assertLessEqual(len(lines), 500 / 30 + 2)
        self.assertGreaterEqual(len(lines), 500 / 30)
        self.assertEqual(lines[0], "step 0/1000")
        self.assertEqual(
            lines[-1], "step 1000/1000 - loss: 0.0020 - images/s: 16.0"
        )
        # One in the middle: 8 images per 0.5 s step, and the time left.
        self.assertEqual(
            lines[1],
            "step 60/1000 - loss: 0.0333 - images/s: 16.0 - ETA: 0:07:50",
        )

    def test_a_fast_run_writes_two_lines(self):
        out = self._train(io.StringIO(), 50, 0.01, 30.0)
        self.assertEqual(out.splitlines()[0], "step 0/50")
        self.assertEqual(len(out.splitlines()), 2)
        self.assertTrue(out.splitlines()[1].startswith("step 50/50 - loss:"))

    def test_a_terminal_gets_the_keras_bar(self):
        class Terminal(io.StringIO):
            def isatty(self):
                return True

        terminal = Terminal()
        with mock.patch("sys.stdout", terminal):
            progress = Progress(10, 8, interval=0.0)
            progress.start(0)
            progress.update(5, 1.0)
            progress.finish(10)
        self.assertIn("\r", terminal.getvalue())
        self.assertIn("10/10", terminal.getvalue())

    def test_not_verbose_writes_nothing(self):
        out = io.StringIO()
        progress = Progress(10, 8, verbose=False, stream=out)
        progress.start(0)
        progress.update(5, 1.0)
        progress.finish(10)
        self.assertEqual(out.getvalue(), "")
