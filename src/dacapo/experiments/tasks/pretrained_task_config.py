"""Config of a task that starts from saved weights."""

from __future__ import annotations

from pathlib import Path

import attr

from .pretrained_task import PretrainedTask
from .task_config import GTRules, TaskConfig


@attr.s
class PretrainedTaskConfig(TaskConfig):
    """A sub-task whose model starts from a saved state dict (``weights``)."""

    task_type = PretrainedTask

    sub_task_config: TaskConfig = attr.ib(
        metadata={"help_text": "The task to fine-tune (its targets, loss, sweep and evaluation)."}
    )
    weights: Path = attr.ib(
        converter=Path,
        metadata={"help_text": "What to start from: a saved state dict (torch.save), a dacapo "
                               "checkpoint (.pt) or a bioimage.io package (.zip) of `dacapo export`."},
    )

    def gt_rules(self) -> GTRules:
        return self.sub_task_config.gt_rules()

    def _problems(self) -> list[str]:
        problems = []
        if not isinstance(self.sub_task_config, TaskConfig):
            problems.append("sub_task_config: must be a task config")
        else:
            ok, reason = self.sub_task_config.verify()
            if not ok:
                problems.append(f"sub_task_config: {reason}")
        if not self.weights.is_file():
            problems.append(f"weights: file not found: {self.weights}")
        return problems
