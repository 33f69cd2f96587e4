"""Parameters of the agglomeration post-processor."""

from __future__ import annotations

import attr

from .post_processor_parameters import PostProcessorParameters


@attr.s(frozen=True)
class AgglomerationPostProcessorParameters(PostProcessorParameters):
    """Cut of the agglomeration: fragments joined where the merge score (1 - quantile
    affinity, recomputed as regions grow) is below ``threshold``."""

    threshold: float = attr.ib(default=0.5, converter=float)
