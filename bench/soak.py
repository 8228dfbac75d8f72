"""The soak bench: the product run as users run it, on photo-like images.

    python bench/soak.py --output_dir=/tmp/soak            # about 8 min
    python bench/soak.py --output_dir=/tmp/soak --quick    # about 2.5 min

Run it before every change to the training core or the data path. It
writes a long-tailed folder of varied images (`varied_folder.py`: 60 to
1,000 px, odd aspects, gray / CMYK / progressive / EXIF-rotated JPEGs,
palette and RGBA PNGs, 100:1 between the largest and smallest class) and
runs, each as its own process (`python -m launch.<entry> ...`, with
`KERAS_BACKEND` set), so that a crash is a failed row with its exit code
(139 SIGSEGV) and not the end of the bench:

- per backend (`--backends`): a pretrained MobileNet v1 0.25 at
  `--image_size`, `--finetune=full` then `--finetune=lora`, loss mode, for
  `--epochs`; TensorFlow reads `folder:` (its default augmentation: the
  ImageNet recipe at 96 px), JAX a `prepared:` file that `launch.prepare`
  makes from the same folder (with `--augment=cifar`, the one recipe JAX
  trains). Every epoch end checkpoints (`--checkpoint_every_seconds=0`), as
  the long epochs of real runs do.
- the LoRA run is stopped by SIGTERM in its second epoch (exit 75 and a
  checkpoint expected), then the same command resumes it to the end;
- a `--mode=baseline` run (plain cross-entropy) beside the loss-mode full
  run of the first backend: the report shows which leads;
- `launch.evaluate` and `launch.export` of that full run, then the
  SavedModel evaluated by `launch.evaluate --saved_model` (TensorFlow 2's
  loader) and served in a TF1 session as TF Serving loads it
  (`tests/serving_session.py`) on test images of another size, with a
  request of gray images (one channel) refused.

It prints one table (exit code, wall time, images/s and balanced accuracy
from metrics.json, peak RSS of the process) and every line any child logged
at WARNING or above, counted once, and exits 1 if any row failed. Each
child's log is `<output_dir>/logs/<row>.log`. `--output_dir` is emptied
first when an earlier soak made it (`soak.json`), refused when it holds
anything else.

The default (1,160 training images of 12 classes, 20 test images a class,
8 epochs of batch 128) takes about 8 minutes on a 2-core CPU with nothing
else running, 13 to 15 with a load of 4 (JAX's full fine-tuning is a
third of it); most of `--quick` is the start-up of its 13 processes.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench import soak_outputs  # noqa: E402
from bench import soak_report  # noqa: E402
from bench.varied_folder import make_varied_folder  # noqa: E402

WEIGHTS = os.path.join("shared", "pretrained", "mobilenet_2_5_224_tf_no_top.h5")
PREEMPTED = 75


def default_pretrained() -> str | None:
    """`../shared/pretrained/...` of the repo, or of a folder above it (a
    worktree's), when it exists."""
    parent = os.path.dirname(REPO)
    while True:
        path = os.path.join(parent, WEIGHTS)
        if os.path.exists(path):
            return path
        if os.path.dirname(parent) == parent:
            return None
        parent = os.path.dirname(parent)


# (classes, images of the largest class, test images per class, epochs,
# train batch): the default fits 15 minutes of a 2-core CPU.
SIZES = {"default": (12, 400, 20, 8, 128), "quick": (5, 40, 4, 3, 16)}
_CKPT = re.compile(r"ckpt-(\d+)\.(?:index|npz)$")


class Soak:
    """Runs the children one after the other and keeps their rows."""

    def __init__(self, args):
        self.args = args
        self.rows: list[soak_report.Row] = []
        self.logs = os.path.join(args.output_dir, "logs")
        os.makedirs(self.logs, exist_ok=True)

    def child(self, row, module, flags, backend, watch=None):
        """Runs `python -m module flags` under `backend`; fills `row`.

        `watch(proc)` is called every 0.2 s while the child runs.
        """
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONFAULTHANDLER="1")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (REPO, env.get("PYTHONPATH")) if p
        )
        row.log = os.path.join(self.logs, f"{row.name}.log")
        command = [sys.executable, "-m", module, *flags]
        start = time.monotonic()
        with open(row.log, "w") as out:
            out.write(f"KERAS_BACKEND={backend} {' '.join(command)}\n")
            out.flush()
            proc = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )
            status, usage = None, None
            while status is None:
                pid, raw, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    status = os.waitstatus_to_exitcode(raw)
                    proc.returncode = status
                    break
                if time.monotonic() - start > self.args.timeout:
                    proc.kill()
                    _, _, usage = os.wait4(proc.pid, 0)
                    proc.returncode = status = -signal.SIGKILL
                    row.note = f"FAIL: killed after {self.args.timeout} s"
                    break
                if watch is not None:
                    watch(proc)
                time.sleep(0.2)
        row.seconds = time.monotonic() - start
        row.exit_code = status
        if usage is not None:
            row.peak_rss_mib = usage.ru_maxrss / 1024  # KiB on Linux
        if not row.ok and not row.note:
            row.note = "FAIL: " + soak_report.last_error(row.log)[:90]
        self.rows.append(row)
        self.print_row(row)
        return row

    def print_row(self, row):
        status = "ok" if row.ok else "FAILED"
        print(
            f"  {row.name}: exit {soak_report.exit_text(row.exit_code)}, "
            f"{row.seconds:.0f} s, {status} {row.note}",
            flush=True,
        )

    def train(
        self, name, backend, dataset, mode, finetune, extra=(), expected=0,
        watch=None, run=None,
    ):  # fmt: skip
        """A `launch.train` row, in `runs/<run or name>`; reads the run's
        metrics.json when it ends."""
        model_dir = os.path.join(self.args.output_dir, "runs", run or name)
        flags = [
            f"--dataset={dataset}", f"--model_dir={model_dir}",
            "--model=mobilenet", "--model_width=0.25",
            f"--pretrained={self.args.pretrained}",
            f"--image_size={self.args.image_size}",
            f"--epochs={self.args.epochs}", f"--mode={mode}",
            f"--finetune={finetune}", "--checkpoint_every_seconds=0",
            f"--train_batch_size={self.args.batch_size}", *extra,
        ]  # fmt: skip
        row = soak_report.Row(
            name, backend, mode, finetune, str(self.args.epochs),
            expected_exit=expected, model_dir=model_dir,
        )  # fmt: skip
        self.child(row, "launch.train", flags, backend, watch)
        if row.exit_code == 0:
            self._read_metrics(row, model_dir)
        return row

    def _read_metrics(self, row, model_dir):
        try:
            with open(os.path.join(model_dir, "metrics.json")) as f:
                metrics = json.load(f)
        except (OSError, ValueError) as e:
            row.note = f"FAIL: no metrics.json ({e})"
            return
        row.images_per_second = metrics.get("images_per_second")
        row.balanced_accuracy = metrics["test"]["raw"]["balanced_accuracy"]
        adjusted = metrics["test"].get("adjusted")
        if adjusted:
            row.note = (
                f"post-hoc tau={adjusted.get('tau', 1.0):g}: "
                f"{adjusted['balanced_accuracy']:.3f}"
            )
        if metrics.get("epoch") != self.args.epochs:
            row.note = f"FAIL: trained {metrics.get('epoch')} epochs"


def checkpoint_steps(model_dir) -> list[int]:
    """Steps of the checkpoints (TensorFlow `.index`, JAX `.npz`) there."""
    paths = glob.glob(os.path.join(model_dir, "**", "ckpt-*"), recursive=True)
    return sorted({int(m.group(1)) for p in paths if (m := _CKPT.search(p))})


def interrupted(soak, name, backend, dataset, train_count):
    """The LoRA run: SIGTERM in its second epoch, then resumed."""
    # Epochs of whole batches.
    steps_per_epoch = max(1, train_count // soak.args.batch_size)
    # A checkpoint half-way through the second epoch tells that the run is
    # there, on a machine of any speed; SIGTERM is noticed within a step.
    mid = steps_per_epoch + max(1, steps_per_epoch // 2)
    extra = ("--steps_per_loop=1", f"--checkpoint_every_steps={mid}")
    model_dir = os.path.join(soak.args.output_dir, "runs", name)
    sent = []

    def watch(proc):
        if not sent and any(s >= mid for s in checkpoint_steps(model_dir)):
            proc.send_signal(signal.SIGTERM)
            sent.append(time.monotonic())

    first = soak.train(
        f"{name}_sigterm", backend, dataset, "loss", "lora", extra,
        expected=PREEMPTED, watch=watch, run=name,
    )  # fmt: skip
    if first.exit_code == 0 and not sent:
        first.note = "FAIL: finished before SIGTERM"
    elif first.exit_code == PREEMPTED:
        first.note = (
            f"SIGTERM at ckpt-{mid}; saved ckpt-"
            f"{max(checkpoint_steps(model_dir), default='none')}"
        )
    saved = max(checkpoint_steps(model_dir), default=0)
    # The same command again.
    resumed = soak.train(
        f"{name}_resumed", backend, dataset, "loss", "lora", extra, run=name
    )
    start = _first_step(resumed.log)
    if first.exit_code == PREEMPTED and resumed.exit_code == 0:
        resumed.note = (
            f"went on from step {start}"
            if start
            else f"FAIL: restarted at step {start} (checkpoint kept: {saved})"
        )
    return resumed


def _first_step(log) -> int | None:
    """The step of the first progress line ("step N/T") in the log."""
    with open(log, errors="replace") as f:
        for line in f:
            match = re.match(r"^step (\d+)/\d+", line)
            if match:
                return int(match.group(1))
    return None


def _compare(loss, baseline):
    """Notes on the baseline row how far loss mode leads it."""
    if loss.balanced_accuracy is None or baseline.balanced_accuracy is None:
        return
    lead = loss.balanced_accuracy - baseline.balanced_accuracy
    baseline.note = "; ".join(
        [n for n in (baseline.note, f"loss mode leads by {lead:+.3f}") if n]
    )


def _prepare(soak, folder):
    """`launch.prepare` of the folder for the JAX runs; its path or None."""
    path = os.path.join(soak.args.output_dir, "folder.prepared")
    row = soak.child(
        soak_report.Row("prepare", "jax"),
        "launch.prepare",
        [f"--dataset=folder:{folder}", f"--image_size={soak.args.image_size}",
         "--augment=cifar", f"--output={path}"],
        "jax",
    )  # fmt: skip
    return path if row.ok else None


def run(args) -> int:
    """The whole soak; prints the report and returns the exit status."""
    start = time.monotonic()
    marker = os.path.join(args.output_dir, "soak.json")
    if os.path.exists(marker):
        shutil.rmtree(args.output_dir)
    elif os.path.isdir(args.output_dir) and os.listdir(args.output_dir):
        print(
            f"{args.output_dir} holds files that an earlier soak did not write"
            " (no soak.json): pass a new or empty --output_dir.",
            file=sys.stderr,
        )
        return 1
    soak = Soak(args)
    with open(marker, "w") as f:
        json.dump({k: v for k, v in vars(args).items()}, f)
    folder = os.path.join(args.output_dir, "folder")
    made = make_varied_folder(
        folder, args.num_classes, args.max_per_class,
        test_per_class=args.test_per_class, seed=args.seed,
    )  # fmt: skip
    train_count = sum(made["train"])
    print(
        f"{folder}: {train_count} train images in {args.num_classes} classes "
        f"({made['train'][0]} to {made['train'][-1]}), {sum(made['test'])} "
        f"test; {made['kinds']}; {time.monotonic() - start:.0f} s",
        flush=True,
    )
    finished = None
    for n, backend in enumerate(args.backends):
        prefix = "tf" if backend == "tensorflow" else backend
        dataset = f"folder:{folder}"
        if backend == "jax":
            prepared = _prepare(soak, folder)
            if prepared is None:
                continue
            dataset = f"prepared:{prepared}"
        full = soak.train(f"{prefix}_full", backend, dataset, "loss", "full")
        if n == 0:
            baseline = soak.train(
                f"{prefix}_full_baseline", backend, dataset, "baseline", "full"
            )
            _compare(full, baseline)
        lora = interrupted(
            soak, f"{prefix}_lora", backend, dataset, train_count
        )
        if n == 0:
            # The full run's, or the LoRA run's when the full one failed.
            finished = next((r for r in (full, lora) if r.ok), None)
    if finished is not None:
        soak_outputs.evaluate_export_serve(soak, finished, folder)
    else:
        soak.rows.append(
            soak_report.Row(
                "evaluate_export", exit_code=None,
                note="FAIL: skipped, no training of the first backend ended",
            )
        )  # fmt: skip
    print()
    print(
        f"Soak: MobileNet v1 0.25 ({os.path.basename(args.pretrained)}) at "
        f"{args.image_size} px, {args.epochs} epochs, batch "
        f"{args.batch_size}; {train_count} train images; TensorFlow from "
        "folder: (ImageNet recipe), JAX from prepared: (CIFAR recipe); load "
        f"average now {os.getloadavg()[0]:.1f}"
    )
    print(soak_report.table(soak.rows))
    print()
    print(soak_report.warnings_text(soak.rows))
    failed = [row.name for row in soak.rows if not row.ok]
    print()
    print(
        f"Total wall time {time.monotonic() - start:.0f} s; "
        + (f"FAILED: {', '.join(failed)}" if failed else "every run OK")
        + f"; logs in {soak.logs}"
    )
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--pretrained",
        default=default_pretrained(),
        help="MobileNet v1 0.25 weights without top (default: "
        "../shared/pretrained/mobilenet_2_5_224_tf_no_top.h5 of the repo).",
    )
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument(
        "--quick", action="store_true",
        help="The smoke version: a tiny folder, 2 epochs, batch 16.",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--num_classes", type=int)
    parser.add_argument("--max_per_class", type=int)
    parser.add_argument("--test_per_class", type=int)
    parser.add_argument("--batch_size", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout", type=float, default=900.0,
        help="Seconds after which a child is killed (a failed row).",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.pretrained:
        parser.error("--pretrained: no weights file given or found.")
    args.pretrained = os.path.abspath(args.pretrained)
    args.output_dir = os.path.abspath(args.output_dir)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not args.backends or set(args.backends) - {"tensorflow", "jax"}:
        parser.error(f"--backends: tensorflow and/or jax, not {args.backends}")
    sizes = SIZES["quick" if args.quick else "default"]
    names = ("num_classes", "max_per_class", "test_per_class", "epochs",
             "batch_size")  # fmt: skip
    for name, value in zip(names, sizes, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
