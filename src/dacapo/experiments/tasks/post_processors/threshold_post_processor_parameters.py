"""Parameters of the threshold post-processor."""

from __future__ import annotations

import attr

from .post_processor_parameters import PostProcessorParameters


@attr.s(frozen=True)
class ThresholdPostProcessorParameters(PostProcessorParameters):
    """Foreground where ``prediction > threshold`` (same threshold for every channel)."""

    threshold: float = attr.ib(default=0.0, converter=float)
