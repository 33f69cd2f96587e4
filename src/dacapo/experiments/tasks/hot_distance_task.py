"""Hot-distance task: binary + distance prediction; the distance channels are thresholded
(binary evaluation) or segmented into instances (binary + instance evaluation)."""

from __future__ import annotations

from .distance_post_processing import build_post_processing
from .losses import HotDistanceLoss
from .per_class_post_processing import distance_per_class
from .predictors import HotDistancePredictor
from .task import Task

#: Default threshold sweep on the tanh-normalised signed distances: the boundary (0) moves
#: by scale_factor x atanh(t), so the grid is fine around 0 (steps 0.05) and coarser out to
#: +-0.5.
HOT_DISTANCE_THRESHOLDS = (-0.5, -0.3, -0.15, -0.05, 0.0, 0.05, 0.15, 0.3, 0.5)


class HotDistanceTask(Task):
    """Combines binary ("hot") and distance prediction.

    The model outputs 2C channels; post-processing uses the C distance channels (the second
    half), so post-processing and evaluation see C channels.
    """

    def __init__(self, task_config) -> None:
        super().__init__(task_config)
        channels = list(task_config.channels)
        self.predictor = HotDistancePredictor(
            channels=channels,
            scale_factor=task_config.scale_factor,
            mask_distances=task_config.mask_distances,
            kernel_size=task_config.kernel_size,
            clipmin=task_config.clipmin,
            clipmax=task_config.clipmax,
        )
        self.loss = HotDistanceLoss()
        if task_config.instance_classes is not None:  # per class, CellMap scores
            self.post_processor, self.evaluator = distance_per_class(
                task_config, channel_offset=len(channels))
        else:
            self.post_processor, self.evaluator = build_post_processing(
                task_config, channel_offset=len(channels), num_channels=len(channels)
            )
