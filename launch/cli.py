"""The absl edge every entry point shares: one-line errors and a quiet start."""

from __future__ import annotations

import errno
import sys
import traceback

from absl import app
from absl import flags
from absl import logging

from la_keras.training import TrainingDivergedError
from la_keras.training import TrainingPreempted
from la_keras.training.preemption import PREEMPTED_EXIT_CODE


def _describe_os_error(e: OSError) -> str:
    where = f" {e.filename}" if e.filename else ""
    reason = e.strerror or errno.errorcode.get(e.errno or 0, str(e))
    return f"cannot write or read{where}: {reason}"


def run_main(name: str, fn) -> None:
    """Runs `fn()`; any failure becomes one line and a non-zero exit.

    Exit status: 0 done; 1 a usage, data or file error (one line, no
    traceback unless --verbosity=1 or higher); 75 (`PREEMPTED_EXIT_CODE`)
    stopped by SIGTERM after checkpointing: rerun the same command.
    """
    try:
        fn()
    except TrainingPreempted as e:
        print(f"{name}: {e}", file=sys.stderr)
        sys.exit(PREEMPTED_EXIT_CODE)
    except (app.UsageError, TrainingDivergedError, ValueError) as e:
        _fail(name, str(e))
    except OSError as e:
        _fail(name, _describe_os_error(e))
    except Exception as e:
        if not _is_tensorflow_op_error(e):
            raise
        _fail(name, e.message.splitlines()[0] if e.message else str(e))


def _is_tensorflow_op_error(e: Exception) -> bool:
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(e, tf.errors.OpError)


def _fail(name: str, message: str) -> None:
    if logging.get_verbosity() >= logging.DEBUG:
        traceback.print_exc()
    sys.exit(f"{name}: error: {message}")


def app_run(main) -> None:
    """`absl.app.run(main)` with warnings-only logging by default.

    The run prints its progress and report; `--verbosity=0` brings back
    the INFO logs of la_keras, TensorFlow and absl, and the libraries'
    deprecation notices (hidden by default: `launch.quiet`).
    """

    def quiet_main(argv):
        if not flags.FLAGS["verbosity"].present:
            from launch import quiet

            logging.set_verbosity(logging.WARNING)
            quiet.hide_library_deprecations()
            if sys.modules.get("tensorflow") is not None:
                sys.modules["tensorflow"].get_logger().setLevel("ERROR")
        return main(argv)

    app.run(quiet_main)


def call(fn, flags_obj, keywords):
    """`fn(RunConfig.from_flags(flags_obj), keyword=--keyword, ...)`: a
    function of `la_keras.runs` called with the run's flags and its own."""
    from la_keras.runs import RunConfig

    values = {name: getattr(flags_obj, name) for name in keywords}
    return fn(RunConfig.from_flags(flags_obj), **values)


def require_model_dir(flags_obj, *, unless: str | None = None) -> None:
    """Refuses the default --model_dir (unless flag `unless` is set)."""
    if unless and getattr(flags_obj, unless):
        return
    if flags_obj["model_dir"].using_default_value:
        alternative = f" or --{unless}" if unless else ""
        raise app.UsageError(
            f"Pass --model_dir of a launch.train run{alternative}."
        )
