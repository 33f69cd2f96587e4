"""A run: task + architecture + data + trainer settings + schedule, as one YAML file.

``RunConfig.problems()`` checks the config itself (task and architecture verify, trainer
and schedule values in range); it builds no model and opens no data. `dacapo.runs.verify`
adds the model and data checks a run needs before it starts.

Relative array paths are taken relative to the current directory; ``dacapo train``
stores them absolute in the run directory's ``run.yaml``.
"""

from __future__ import annotations

import attr

from dacapo.experiments.architectures import ArchitectureConfig
from dacapo.experiments.datasplits import DataSplitConfig
from dacapo.experiments.normalization import NormalizationConfig
from dacapo.experiments.tasks import TaskConfig
from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.experiments.tta import problems as tta_problems
from dacapo.io.config_yaml import register


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
    normalization: NormalizationConfig | None = attr.ib(
        default=None,
        metadata={"help_text": "Raw intensity normalisation (dacapo.experiments.normalization): "
                               "statistics of the training raw, computed when training starts "
                               "and stored in run.yaml, or (statistics: each_array) each "
                               "array's own; none: integers / dtype maximum (runs made before "
                               "it; `dacapo plan` writes percentiles)."},
    )
    test_time_flips: bool = attr.ib(
        default=False,
        metadata={"help_text": "Validate and apply with the mean over in-plane flips of the "
                               "input (4 passes; affinity channels mapped to their offsets, "
                               "not with LSDs; dacapo.experiments.tta)."},
    )
    num_workers: int = attr.ib(
        default=0,
        metadata={"help_text": "Blockwise workers for validation (0: predict in the training "
                               "process with the live model, no worker start-up)."},
    )
    device: str | None = attr.ib(
        default=None, metadata={"help_text": "torch device; default cuda if available, else cpu."}
    )
    padding: str = attr.ib(
        default="reflect",
        metadata={"help_text": "Context beyond the raw when predicting (validate, apply): "
                               "'reflect' (mirror the raw; every voxel of the GT / raw is "
                               "predicted), 'zero', or 'none' (predict only where the model "
                               "sees real context: the raw shrunk by the model's context)."},
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

    def problems(self, strict_task: bool = True) -> list[str]:
        """Reasons this config is invalid, without building the model or opening data
        (empty: fine). ``strict_task=False`` accepts a task whose ``verify()`` fails (the
        Dummy task, for tests)."""
        problems = self._schedule_problems()
        if not isinstance(self.task_config, TaskConfig):
            return problems + ["task_config: must be a task config"]
        ok, reason = self.task_config.verify()
        if not ok and strict_task:
            problems.append(f"task_config ({type(self.task_config).__name__}): {reason}")
        arch_ok, arch_reason = self.architecture_config.verify()
        if not arch_ok:
            problems.append(f"architecture_config: {arch_reason}")
        if self.padding not in ("reflect", "zero", "none"):
            problems.append(f"padding: must be 'reflect', 'zero' or 'none', got {self.padding!r}")
        if self.normalization is not None:
            problems += self.normalization.problems()
        problems += tta_problems(self)
        return problems + self.trainer_config.problems() + self.datasplit_config.problems()


register(RunConfig)
