"""Threshold post-processor: per channel ``prediction > threshold`` over a threshold sweep.

Output: uint8, with a channel axis of C channels (none when C = 1), channel i =
``prediction[channel_offset + i] > threshold``; C = ``num_channels`` or, if None, every
prediction channel from ``channel_offset`` on (HotDistance thresholds only its second half,
the distance channels). Voxel-wise, so blocks need no context.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from funlib.persistence import Array

from .post_processor import BlockwisePostProcessor
from .threshold_post_processor_parameters import ThresholdPostProcessorParameters


class ThresholdPostProcessor(BlockwisePostProcessor):
    """Thresholds C prediction channels at each of ``thresholds`` (one parameter each)."""

    def __init__(
        self,
        thresholds: Sequence[float],
        channel_offset: int = 0,
        num_channels: int | None = None,
    ) -> None:
        thresholds = [float(t) for t in thresholds]
        if not thresholds:
            raise ValueError("ThresholdPostProcessor: thresholds must not be empty")
        if len(set(thresholds)) != len(thresholds):
            raise ValueError(f"ThresholdPostProcessor: duplicate thresholds in {thresholds}")
        if channel_offset < 0:
            raise ValueError(f"ThresholdPostProcessor: channel_offset must be >= 0, got {channel_offset}")
        if num_channels is not None and num_channels < 1:
            raise ValueError(f"ThresholdPostProcessor: num_channels must be >= 1, got {num_channels}")
        self.thresholds = thresholds
        self.channel_offset = int(channel_offset)
        self.num_channels = num_channels

    def enumerate_parameters(self) -> Iterator[ThresholdPostProcessorParameters]:
        for i, threshold in enumerate(self.thresholds):
            yield ThresholdPostProcessorParameters(id=i, threshold=threshold)

    def _channels(self, available: int) -> int:
        """Number of output channels given ``available`` prediction channels."""
        num = available - self.channel_offset if self.num_channels is None else self.num_channels
        if num < 1 or self.channel_offset + num > available:
            raise ValueError(
                f"prediction: {available} channel(s), but thresholding needs channels "
                f"{self.channel_offset}..{self.channel_offset + max(num, 1) - 1}"
            )
        return num

    def output_channels(self, prediction: Array, parameters) -> int:
        available = prediction.shape[0] if prediction.channel_dims else 1
        return self._channels(available)

    def process_block(
        self, prediction: np.ndarray, parameters: ThresholdPostProcessorParameters
    ) -> np.ndarray:
        num = self._channels(prediction.shape[0])
        channels = prediction[self.channel_offset : self.channel_offset + num]
        return (channels > parameters.threshold).astype(np.uint8)
