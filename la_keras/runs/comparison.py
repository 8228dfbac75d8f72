"""The table that compares a loss-mode run with a baseline run.

`launch.quickstart` prints it: test accuracy of the logit-adjusted loss,
of cross-entropy, and of cross-entropy's post-hoc adjusted logits.
"""

from __future__ import annotations

MODES = ("loss", "baseline")

_DATASET_TITLES = {"cifar10_lt": "CIFAR-10-LT", "cifar10-lt": "CIFAR-10-LT"}
_COLUMNS = (
    ("top1", "top-1"),
    ("balanced_accuracy", "balanced"),
    ("many", "many"),
    ("medium", "medium"),
    ("few", "few"),
)


def format_table(results: dict) -> str:
    """The comparison table printed by the quickstart.

    A column equal to top-1 in every row (balanced accuracy on a balanced
    test set) or empty in every row (a shot group with no class) is left
    out, and a note under the table says why.
    """
    rows = [
        ("loss (logit-adjusted loss)", results["loss"]["test"]["raw"]),
        ("baseline (cross-entropy)", results["baseline"]["test"]["raw"]),
        (
            "baseline + post-hoc (tau=1)",
            results["baseline"]["test"]["adjusted"],
        ),
    ]
    columns, notes = [], []
    for key, title in _COLUMNS:
        values = [report[key] for _, report in rows]
        if all(v is None for v in values):
            notes.append(
                f"{title}: no class of the training set is {key}-shot."
            )
        elif key != "top1" and all(
            v is not None and abs(v - r["top1"]) < 1e-6
            for v, (_, r) in zip(values, rows, strict=True)
        ):
            notes.append(
                f"{title}: equal to top-1, as the test set is balanced "
                "(the same number of images per class)."
            )
        else:
            columns.append((key, title))
    dataset = _DATASET_TITLES.get(results["loss"].get("dataset"), "")
    title = f"{dataset} test accuracy".strip()
    header = f"{title:30s}" + "".join(f"{title:>10s}" for _, title in columns)
    lines = [header, "-" * len(header)]
    for name, report in rows:
        lines.append(
            f"{name:30s}"
            + "".join(
                f"{'n/a':>10s}" if report[k] is None else f"{report[k]:10.4f}"
                for k, _ in columns
            )
        )
    lines += [f"(not shown: {note})" for note in notes]
    lines.append("")
    for mode in MODES:
        result = results[mode]
        # A JAX run writes a .keras model; launch.export makes the SavedModel.
        saved = (
            f"SavedModel: {result['export_dir']}"
            if result.get("export_dir")
            else f"Keras model: {result.get('keras_model')}"
        )
        lines.append(
            f"{mode:8s} {saved}  (trained in {result['seconds']:.0f} s)"
        )
    return "\n".join(lines)
