"""Post-processors: prediction -> segmentation over a parameter sweep."""

from .agglomeration_post_processor import AgglomerationPostProcessor
from .agglomeration_post_processor_parameters import AgglomerationPostProcessorParameters
from .argmax_post_processor import ArgmaxPostProcessor
from .argmax_post_processor_parameters import ArgmaxPostProcessorParameters
from .distance_instances_post_processor import DistanceInstancesPostProcessor
from .distance_instances_post_processor_parameters import (
    DistanceInstancesPostProcessorParameters,
)
from .dummy_post_processor import DummyPostProcessor
from .dummy_post_processor_parameters import DummyPostProcessorParameters
from .per_class_post_processor import PerClassPostProcessor
from .per_class_post_processor_parameters import ClassSetting, PerClassPostProcessorParameters
from .post_processor import PostProcessor
from .post_processor_parameters import PostProcessorParameters
from .threshold_post_processor import ThresholdPostProcessor
from .threshold_post_processor_parameters import ThresholdPostProcessorParameters
from .watershed_post_processor import WatershedPostProcessor
from .watershed_post_processor_parameters import WatershedPostProcessorParameters

__all__ = [
    "AgglomerationPostProcessor",
    "AgglomerationPostProcessorParameters",
    "ArgmaxPostProcessor",
    "ArgmaxPostProcessorParameters",
    "ClassSetting",
    "DistanceInstancesPostProcessor",
    "DistanceInstancesPostProcessorParameters",
    "DummyPostProcessor",
    "DummyPostProcessorParameters",
    "PerClassPostProcessor",
    "PerClassPostProcessorParameters",
    "PostProcessor",
    "PostProcessorParameters",
    "ThresholdPostProcessor",
    "ThresholdPostProcessorParameters",
    "WatershedPostProcessor",
    "WatershedPostProcessorParameters",
]
