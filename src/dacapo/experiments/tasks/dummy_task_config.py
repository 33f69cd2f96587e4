"""Config of the dummy task (tests only)."""

from __future__ import annotations

import attr

from .dummy_task import DummyTask
from .task_config import GTRules, TaskConfig


@attr.s
class DummyTaskConfig(TaskConfig):
    """A task for tests: its attributes have no particular meaning.

    ``verify()`` always returns ``(False, ...)``: a dummy task is not a real task.
    """

    task_type = DummyTask

    embedding_dims: int = attr.ib(
        default=2, metadata={"help_text": "Output channels of the dummy model head."}
    )
    detection_threshold: float = attr.ib(
        default=0.7, metadata={"help_text": "Threshold of the dummy post-processor."}
    )

    def gt_rules(self) -> GTRules:
        """Nothing: the dummy task reads no GT values."""
        return GTRules(scan=False)

    def _problems(self) -> list[str]:
        problems = []
        if not isinstance(self.embedding_dims, int) or self.embedding_dims < 1:
            problems.append(f"embedding_dims: must be an integer >= 1, got {self.embedding_dims!r}")
        return problems

    def verify(self) -> tuple[bool, str]:
        problems = self.problems()
        return False, "; ".join(problems + ["DummyTaskConfig is for tests only"])
