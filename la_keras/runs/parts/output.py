"""`OutputOptions`: the model_dir and what the run writes there, and when."""

from __future__ import annotations

import dataclasses

from la_keras.runs.parts.option import at_least
from la_keras.runs.parts.option import option


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """The model_dir and what the run writes there, and when."""

    model_dir: str = option(
        "logit_adjustment/model",
        (
            "Checkpoints, flags.txt / flags.json, metrics.json, the per-class "
            "plot and (by default) the SavedModel. Rerunning with the same "
            "model_dir resumes from its latest checkpoint."
        ),
    )
    tb_log_dir: str | None = option(
        None,
        "TensorBoard summaries, train/ and test/ (default: <model_dir>/log).",
    )
    export_dir: str | None = option(
        None,
        "SavedModel directory (default: <model_dir>/export).",
    )
    checkpoint_every_steps: int = option(
        0,
        "Also checkpoint every N steps (0: once per epoch only).",
    )
    checkpoint_every_seconds: float = option(
        60.0,
        (
            "Checkpoint at an epoch's end only when this many seconds passed "
            "since the last checkpoint (0: every epoch). Epochs longer than "
            "that still checkpoint every epoch; short ones (half a second on an "
            "accelerator) do not pay a save each. A run always checkpoints at "
            "its end, before an evaluation and on SIGTERM (exit 75); a run "
            "killed harder loses at most this much training."
        ),
        check=at_least(0, finite=True, what="a finite number of seconds"),
    )
    keep_checkpoints: int = option(3, "Checkpoints kept.")
    lock_timeout: float = option(
        300.0,
        (
            "Seconds after which the model_dir lease of a run that stopped "
            "refreshing it (every lock_timeout/4 s) is stale and may be taken "
            "over from any host: how long a preempted job restarted elsewhere "
            "waits. Too short, and a live run whose refreshes are late loses "
            "it."
        ),
        check=at_least(
            0, finite=True, strict=True, what="a finite number of seconds"
        ),
    )
    eval_every_epochs: int = option(
        0,
        (
            "Also evaluate on the test split every N epochs (0: only at the "
            "end, as the run's report does; an evaluation costs about an "
            "epoch's time, and a checkpoint, which short epochs would pay every "
            "epoch)."
        ),
    )
