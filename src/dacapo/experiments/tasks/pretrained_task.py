"""Pretrained task: a sub-task whose model is initialised from saved weights."""

from __future__ import annotations

import torch

from ..packages import is_package, load_package_state, standalone_kwargs
from .task import Task


class PretrainedTask(Task):
    """Wraps a sub-task (same channels, parts and sweep); ``create_model`` loads weights."""

    def __init__(self, task_config) -> None:
        super().__init__(task_config)
        self.sub_task = task_config.sub_task_config.build()
        self.weights = task_config.weights
        self.predictor = self.sub_task.predictor
        self.loss = self.sub_task.loss
        self.post_processor = self.sub_task.post_processor
        self.evaluator = self.sub_task.evaluator

    def create_model(self, architecture):
        """The sub-task's model with its state dict loaded from ``weights`` (on the CPU): a
        state dict, a checkpoint or a bioimage.io package of `dacapo export` (whose
        architecture arguments and channels must equal this run's)."""
        model = self.sub_task.create_model(architecture)
        if not self.weights.is_file():
            raise FileNotFoundError(f"weights: file not found: {self.weights}")
        if is_package(self.weights):  # a bioimage.io package written by `dacapo export`
            channels = list(self.sub_task.predictor.output_array_type.channels)
            state = load_package_state(self.weights, standalone_kwargs(model), channels)
        else:
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        if not isinstance(state, dict):
            raise ValueError(f"weights: {self.weights} does not hold a state dict")
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        mismatched = [
            f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
            for k, v in expected.items()
            if k in state and tuple(state[k].shape) != tuple(v.shape)
        ]
        if missing or unexpected or mismatched:
            details = []
            if missing:
                details.append(f"missing {missing[:5]}")
            if unexpected:
                details.append(f"unexpected {unexpected[:5]}")
            if mismatched:
                details.append(f"shape mismatch {mismatched[:5]}")
            raise ValueError(
                f"weights: {self.weights} does not fit architecture "
                f"{architecture.name!r} with task {self.sub_task.name!r}: " + "; ".join(details)
            )
        model.load_state_dict(state)
        return model
