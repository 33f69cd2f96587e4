"""Parameters of the watershed post-processor."""

from __future__ import annotations

import attr

from .post_processor_parameters import PostProcessorParameters


@attr.s(frozen=True)
class WatershedPostProcessorParameters(PostProcessorParameters):
    """Mutex watershed on ``affinities - bias``; fragments with fewer than ``min_size``
    voxels are removed (set to 0)."""

    bias: float = attr.ib(default=0.5, converter=float)
    min_size: int = attr.ib(default=0, converter=int)
