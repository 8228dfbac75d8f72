"""The README's commands and snippet stay true."""

import pathlib
import re
import subprocess
import sys

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
