"""Preemption: SIGTERM becomes a request to checkpoint and stop.

A preempted VM, a cluster scheduler or `kill` sends SIGTERM and gives the
process a grace period. `StopSignal` catches it and sets a flag that
`TrainingLoop` reads after every chunk of steps: the loop saves a
checkpoint of the current step and raises `TrainingPreempted`, and
`launch.train` exits with `PREEMPTED_EXIT_CODE`. Rerunning the same command
resumes from that step. A second signal while the first is being handled
falls back to the default action (immediate exit).

Why not `tf.distribute.experimental.PreemptionCheckpointHandler`: it owns
the save (its own CheckpointManager and step counting, wrapping each step
in `handler.run`), while la_keras's loop saves by chunk with `CheckpointStore`,
which skips damaged checkpoints on resume and rotates only after a
verified save; it is also built for MultiWorkerMirrored/TPU clusters and
does nothing on a single machine. In a multi-worker run the flag is
all-reduced between workers (`Trainer.any_worker`) so that every worker
stops at the same step.
"""

from __future__ import annotations

import signal
import threading

# Exit status of a run that stopped on a preemption signal after saving a
# checkpoint: EX_TEMPFAIL from sysexits.h, "try again later".
PREEMPTED_EXIT_CODE = 75


class StopSignal:
    """Catches `signals` (default SIGTERM) while in a `with` block.

    Example:

    ```python
    with StopSignal() as stop:
        loop = TrainingLoop(..., stop_requested=stop.requested)
        loop.run()
    ```
    """

    def __init__(self, signals=(signal.SIGTERM,)):
        self.signals = tuple(signals)
        self._requested = False
        self._previous = {}

    def requested(self) -> bool:
        return self._requested

    def _handle(self, signum, frame):
        del frame
        self._requested = True
        # A second signal takes the default action.
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
