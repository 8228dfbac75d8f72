"""The typed run configuration: `ResolvedConfig`, `DataConfig`, `ScheduleConfig`.

A run's configuration is resolved once from the flags
(`ResolvedConfig.from_flags`), written next to its checkpoints as `flags.json`
(flat, one key per flag plus the resolved `schedule`, `dataset_dir` and
`dataset_checksum`) and read back by `launch.evaluate`, `launch.export` and
`launch.reproduce` (`ResolvedConfig.read`). `DataConfig` (`data_config.py`)
builds every split's dataset, so the dataset construction exists once.

A run may move (its model_dir copied to another machine, its prepared file
or folder to another path): no path in flags.json is needed to resume it.
The paths are result-neutral, the data is recognised by its checksum, the
checkpoints and the folder index name their files relative to their own
folder, and `ResolvedConfig.read` moves the recorded output paths with the
model_dir.
"""

from __future__ import annotations

import dataclasses
import os

from la_keras import schedules
from la_keras.runs import data_config
from la_keras.runs import outputs
from la_keras.runs import resolve
from la_keras.runs import resume_check
from la_keras.runs.data_config import FOLDER_INDEX
from la_keras.runs.data_config import DataConfig
from la_keras.runs.errors import RunError
from la_keras.runs.parts.loss import LOSS_OPTIONS
from la_keras.runs.run_config import RunConfig


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """Epochs, learning-rate schedule and SGD settings.

    Args:
        epochs: training epochs.
        schedule: `(multiplier, start_epoch)` pairs of
            `la_keras.schedules.WarmupStepSchedule`; the first ends the
            linear warm-up.
        base_learning_rate, momentum, nesterov: SGD.
        lr_schedule: "step" (`schedule`) or "cosine" (from the base rate to
            0 over `epochs`).
    """

    epochs: int
    schedule: tuple
    base_learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    lr_schedule: str = "step"

    def optimizer(self, steps_per_epoch: int):
        import keras

        if self.lr_schedule == "cosine":
            # LIFT's CosineAnnealingLR: from the base rate to 0 at the end.
            learning_rate = keras.optimizers.schedules.CosineDecay(
                self.base_learning_rate,
                decay_steps=max(1, int(self.epochs) * int(steps_per_epoch)),
                alpha=0.0,
            )
        else:
            learning_rate = schedules.WarmupStepSchedule(
                self.base_learning_rate, steps_per_epoch, self.schedule
            )
        return keras.optimizers.SGD(
            learning_rate, momentum=self.momentum, nesterov=self.nesterov
        )


@dataclasses.dataclass(frozen=True)
class ResolvedConfig:
    """Everything `launch.train` needs; the same object for every entry point.

    Args:
        data: the `DataConfig`.
        schedule: the `ScheduleConfig`.
        model: a name of `la_keras.models.registry`.
        classifier: its head, "dense", "normed" or "cosine" (resolved from
            --classifier; a flags.json without it is from a dense head);
            cosine_scale: the factor of the cosine head's cosines.
        weight_decay: L2 factor inside the model.
        mode: "baseline", "posthoc" or "loss".
        loss: a name of `la_keras.losses.names()`.
        loss_options: `{flag: value}` of the loss hyperparameter flags set.
        tau: the adjustment temperature; tau_grid: taus tried on holdout.
        model_dir, tb_log_dir, export_dir: outputs (empty: in model_dir).
        strategy, tpu, num_logical_cpus: distribution.
        jit_compile: XLA for the train step (resolved: True or False).
        dtype_policy: the model's Keras dtype policy (resolved: "float32"
            or "mixed_bfloat16"; a flags.json without it is float32).
        jax_loop: the JAX backend's loop shape ("auto", "python", "scan").
        backbone: whether `model` is a pretrained backbone (its pretrained
            form: `registry.get(model, pretrained)`).
        pretrained: the weights a new run starts from (a file, "imagenet",
            "preset"), or None; pretrained_sha256: that file's SHA-256,
            recorded at the start (`la_keras.runs.weights_record`).
        model_width, model_image_size: the backbone's width multiplier and
            input size (None: defaults).
        finetune, lora_rank: what trains (`la_keras.models.finetune`).
        init_from: the model_dir of a run whose backbone a new run starts
            from; head_init: "random", "class_mean" or "text".
        deterministic, checkpoint_every_steps, checkpoint_every_seconds,
        keep_checkpoints, lock_timeout, steps_per_loop, eval_every_epochs,
        extend: see the flags of the same names.
    """

    data: DataConfig
    schedule: ScheduleConfig
    model: str = "official_resnet32"
    classifier: str = "dense"
    cosine_scale: float = 25.0
    weight_decay: float = 1e-4
    mode: str = "posthoc"
    loss: str = "crossentropy"
    loss_options: dict = dataclasses.field(default_factory=dict)
    tau: float = 1.0
    tau_grid: tuple = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
    model_dir: str = "logit_adjustment/model"
    tb_log_dir: str = ""
    export_dir: str = ""
    strategy: str = "auto"
    tpu: str | None = None
    num_logical_cpus: int = 0
    jit_compile: bool = False
    dtype_policy: str = "float32"
    deterministic: bool = False
    checkpoint_every_steps: int = 0
    checkpoint_every_seconds: float = 60.0
    keep_checkpoints: int = 3
    lock_timeout: float = 300.0
    steps_per_loop: int = 100
    eval_every_epochs: int = 0
    jax_loop: str = "auto"
    extend: bool = False
    backbone: bool = False
    pretrained: str | None = None
    pretrained_sha256: str | None = None
    model_width: float | None = None
    model_image_size: list | None = None
    finetune: str = "full"
    lora_rank: int = 8
    init_from: str | None = None
    head_init: str = "random"

    # -- building the run's parts -------------------------------------------

    def build_model(self, num_classes: int, image_shape, preprocessing="cifar"):
        """The registry model, random weights; for a pretrained backbone its
        pretrained form for images of `preprocessing` (`la_keras.runs.finetuning`
        loads weights and sets what trains). Its layers are built under
        `dtype_policy`; a cosine head scales its cosines by `cosine_scale`."""
        import keras

        from la_keras.models import heads
        from la_keras.models import registry

        options = {}
        if self.backbone:
            options = dict(
                pretrained=True, image_size=self.model_image_size,
                width=self.model_width, preprocessing=preprocessing,
            )  # fmt: skip
        cosine = self.classifier == "cosine"
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.dtype_policy)
        try:
            model = registry.build(
                self.model, num_classes, image_shape, self.weight_decay,
                "normed" if cosine else self.classifier, **options,
            )  # fmt: skip
        except (ValueError, ImportError) as e:
            raise RunError(f"--model={self.model}: {e}") from e
        finally:
            keras.config.set_dtype_policy(previous)
        return (
            heads.scale_cosines(model, self.cosine_scale) if cosine else model
        )

    def loss_kwargs(self) -> dict:
        """The hyperparameters of `loss` given by loss flags."""
        kwargs = {"tau": self.tau} if self.loss == "logit_adjusted" else {}
        for flag, value in self.loss_options.items():
            keyword, losses = LOSS_OPTIONS[flag]
            if self.loss not in losses:
                raise RunError(
                    f"--{flag} applies to --loss={' / '.join(losses)}, not "
                    f"--loss={self.loss}."
                )
            kwargs[keyword] = value
        return kwargs

    def build_loss(self, info):
        """`la_keras.losses.build(loss, counts, **loss_kwargs)`.

        The class counts are the training set's (`info.train_counts`): the
        effective-number weights of class_balanced and DRW depend on
        absolute counts. The prior-based losses (logit_adjusted,
        balanced_softmax) get `info.priors`, which for the official
        TFRecord sets are the release's base_probs.
        """
        from la_keras import losses as losses_lib

        counts = info.train_counts
        if self.loss in resolve.PRIOR_LOSSES or counts is None:
            counts = info.priors
        try:
            return losses_lib.build(self.loss, counts, **self.loss_kwargs())
        except ValueError as e:
            raise RunError(f"--loss={self.loss}: {e}") from e

    # -- flags and JSON ------------------------------------------------------

    @classmethod
    def resolve(cls, options: RunConfig) -> ResolvedConfig:
        """Resolves a `RunConfig` once: a recipe's defaults (LIFT's, for a
        pretrained backbone) for the fields not given, then the dataset's
        facts (its schedule, checksum), then the values given.

        Raises:
            RunError: conflicting options (one line).
        """
        flat = resolve.resolve_options(options)
        flat["dataset_checksum"] = data_config.dataset_checksum(flat["dataset"])
        return cls.from_dict(flat)

    @classmethod
    def from_flags(cls, flags_obj) -> ResolvedConfig:
        """`resolve(RunConfig.from_flags(flags_obj))`: absl flags named as
        the `RunConfig` fields (`launch.train`'s)."""
        return cls.resolve(RunConfig.from_flags(flags_obj))

    def to_dict(self) -> dict:
        """The flat, JSON-ready form written as flags.json."""
        flat = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("data", "schedule", "loss_options")
        }
        flat.update(dataclasses.asdict(self.data))
        flat.pop("folder_index")  # where the run keeps it: its model_dir
        flat.update(dataclasses.asdict(self.schedule))
        flat.update({k: None for k in LOSS_OPTIONS})
        flat.update(self.loss_options)
        flat["schedule"] = [list(pair) for pair in self.schedule.schedule]
        flat["tau_grid"] = list(self.tau_grid)
        flat["dataset_dir"] = self.data.dataset_dir
        return flat

    @classmethod
    def from_dict(cls, flat: dict) -> ResolvedConfig:
        """Inverse of `to_dict`; unknown keys are ignored, missing defaulted."""

        def pick(klass):
            names = {f.name for f in dataclasses.fields(klass)}
            return {k: v for k, v in flat.items() if k in names}

        schedule = dict(pick(ScheduleConfig))
        schedule["schedule"] = tuple(
            (float(m), float(e)) for m, e in flat["schedule"]
        )
        run = pick(cls)
        for key in ("data", "schedule", "loss_options"):
            run.pop(key, None)
        run["tau_grid"] = tuple(float(t) for t in run.get("tau_grid", ()))
        if not run["tau_grid"]:
            run.pop("tau_grid")
        options = {k: flat[k] for k in LOSS_OPTIONS if flat.get(k) is not None}
        data = dict(
            pick(DataConfig),
            folder_index=_index_path(flat.get("model_dir", cls.model_dir)),
        )
        config = cls(
            data=DataConfig(**data),
            schedule=ScheduleConfig(**schedule),
            loss_options=options,
            **run,
        )
        return dataclasses.replace(config, **{
            key: os.path.join(config.model_dir, folder)
            for key, folder in resolve.OUTPUT_FOLDERS.items()
            if not getattr(config, key)
        })  # fmt: skip

    def replace(self, **changes) -> ResolvedConfig:
        """A copy with run, data or schedule fields changed by name."""
        data = {
            k: changes.pop(k)
            for k in list(changes)
            if k in {f.name for f in dataclasses.fields(DataConfig)}
        }
        if "model_dir" in changes:
            data.setdefault("folder_index", _index_path(changes["model_dir"]))
        config = dataclasses.replace(
            self, data=dataclasses.replace(self.data, **data)
        )
        return dataclasses.replace(config, **changes)

    def write(self, directory: str, options: RunConfig | None = None) -> None:
        """Writes flags.json (resolved) and flags.txt (a --flagfile of the
        options given, which repeats the run)."""
        lines = options.flag_lines() if options is not None else []
        outputs.write_text(
            os.path.join(directory, "flags.txt"), "\n".join(lines) + "\n"
        )
        outputs.write_json(
            os.path.join(directory, "flags.json"), self.to_dict()
        )

    @classmethod
    def read(cls, model_dir: str) -> ResolvedConfig:
        """The config of the launch.train run in `model_dir`.

        The run may have moved since it was written: `model_dir` is this
        one, and a `tb_log_dir` or `export_dir` that lay inside the
        recorded model_dir lies at the same place inside this one. (Its
        data's path is the recorded one: see `with_data`.)
        """
        path = os.path.join(model_dir, "flags.json")
        try:
            flat = outputs.read_json(path)
        except FileNotFoundError:
            raise RunError(
                f"{path} not found: --model_dir must be the model_dir of a "
                "launch.train run."
            ) from None
        except (OSError, ValueError) as e:
            raise RunError(f"{path} cannot be read: {e}") from e
        recorded = flat.get("model_dir")
        flat = dict(flat, model_dir=model_dir)
        for key in ("tb_log_dir", "export_dir"):
            flat[key] = resume_check.moved_path(
                flat.get(key), recorded, model_dir
            )
        return cls.from_dict(flat)

    def with_data(self, dataset: str | None = None) -> ResolvedConfig:
        """This run with its data checked, found at `dataset` if given.

        For the entry points that read a finished or moved run
        (`launch.evaluate`, `launch.export`): a `prepared:` file or
        `folder:` dataset is the run's wherever it lies if its checksum is
        the one the run recorded (`data_config.run_data_at`).

        Raises:
            RunError: `dataset` (or the recorded path) holds other
                data, or is another dataset than the run's (one line).
        """
        return self.replace(
            **data_config.run_data_at(self.model_dir, self.to_dict(), dataset)
        )

    def check_resume(self, has_checkpoint: bool) -> None:
        """Refuses to resume a run that computed something else.

        Every flag is compared with the run's flags.json except the
        result-neutral ones (`la_keras.runs.resume_check.RESULT_NEUTRAL`: paths,
        logging and checkpoint cadence, compilation); `--extend` also lets
        `--epochs` grow on the same schedule (`resume_check.extends`). A
        `prepared:` file or `folder:` dataset is compared by its checksum,
        not its path (a moved run resumes). Checkpoints of the other
        backend are refused rather than trained over from step 0
        (`resume_check.foreign_checkpoints`).

        Raises:
            RunError: one line naming each changed flag, old -> new.
        """
        if not has_checkpoint:
            refusal = resume_check.foreign_checkpoints(self.model_dir)
            if refusal:
                raise RunError(refusal)
        path = os.path.join(self.model_dir, "flags.json")
        if not has_checkpoint or not outputs.exists(path):
            return  # a new run, or checkpoints whose flags.json was removed
        previous = ResolvedConfig.read(self.model_dir).to_dict()
        current = self.to_dict()
        changed = resume_check.changed_fields(
            previous, current, loss_uses_tau="tau" in self.loss_kwargs()
        )
        if self.extend and resume_check.extends(previous, current):
            changed.pop("epochs", None)
            changed.pop("schedule", None)
        if changed:
            raise RunError(
                resume_check.refusal(
                    self.model_dir, changed, previous, self.extend
                )
            )


def _index_path(model_dir: str) -> str | None:
    """Where a run keeps its folder dataset's index: its local model_dir."""
    if "://" in model_dir:
        return None  # a remote model_dir: the index is rebuilt each start
    return os.path.join(model_dir, FOLDER_INDEX)
