"""`RunError`: a run refused in one line, saying what is wrong and what to do."""

from __future__ import annotations

from absl import app


class RunError(ValueError, app.UsageError):
    """A configuration, data or model_dir a run cannot go on with.

    A `ValueError` for library callers, and an `absl.RunError` for the
    entry points of `launch/`, which print it as one line and exit 1.
    """

    def __init__(self, message: str, exitcode: int = 1):
        ValueError.__init__(self, message)
        self.exitcode = exitcode
