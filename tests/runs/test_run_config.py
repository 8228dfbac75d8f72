"""`la_keras.runs.RunConfig`: frozen, checked, one field per flag."""

import dataclasses

import pytest
from absl import flags
from absl.testing import flagsaver

from la_keras.runs import RunConfig
from la_keras.runs import run_config
from la_keras.runs.parts import PARTS
from launch import common_flags


@pytest.fixture(scope="module")
def flag_values():
    common_flags.define_flags()
    flags.FLAGS.mark_as_parsed()
    return flags.FLAGS


def test_parts_hold_every_field_once():
    names = [f.name for f in run_config.fields()]
    assert len(names) == len(set(names))
    config = RunConfig()
    for part, klass in PARTS.items():
        assert isinstance(getattr(config, part), klass)
        for field in dataclasses.fields(klass):
            assert field.metadata["help"].strip(), field.name
            assert getattr(config, field.name) == field.default


def test_flat_keywords_land_in_their_part():
    config = RunConfig(dataset="test", model="resnet8", epochs=3, tau=0.5)
    assert config.data.dataset == "test"
    assert config.network.model == "resnet8"
    assert config.schedule.epochs == 3
    assert config.objective.tau == 0.5
    assert config.given_fields == {"dataset", "model", "epochs", "tau"}
    assert config.is_given("epochs") and not config.is_given("seed")


def test_frozen_and_replace():
    config = RunConfig(epochs=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.data.dataset = "test"
    changed = config.replace(seed=7)
    assert (changed.epochs, changed.seed, config.seed) == (3, 7, 0)
    assert changed.given_fields == {"epochs", "seed"}
    assert config == RunConfig(epochs=3) and config != changed


def test_unknown_option_names_the_closest():
    with pytest.raises(TypeError, match="did you mean 'epochs'"):
        RunConfig(epoch=3)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"tau": -1.0}, "--tau must be a finite float >= 0 (0 disables it)."),
        (
            {"tau": float("inf")},
            "--tau must be a finite float >= 0 (0 disables it).",
        ),
        ({"mode": "both"}, "--mode='both': must be one of"),
        ({"train_batch_size": 0}, "--train_batch_size must be >= 1."),
        ({"holdout_fraction": 1.0}, "--holdout_fraction must be in [0, 1)"),
        ({"image_size": "big"}, "--image_size='big': expected H or H,W"),
        ({"loss": "hinge"}, "Unknown --loss='hinge'"),
        ({"model": "resnet7"}, "--model must be one of"),
        ({"dataset": "nope"}, "Unknown --dataset='nope'"),
        (
            {"lock_timeout": 0.0},
            "--lock_timeout must be a finite number of seconds > 0.",
        ),
        ({"tau_grid": ()}, "--tau_grid must be a non-empty list"),
    ],
)
def test_bad_values_are_refused_as_the_flags_refuse_them(
    flag_values, values, message
):
    with pytest.raises(ValueError) as made:
        RunConfig(**values)
    assert message in str(made.value)
    ((name, value),) = values.items()
    text = ",".join(value) if isinstance(value, tuple) else str(value)
    with flagsaver.flagsaver():
        with pytest.raises(flags.IllegalFlagValueError) as parsed:
            flag_values(["prog", f"--{name}={text}"])
    # absl words the enum refusal itself.
    assert message in str(parsed.value) or name == "mode"


def test_one_flag_per_field_with_its_default_and_help(flag_values):
    for field in run_config.fields():
        flag = flag_values[field.name]
        default = field.default
        if isinstance(default, tuple):
            default = [str(v) for v in default]
        assert flag.default == default, field.name
        assert field.metadata["help"].strip() in flag.help, field.name


def test_from_flags_counts_what_was_given(flag_values):
    with flagsaver.flagsaver(dataset="test", epochs=2, nesterov=False):
        config = RunConfig.from_flags(flag_values)
    assert config.given_fields == {"dataset", "epochs", "nesterov"}
    assert (config.dataset, config.epochs, config.nesterov) == (
        "test",
        2,
        False,
    )


def test_flag_lines_parse_back_to_the_same_config(flag_values):
    config = RunConfig(
        dataset="test", nesterov=False, lr_decay_epochs=("4", "6"), tau=0.5
    )
    lines = config.flag_lines()
    with flagsaver.flagsaver():
        flag_values(["prog", *lines])
        assert RunConfig.from_flags(flag_values) == config
