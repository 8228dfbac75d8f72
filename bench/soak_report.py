"""The report of `soak.py`: one row per child process, then its warnings.

Each child's output (stdout and stderr together) is kept in a log file;
`warnings` picks every line logged at WARNING or above (absl and TensorFlow
`W`/`E`/`F` lines, Python's `logging` and `warnings`, exceptions, fatal
signals) from all of them and counts each message once, its timestamps,
thread ids and addresses taken out.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import signal

# absl (Python and C++) and TensorFlow's C++ logs:
# "W1207 09:37:04.123456  140234 file.py:12] message".
_ABSL = re.compile(r"^([WEF])\d{4} [\d:.]+\s+\d+\s+(.*)$")
# TensorFlow's older C++ format: "2026-12-07 09:37:04.1: W tf/x.cc:1] m".
_TF_OLD = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+: ([WEF]) (.*)$")
# Python's warnings module: "path.py:12: UserWarning: message".
_PY_WARNING = re.compile(r"^(\S+:\d+): (\w*Warning): (.*)$")
# Python's logging default format and other prefixed lines.
_PREFIXED = re.compile(r"^(WARNING|ERROR|CRITICAL|FATAL)\b[:\s]+(.*)$")
# The last line of a traceback, and the fault handler's lines.
_EXCEPTION = re.compile(r"^(\w+(?:\.\w+)*(?:Error|Exception|Exit)): (.*)$")
# absl's one-line usage errors: "launch.train: error: message".
_USAGE = re.compile(r"^[\w.]+: error: (.*)$")
_FATAL = re.compile(r"^(Fatal Python error|Segmentation fault|Aborted)(.*)$")
_NOISE = (
    (re.compile(r"0x[0-9a-fA-F]+"), "0x?"),
    (re.compile(r"/tmp/[^\s'\"]+"), "/tmp/..."),
)
_LEVELS = {"W": "WARNING", "E": "ERROR", "F": "FATAL"}


@dataclasses.dataclass
class Row:
    """One child process: what ran and what it gave."""

    name: str
    backend: str = ""
    mode: str = ""
    finetune: str = ""
    epochs: str = ""
    exit_code: int | None = None
    expected_exit: int = 0
    seconds: float = 0.0
    peak_rss_mib: float | None = None
    images_per_second: float | None = None
    balanced_accuracy: float | None = None
    note: str = ""
    log: str | None = None
    model_dir: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.exit_code == self.expected_exit
            and not self.note.startswith("FAIL")
        )


def exit_text(code: int | None) -> str:
    """`0` -> "0", `-11` (a signal) -> "139 SIGSEGV", None (not run) -> "-"."""
    if code is None:
        return "-"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"{128 - code} {name}"
    return str(code)


def warning_line(line: str) -> tuple[str, str] | None:
    """`(level, message)` of a log line at WARNING or above, else None."""
    line = line.rstrip()
    for pattern in (_ABSL, _TF_OLD):
        match = pattern.match(line)
        if match:
            return _LEVELS[match.group(1)], match.group(2)
    match = _PY_WARNING.match(line)
    if match:
        return (
            "WARNING",
            f"{match.group(2)}: {match.group(3)} ({match.group(1)})",
        )
    match = _PREFIXED.match(line)
    if match:
        return match.group(1), match.group(2)
    match = _USAGE.match(line)
    if match:
        return "ERROR", line
    match = _EXCEPTION.match(line)
    if match:
        return "ERROR", f"{match.group(1)}: {match.group(2)}"
    match = _FATAL.match(line)
    if match:
        return "FATAL", line
    return None


def last_error(path: str) -> str:
    """The last line at WARNING or above in the log `path` (else its last
    line): why a child failed, in one line."""
    try:
        with open(path, errors="replace") as f:
            lines = [line.rstrip() for line in f if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if warning_line(line) is not None:
            return line
    return lines[-1] if lines else ""


def _normalised(message: str) -> str:
    for pattern, replacement in _NOISE:
        message = pattern.sub(replacement, message)
    return message


def warnings(rows: list[Row]) -> list[tuple[str, str, int, list[str]]]:
    """`(level, message, count, run names)` over the rows' logs, each
    message once, most frequent first."""
    counts = collections.Counter()
    runs = collections.defaultdict(list)
    for row in rows:
        if not row.log:
            continue
        try:
            with open(row.log, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            continue
        for line in lines:
            found = warning_line(line)
            if found is None:
                continue
            key = (found[0], _normalised(found[1]))
            counts[key] += 1
            if row.name not in runs[key]:
                runs[key].append(row.name)
    return [
        (level, message, count, runs[(level, message)])
        for (level, message), count in counts.most_common()
    ]


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width table."""
    header = (
        f"{'run':24}{'backend':>11}{'mode':>9}{'tune':>6}{'ep':>4}"
        f"{'exit':>17}{'wall s':>8}{'img/s':>7}{'RSS MiB':>8}{'bal.acc':>8}"
        "  note"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        status = exit_text(row.exit_code)
        status = ("OK " if row.ok else "FAIL ") + status
        lines.append(
            f"{row.name[:23]:24}{row.backend:>11}{row.mode:>9}"
            f"{row.finetune:>6}{row.epochs:>4}{status:>17}"
            f"{row.seconds:8.0f}{_fmt(row.images_per_second, '7.0f'):>7}"
            f"{_fmt(row.peak_rss_mib, '8.0f'):>8}"
            f"{_fmt(row.balanced_accuracy, '8.3f'):>8}  {row.note}"
        )
    return "\n".join(lines)


def warnings_text(rows: list[Row], width: int = 160) -> str:
    """Every warning once, with its count and (up to 3) runs."""
    found = warnings(rows)
    if not found:
        return "No line logged at WARNING or above."
    lines = [f"Lines logged at WARNING or above ({len(found)} distinct):"]
    for level, message, count, names in found:
        where = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        text = f"{count:4d}x {level[0]} {message}"
        text = text[: width - len(where) - 4]
        lines.append(f"{text}  [{where}]")
    return "\n".join(lines)
