"""Parameters of the dummy post-processor."""

from __future__ import annotations

import attr

from .post_processor_parameters import PostProcessorParameters


@attr.s(frozen=True)
class DummyPostProcessorParameters(PostProcessorParameters):
    """A threshold offset added to the detection threshold."""

    min_size: int = attr.ib()
