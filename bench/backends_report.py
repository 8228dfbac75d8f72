"""bench_backends' throughput table, printed by the parent process."""

from __future__ import annotations

import os


def print_throughput(args, prepared_path, parts):
    ours = parts.get("throughput", [])
    references = parts.get("reference", [])
    print(
        f"\n{os.path.basename(prepared_path)}: official ResNet-32, "
        f"logit-adjusted loss, batch {args.batch}, {args.steps} steps timed "
        f"after {args.warmup} (best of {args.repeats})"
    )

    def reference(kind, backend=None):
        return next(
            (r["images_per_s"] for r, _ in references
             if r["kind"] == kind and backend in (None, r["backend"])),
            None,
        )  # fmt: skip

    def ratio(value, base):
        return f"{value / base:5.2f}x" if base else "     -"

    tf_rate = next(
        (r["images_per_s"] for r, _ in ours if r["backend"] == "tensorflow"),
        None,
    )
    official = reference("official")
    print(
        f"\n   {'backend':11s} {'path':52s} {'device':20s} {'images/s':>9s} "
        f"{'vs TF':>6s} {'vs fit':>6s} {'vs off.':>7s} {'process':>8s}"
    )
    for result, wall in ours:
        rate = result["images_per_s"]
        fit = reference("fit", result["backend"])
        print(
            f"   {result['backend']:11s} {result['variant']:52s} "
            f"{result['device'][:20]:20s} {rate:9.1f} "
            f"{ratio(rate, tf_rate):>6s} {ratio(rate, fit):>6s} "
            f"{ratio(rate, official):>7s} {wall:7.0f}s"
        )
    for result, _ in references:
        tried = result.get("tried")
        print(
            f"   {result['backend']:11s} {result['variant']:52s} "
            f"{'':20s} {result['images_per_s']:9.1f}"
            + (
                "  (tried: "
                + ", ".join(f"{k}: {v:.1f}" for k, v in tried.items())
                + ")"
                if tried
                else ""
            )
        )
    print(
        "\n   images/s: the fastest repeat (input pipeline included); vs fit: "
        "ours over Keras's\n   model.fit on the same backend (best "
        "steps_per_execution); vs off.: over the\n   official eager loop "
        "(TensorFlow); process: the worker's wall time."
    )
