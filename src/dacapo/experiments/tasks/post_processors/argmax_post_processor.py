"""Argmax post-processor: class id = index of the largest channel per voxel.

Output: class ids without a channel axis, uint8 (uint16 for more than 256 classes); ties go
to the lowest class id (``numpy.argmax``). One parameter set (``ArgmaxPostProcessorParameters
(id=0)``). Voxel-wise, so blocks need no context.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from funlib.persistence import Array

from dacapo.io.arrays import open_array

from .argmax_post_processor_parameters import ArgmaxPostProcessorParameters
from .post_processor import BlockwisePostProcessor


def class_id_dtype(num_classes: int) -> np.dtype:
    """uint8 for ids 0..255, uint16 above."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16)


class ArgmaxPostProcessor(BlockwisePostProcessor):
    """Per-voxel argmax over the prediction channels."""

    def enumerate_parameters(self) -> Iterator[ArgmaxPostProcessorParameters]:
        yield ArgmaxPostProcessorParameters(id=0)

    def _num_classes(self) -> int:
        if self.prediction is None:
            raise ValueError("post-processor: call set_prediction() before process()")
        prediction = open_array(self.prediction, "prediction")
        return prediction.shape[0] if prediction.channel_dims else 1

    def output_dtype(self, parameters) -> np.dtype:
        return class_id_dtype(self._num_classes())

    def output_channels(self, prediction: Array, parameters) -> None:
        return None

    def process_block(self, prediction: np.ndarray, parameters) -> np.ndarray:
        return np.argmax(prediction, axis=0).astype(class_id_dtype(prediction.shape[0]))
