"""The parts of a `la_keras.runs.RunConfig`, one frozen dataclass each."""

from la_keras.runs.parts.data import DataOptions
from la_keras.runs.parts.finetuning import FinetuningOptions
from la_keras.runs.parts.loss import LossOptions
from la_keras.runs.parts.model import ModelOptions
from la_keras.runs.parts.output import OutputOptions
from la_keras.runs.parts.runtime import RuntimeOptions
from la_keras.runs.parts.schedule import ScheduleOptions

# `RunConfig` attribute -> its part's class, in the order of the flags.
PARTS = {
    "data": DataOptions,
    "network": ModelOptions,
    "finetuning": FinetuningOptions,
    "schedule": ScheduleOptions,
    "objective": LossOptions,
    "output": OutputOptions,
    "runtime": RuntimeOptions,
}
