"""Dummy post-processor (tests): first channel > detection threshold, sweep over min_size."""

from __future__ import annotations

import numpy as np

from .dummy_post_processor_parameters import DummyPostProcessorParameters
from .post_processor import BlockwisePostProcessor


class DummyPostProcessor(BlockwisePostProcessor):
    """``prediction[0] > detection_threshold``; ``min_size`` (1..5) is swept but only
    recorded (it does not change the output)."""

    def __init__(self, detection_threshold: float) -> None:
        self.detection_threshold = detection_threshold

    def enumerate_parameters(self):
        for i, min_size in enumerate(range(1, 6)):
            yield DummyPostProcessorParameters(id=i, min_size=min_size)

    def process_block(self, prediction: np.ndarray, parameters) -> np.ndarray:
        return (prediction[0] > self.detection_threshold).astype(np.uint8)
