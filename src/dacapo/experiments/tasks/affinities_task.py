"""Affinities task: affinities (+ LSDs) -> mutex watershed sweep -> instance evaluation."""

from __future__ import annotations

from .evaluators import InstanceEvaluator
from .losses import AffinitiesLoss
from .post_processors import WatershedPostProcessor
from .predictors import AffinitiesPredictor
from .task import Task


class AffinitiesTask(Task):
    """Predicts voxel affinities (and optionally LSDs); segments instances with a mutex
    watershed over a bias sweep."""

    def __init__(self, task_config) -> None:
        super().__init__(task_config)
        self.predictor = AffinitiesPredictor(
            neighborhood=task_config.neighborhood,
            lsds=task_config.lsds,
            num_lsd_voxels=task_config.num_lsd_voxels,
            downsample_lsds=task_config.downsample_lsds,
            affs_weight_clipmin=task_config.affs_weight_clipmin,
            affs_weight_clipmax=task_config.affs_weight_clipmax,
            lsd_weight_clipmin=task_config.lsd_weight_clipmin,
            lsd_weight_clipmax=task_config.lsd_weight_clipmax,
            background_as_object=task_config.background_as_object,
        )
        self.loss = AffinitiesLoss(
            num_affinities=len(task_config.neighborhood),
            lsds_to_affs_weight_ratio=task_config.lsds_to_affs_weight_ratio,
        )
        self.post_processor = WatershedPostProcessor(
            offsets=task_config.neighborhood, min_size=task_config.min_fragment_sizes
        )
        self.evaluator = InstanceEvaluator()
