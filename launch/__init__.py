"""absl entry points: `python -m launch.train | evaluate | export | quickstart`.

The entry points are quiet by default: TensorFlow's C++ notices (oneDNN,
cuInit, CPU features) are printed during `import tensorflow`, before absl
logging starts and whatever TF_CPP_MIN_LOG_LEVEL says, so this package
imports TensorFlow here with file descriptor 2 pointed at a temporary file,
restores it, and shows what was captured only if the import fails.
`--verbosity=0` (or higher, or `-v`) on the command line keeps every line.
Where TensorFlow is not installed (Keras's JAX backend) nothing is imported.
"""

import importlib.util
import os
import sys
import tempfile


def _verbose_requested(argv) -> bool:
    for arg in argv[1:]:
        if arg in ("-v", "--v") or arg.startswith(("--verbosity=", "--v=")):
            value = arg.split("=", 1)[1] if "=" in arg else "1"
            try:
                return int(value) >= 0
            except ValueError:
                return True
    return False


def _quiet_import_tensorflow() -> None:
    if "tensorflow" in sys.modules or _verbose_requested(sys.argv):
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    # 3: not even the cuInit error of a machine without a GPU.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        saved = os.dup(2)
    except OSError:
        return
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_quiet_import_tensorflow()
