"""The README's commands and snippet stay true."""

import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _code_after(marker):
    text = README.read_text()
    after = text.split(marker, 1)[1]
    return re.search(r"```bash\n(.*?)\n```", after, re.S).group(1).strip()


def test_readme_starts_with_main_and_test_commands():
    text = README.read_text()
    assert text.index("<!-- ci:main -->") < text.index("<!-- ci:test -->")
    assert "python -m launch.quickstart" in _code_after("<!-- ci:main -->")
    assert _code_after("<!-- ci:test -->").endswith("python -m pytest")
    ci = (README.parent / ".ci" / "run").read_text()
    assert "<!-- ci:test -->" in ci


def test_api_snippet_runs_as_written(tmp_path):
    text = README.read_text()
    section = text.split("## The API", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "exported" / "saved_model.pb").exists()


@pytest.mark.slow
def test_runs_snippet_equals_the_command_line(tmp_path):
    """`runs.train(RunConfig(...))` and `python -m launch.train` with the
    same values give the same metrics; evaluate and export run as shown."""
    import json

    section = README.read_text().split("## From Python: `la_keras.runs`", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    command = section.split("```bash\n", 1)[1].split("```", 1)[0].strip()
    api, cli = tmp_path / "api", tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-c", snippet.replace("/tmp/smoke", str(api))],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (api / "export" / "saved_model.pb").exists()
    assert (api / "eval_metrics.json").exists()
    args = command.replace("/tmp/smoke", str(cli)).split()
    assert args[:3] == ["python", "-m", "launch.train"]
    result = subprocess.run(
        [sys.executable, *args[1:]],
        cwd=README.parent,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from_api = json.loads((api / "metrics.json").read_text())
    from_cli = json.loads((cli / "metrics.json").read_text())
    # Timing and where the run was written differ; nothing else may.
    for key in ("images_per_second", "export_dir", "train_seconds", "seconds"):
        from_api.pop(key, None)
        from_cli.pop(key, None)
    assert from_api.keys() == from_cli.keys()
    _assert_close(from_api, from_cli)


def _assert_close(a, b, where="metrics"):
    # Two processes with one seed: the same batches and initial weights;
    # float32 sums may differ in their last bits across thread schedules,
    # and one epoch of 2 steps keeps that within 1e-4 relative.
    if isinstance(a, dict):
        for key in a:
            _assert_close(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (where, a, b)
    else:
        assert a == b, (where, a, b)


def test_layout_names_every_file_once():
    """ "How the code is laid out" has one line per file of the library,
    the entry points and the benches, and names no file that is gone."""
    section = README.read_text().split("## How the code is laid out", 1)[1]
    tree = section.split("```text\n", 1)[1].split("```", 1)[0]
    listed, folders = [], []
    for line in tree.splitlines():
        name = line.split()[0]
        depth = (len(line) - len(line.lstrip())) // 2
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name)
        else:
            listed.append("".join(folders) + name)
    root = README.parent
    present = sorted(
        str(p.relative_to(root))
        for top in ("la_keras", "launch", "bench")
        for p in (root / top).rglob("*.py")
    )
    assert sorted(listed) == present
