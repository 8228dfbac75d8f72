"""`launch.adapt` on (a copy of) the shared smoke run: the prior file, the three rules, and an
unlabelled folder of images."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from la_keras.calibration import Calibration
from la_keras.datasets import synthetic
from tests.launch import helpers
from tests.launch import shared_runs


@pytest.fixture(scope="module")
def run_dir(posthoc_run, tmp_path_factory):
    """A copy of the shared post-hoc smoke run: launch.adapt writes into it."""
    return shared_runs.copy_of(
        posthoc_run, str(tmp_path_factory.mktemp("adapt"))
    )


def _adapt(model_dir, *args):
    return helpers.run_module(
        "launch.adapt", [f"--model_dir={model_dir}", *args]
    )


def _prior(path):
    with open(path) as f:
        values = json.load(f)
    assert isinstance(values, list) and len(values) == synthetic.NUM_CLASSES
    assert all(isinstance(v, float) and v >= 0 for v in values)
    assert abs(sum(values) - 1) < 1e-9
    return np.array(values)


def test_labelled_split_writes_the_prior_and_reports_three_rules(run_dir):
    result = _adapt(run_dir, "--split=test")
    assert result.returncode == 0, result.stderr[-2000:]
    prior = _prior(os.path.join(run_dir, "target_prior.json"))
    lines = result.stdout.splitlines()
    rules = {
        line.split()[0]: float(line.split()[1])
        for line in lines
        if line.startswith("  ")
    }
    assert set(rules) == {"balanced", "estimated_prior", "true_prior"}
    with open(os.path.join(run_dir, "metrics.json")) as f:
        test = json.load(f)["test"]
    # The balanced rule is the served one: tau* of the holdout.
    assert rules["balanced"] == pytest.approx(test["adjusted_tuned"]["top1"])
    # The test split is balanced: its oracle rule is post-hoc at tau=1.
    assert rules["true_prior"] == pytest.approx(test["adjusted"]["top1"])
    # The table lists every class, largest estimate first.
    table = lines[1 : 2 + synthetic.NUM_CLASSES]
    assert table[0].split() == ["class", "estimated", "train", "true"]
    shown = [float(row.split()[1]) for row in table[1:]]
    np.testing.assert_allclose(shown, np.sort(prior)[::-1], atol=1e-4)
    with open(os.path.join(run_dir, "calibration.json")) as f:
        assert Calibration.from_dict(json.load(f)).kind == "bcts"


def test_bbse_to_another_output(run_dir, tmp_path):
    output = str(tmp_path / "prior.json")
    result = _adapt(
        run_dir, "--method=bbse", "--calibration=ts", f"--output={output}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _prior(output)
    assert "bbse" in result.stdout and "calibration ts" in result.stdout


@pytest.mark.slow
def test_unlabelled_folder_matches_the_same_images_labelled(run_dir, tmp_path):
    images, _ = synthetic.make_arrays(
        [synthetic.TEST_PER_CLASS] * synthetic.NUM_CLASSES, 1
    )
    root = tmp_path / "deploy"
    for i, image in enumerate(images):
        where = root if i % 2 else root / "camera" / "day1"
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(where / f"{i:03d}.png")
    output = str(tmp_path / "folder_prior.json")
    result = _adapt(
        run_dir,
        f"--dataset=folder:{root}",
        "--split=ignored",
        f"--output={output}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"({len(images)} images;" in result.stdout
    assert "top-1 by rule" not in result.stdout
    labelled = str(tmp_path / "labelled_prior.json")
    assert (
        _adapt(run_dir, "--split=test", f"--output={labelled}").returncode == 0
    )
    # The same pixels, preprocessed alike: the same estimate (PNG is lossless).
    np.testing.assert_allclose(_prior(output), _prior(labelled), atol=1e-6)


def test_an_empty_unlabelled_folder_is_one_line(run_dir, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    result = _adapt(run_dir, f"--dataset=folder:{tmp_path / 'empty'}")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("launch.adapt: error:")
    )
    assert "holds no images" in result.stderr


@pytest.mark.slow
def test_evaluate_on_a_shifted_test_mix(run_dir, tmp_path):
    from la_keras.datasets import shifted

    output = str(tmp_path / "eval.json")
    result = helpers.run_module(
        "launch.evaluate",
        [
            f"--model_dir={run_dir}",
            "--test_prior=backward4",
            f"--output={output}",
        ],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open(output) as f:
        report = json.load(f)["shifted_test"]
    # How many are kept depends on the classes' ranks only.
    kept = shifted.shifted_counts(
        synthetic.TRAIN_COUNTS, synthetic.TEST_PER_CLASS, "backward4"
    )
    assert report["num_examples"] == int(kept.sum())
    assert set(report["top1"]) == {"balanced", "estimated_prior", "true_prior"}
    assert all(0.0 <= v <= 1.0 for v in report["top1"].values())
    assert abs(sum(report["estimated_prior"]) - 1) < 1e-9
    assert "test resampled to backward4" in result.stdout
    # A mix from a file: class 0 keeps every test image, the others half.
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps([2.0] + [1.0] * (synthetic.NUM_CLASSES - 1)))
    result = helpers.run_module(
        "launch.evaluate",
        [f"--model_dir={run_dir}", f"--test_prior={mix}", f"--output={output}"],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open(output) as f:
        report = json.load(f)["shifted_test"]
    half = synthetic.TEST_PER_CLASS // 2
    assert report["num_examples"] == synthetic.TEST_PER_CLASS + half * (
        synthetic.NUM_CLASSES - 1
    )
    assert report["source"] == str(mix)
    bad = helpers.run_module(
        "launch.evaluate", [f"--model_dir={run_dir}", "--test_prior=sideways"]
    )
    assert bad.returncode == 1
    assert "--test_prior: Invalid value for argument `test_prior`" in bad.stderr
