"""What kind of array a predictor outputs (used to pick post-processing and interpolation)."""

from __future__ import annotations

import attr


@attr.s(frozen=True, auto_attribs=True)
class ArrayType:
    """Description of a model output or segmentation array.

    kind: "distance" (tanh-normalised signed distances), "probability", "affinities",
    "embedding", "labels" (instance ids), "mask" (binary per channel) or "classes".
    """

    kind: str
    channels: tuple[str, ...]
    interpolatable: bool = True

    @property
    def num_channels(self) -> int:
        return len(self.channels)
