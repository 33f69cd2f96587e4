"""Parameters of the argmax post-processor (a single, parameter-free set)."""

from __future__ import annotations

import attr

from .post_processor_parameters import PostProcessorParameters


@attr.s(frozen=True)
class ArgmaxPostProcessorParameters(PostProcessorParameters):
    """Argmax has nothing to sweep: one parameter set, ``id=0``."""
