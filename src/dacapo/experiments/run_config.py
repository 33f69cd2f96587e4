"""A run: task + architecture + data + trainer settings + schedule, as one YAML file.

``RunConfig.problems()`` checks everything a run needs before it starts (task and
architecture verify, the model builds and its output shape fits the data, arrays open
and fit together, trainer values in range) and returns one reason per problem.

Relative array paths are taken relative to the current directory; ``dacapo train``
stores them absolute in the run directory's ``run.yaml``.
"""

from __future__ import annotations

import attr
from funlib.geometry import Coordinate

from dacapo.augment import AugmentConfig
from dacapo.checks import run_data_problems
from dacapo.experiments.architectures import ArchitectureConfig
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.tasks import TaskConfig
from dacapo.store.converter import register


@attr.s
class TrainerConfig:
    """How batches are made and the model is optimised."""

    batch_size: int = attr.ib(default=1, metadata={"help_text": "Crops per training batch."})
    learning_rate: float = attr.ib(default=1e-4, metadata={"help_text": "Optimizer step size."})
    optimizer: str = attr.ib(default="adam", metadata={"help_text": "'adam' or 'adamw'."})
    weight_decay: float = attr.ib(
        default=0.0, metadata={"help_text": "Weight decay (decoupled for adamw)."}
    )
    num_data_workers: int = attr.ib(
        default=1,
        metadata={"help_text": "Background processes preparing batches (0: in the main process)."},
    )
    torch_threads: int = attr.ib(
        default=0,
        metadata={"help_text": "Torch threads of the training process (0: torch's default, "
                               "all cores); cores minus num_data_workers is faster when "
                               "preparing a batch costs more than a model step."},
    )
    min_masked: float = attr.ib(
        default=0.0,
        metadata={"help_text": "Reject crops whose output region is less than this fraction "
                               "labelled (mask > 0 and inside the GT)."},
    )
    min_foreground: float = attr.ib(
        default=0.0,
        metadata={"help_text": "Reject crops whose output region has less than this fraction "
                               "of non-zero GT."},
    )
    augment: AugmentConfig = attr.ib(
        factory=AugmentConfig, metadata={"help_text": "Augmentations (see dacapo.augment)."}
    )

    def problems(self) -> list[str]:
        out = []
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            out.append(f"trainer.batch_size: must be an integer >= 1, got {self.batch_size!r}")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            out.append(f"trainer.learning_rate: must be > 0, got {self.learning_rate!r}")
        if self.optimizer not in ("adam", "adamw"):
            out.append(f"trainer.optimizer: must be 'adam' or 'adamw', got {self.optimizer!r}")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            out.append(f"trainer.weight_decay: must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.num_data_workers, int) or self.num_data_workers < 0:
            out.append(f"trainer.num_data_workers: must be >= 0, got {self.num_data_workers!r}")
        if not isinstance(self.torch_threads, int) or self.torch_threads < 0:
            out.append(f"trainer.torch_threads: must be >= 0, got {self.torch_threads!r}")
        for name in ("min_masked", "min_foreground"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                out.append(f"trainer.{name}: must lie in [0, 1], got {v!r}")
        return out + self.augment.problems()


@attr.s
class RunConfig:
    """Everything one training run needs; stored as ``run.yaml`` in its run directory."""

    name: str = attr.ib(metadata={"help_text": "Run name = folder name under the runs root."})
    task_config: TaskConfig = attr.ib(metadata={"help_text": "What to learn."})
    architecture_config: ArchitectureConfig = attr.ib(metadata={"help_text": "The network."})
    datasplit_config: DataSplitConfig = attr.ib(metadata={"help_text": "Train/validate data."})
    trainer_config: TrainerConfig = attr.ib(
        factory=TrainerConfig, metadata={"help_text": "Batches and optimiser."}
    )
    num_iterations: int = attr.ib(default=1000, metadata={"help_text": "Training iterations."})
    validation_interval: int = attr.ib(
        default=500, metadata={"help_text": "Validate every N iterations (0: never)."}
    )
    checkpoint_interval: int = attr.ib(
        default=100, metadata={"help_text": "Save a checkpoint every N iterations."}
    )
    snapshot_interval: int = attr.ib(
        default=0, metadata={"help_text": "Write a snapshot zarr every N iterations (0: never)."}
    )
    seed: int = attr.ib(default=0, metadata={"help_text": "Seed of weights and crops."})
    num_workers: int = attr.ib(
        default=0,
        metadata={"help_text": "Blockwise workers for validation (0: predict in the training "
                               "process with the live model, no worker start-up)."},
    )
    device: str | None = attr.ib(
        default=None, metadata={"help_text": "torch device; default cuda if available, else cpu."}
    )

    def _schedule_problems(self) -> list[str]:
        out = []
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            out.append(f"name: must be a non-empty string without '/', got {self.name!r}")
        for field, minimum in (
            ("num_iterations", 1),
            ("validation_interval", 0),
            ("checkpoint_interval", 1),
            ("snapshot_interval", 0),
            ("num_workers", 0),
        ):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                out.append(f"{field}: must be an integer >= {minimum}, got {v!r}")
        return out

    def problems(self, check_data: bool = True, strict_task: bool = True) -> list[str]:
        """Reasons this run cannot start (empty: fine).

        ``strict_task=False`` accepts a task whose ``verify()`` fails but which builds
        (the Dummy task, for tests).
        """
        problems = self._schedule_problems()
        if not isinstance(self.task_config, TaskConfig):
            return problems + ["task_config: must be a task config"]
        ok, reason = self.task_config.verify()
        if not ok and strict_task:
            problems.append(f"task_config ({type(self.task_config).__name__}): {reason}")
        arch_ok, arch_reason = self.architecture_config.verify()
        if not arch_ok:
            problems.append(f"architecture_config: {arch_reason}")
        problems += self.trainer_config.problems()
        model = None
        if arch_ok and (ok or not strict_task):
            try:
                model = self.task_config.build().create_model(self.architecture_config)
                model_shape_problems(model)
            except Exception as e:  # noqa: BLE001 - any failure to build is a config problem
                problems.append(f"model: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                model = None
        if check_data:
            scale = None if model is None else model.scale
            problems += self.datasplit_config.problems(scale)
            if model is not None and not problems:
                problems += run_data_problems(self) or data_fits_model(self.datasplit_config, model)
        return problems

    def verify(self, check_data: bool = True) -> tuple[bool, str]:
        problems = self.problems(check_data)
        return (not problems, "; ".join(problems) if problems else "valid")


def model_shape_problems(model) -> None:
    """Raise ValueError if the model's output is empty or not centred on the input."""
    in_shape = Coordinate(model.input_shape)
    _, out_shape = model.compute_output_shape(in_shape)
    if any(s < 1 for s in out_shape):
        raise ValueError(f"input_shape {tuple(in_shape)} gives an empty output {tuple(out_shape)}")


def data_fits_model(split: DataSplitConfig, model) -> list[str]:
    """Channel count and size checks of the training data against the model."""
    problems = []
    _, out_shape = model.compute_output_shape(model.input_shape)
    for d in split.train:
        ds = d.open()
        if ds.num_raw_channels != model.num_in_channels:
            problems.append(
                f"dataset {d.name!r}: raw has {ds.num_raw_channels} channel(s), the model "
                f"expects {model.num_in_channels}"
            )
        out_size = Coordinate(out_shape) * model.scale(ds.raw.voxel_size)
        roi = ds.training_roi
        if any(s < o for s, o in zip(roi.shape, out_size)):
            problems.append(
                f"dataset {d.name!r}: labelled region {tuple(roi.shape)} (world units) is "
                f"smaller than the model output {tuple(out_size)}"
            )
    for d in split.validate:
        ds = d.open()
        if ds.num_raw_channels != model.num_in_channels:
            problems.append(
                f"dataset {d.name!r}: raw has {ds.num_raw_channels} channel(s), the model "
                f"expects {model.num_in_channels}"
            )
    return problems


for _cls in (AugmentConfig, TrainerConfig, DatasetConfig, DataSplitConfig, RunConfig):
    register(_cls)
