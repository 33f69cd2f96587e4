"""Tasks: how to learn a segmentation (predictor, loss, post-processor, evaluator)."""

from . import evaluators, losses, post_processors, predictors  # noqa: F401
from .affinities_task import AffinitiesTask
from .affinities_task_config import AffinitiesTaskConfig
from .distance_task import DistanceTask
from .distance_task_config import DistanceTaskConfig
from .dummy_task import DummyTask
from .dummy_task_config import DummyTaskConfig
from .hot_distance_task import HotDistanceTask
from .hot_distance_task_config import HotDistanceTaskConfig
from .inner_distance_task import InnerDistanceTask
from .inner_distance_task_config import InnerDistanceTaskConfig
from .one_hot_task import OneHotTask
from .one_hot_task_config import OneHotTaskConfig
from .pretrained_task import PretrainedTask
from .pretrained_task_config import PretrainedTaskConfig
from .task import Task
from .task_config import TaskConfig

__all__ = [
    "AffinitiesTask",
    "AffinitiesTaskConfig",
    "DistanceTask",
    "DistanceTaskConfig",
    "DummyTask",
    "DummyTaskConfig",
    "HotDistanceTask",
    "HotDistanceTaskConfig",
    "InnerDistanceTask",
    "InnerDistanceTaskConfig",
    "OneHotTask",
    "OneHotTaskConfig",
    "PretrainedTask",
    "PretrainedTaskConfig",
    "Task",
    "TaskConfig",
]
