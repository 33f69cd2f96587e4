"""Parameters of the distance-instances post-processor."""

from __future__ import annotations

import attr

from .post_processor_parameters import PostProcessorParameters


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


@attr.s(frozen=True)
class DistanceInstancesPostProcessorParameters(PostProcessorParameters):
    """Foreground ``prediction > threshold``; seeds where ``prediction > seed_threshold``
    (h-maxima of height ``h`` among them unless ``h`` is None), joined within
    ``min_seed_distance`` (world units); objects smaller than ``min_size`` voxels are
    removed. See `dacapo.ops.distance_instances`."""

    threshold: float = attr.ib(converter=float)
    seed_threshold: float = attr.ib(converter=float)
    h: float | None = attr.ib(default=None, converter=_optional_float)
    min_seed_distance: float = attr.ib(default=0.0, converter=float)
    min_size: int = attr.ib(default=0, converter=int)
