"""Affinities task: affinities (+ LSDs) -> mutex watershed (bias sweep) or fragments +
agglomeration (threshold sweep) -> instance evaluation."""

from __future__ import annotations

from .evaluators import InstanceEvaluator
from .losses import AffinitiesLoss
from .post_processors import AgglomerationPostProcessor, WatershedPostProcessor
from .predictors import AffinitiesPredictor
from .task import Task


class AffinitiesTask(Task):
    """Predicts voxel affinities (and optionally LSDs); segments instances with the
    config's ``post_processor``."""

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
        if task_config.post_processor == "agglomeration":
            self.post_processor = AgglomerationPostProcessor(
                offsets=task_config.neighborhood,
                thresholds=task_config.agglomeration_thresholds,
                quantile=task_config.agglomeration_quantile,
                seed_distance=task_config.fragments_seed_distance,
                db_url=task_config.agglomeration_db_url,
            )
        else:
            self.post_processor = WatershedPostProcessor(
                offsets=task_config.neighborhood,
                biases=task_config.mws_biases,
                min_size=task_config.min_fragment_sizes,
                long_range_bias_offset=task_config.mws_long_range_bias_offset,
            )
        self.evaluator = InstanceEvaluator()
