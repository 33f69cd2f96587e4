"""World-unit geometry of models and blocks on a voxel grid (funlib `Roi`/`Coordinate`).

- `ModelGeometry`: input/output sizes of a model on a dataset's voxel grid and the context
  (``(input − output) / 2`` per side) a valid-padding UNet needs;
- `snap_roi`: the largest ROI inside a ROI on a voxel grid;
- `crop`: the part of a numpy array (covering a ROI) inside another ROI;
- `block_rois`: a grid of blocks over a ROI (blocks at the far end overhang);
- `prediction_roi`: what a model predicts of a raw ROI: all of it when the context beyond
  the raw is padded (``reflect``/``zero``), the raw shrunk by the context with ``none``.
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo.errors import InputError


class ModelGeometry:
    """Input/output shapes of a model on a dataset's voxel grid (world units)."""

    def __init__(self, model, raw_voxel_size: Coordinate, input_shape: Coordinate | None = None):
        self.input_shape = Coordinate(input_shape if input_shape is not None else model.input_shape)
        _, self.output_shape = model.compute_output_shape(self.input_shape)
        self.voxel_size = Coordinate(raw_voxel_size)
        self.output_voxel_size = Coordinate(model.scale(self.voxel_size))
        self.input_size = self.input_shape * self.voxel_size
        self.output_size = Coordinate(self.output_shape) * self.output_voxel_size
        diff = self.input_size - self.output_size
        if any(d < 0 or d % 2 or (d // 2) % v for d, v in zip(diff, self.voxel_size)):
            raise ValueError(
                f"model: input {tuple(self.input_size)} and output {tuple(self.output_size)} "
                "(world units) are not centred on each other"
            )
        self.context = diff / 2


def snap_roi(roi: Roi, voxel_size: Coordinate) -> Roi:
    """Largest ROI inside ``roi`` on the ``voxel_size`` grid (begin rounded up, end down)."""
    begin = Coordinate(math.ceil(b / v) * v for b, v in zip(roi.begin, voxel_size))
    end = Coordinate(math.floor(e / v) * v for e, v in zip(roi.end, voxel_size))
    return Roi(begin, Coordinate(max(0, e - b) for b, e in zip(begin, end)))


def crop(data: np.ndarray, data_roi: Roi, roi: Roi, voxel_size: Coordinate) -> np.ndarray:
    """The part of ``data`` (covering ``data_roi``) inside ``roi`` (trailing spatial axes)."""
    begin = (roi.begin - data_roi.begin) / voxel_size
    shape = roi.shape / voxel_size
    lead = (slice(None),) * (data.ndim - voxel_size.dims)
    return data[lead + tuple(slice(b, b + s) for b, s in zip(begin, shape))]


def block_rois(roi: Roi, block_size: Coordinate) -> list[Roi]:
    """Write ROIs of the block grid over ``roi`` (blocks at the far end overhang)."""
    steps = [range(b, e, s) for b, e, s in zip(roi.begin, roi.end, block_size)]
    return [Roi(Coordinate(begin), block_size) for begin in product(*steps)]


def prediction_roi(raw_roi: Roi, geometry: ModelGeometry, roi: Roi | None = None,
                   padding: str = "none") -> Roi:
    """The ROI to predict, on the output grid: ``raw_roi`` (∩ ``roi``) when the context
    beyond the raw is padded; with ``padding="none"`` only where the model sees real
    context, ``raw_roi`` shrunk by the context on each side."""
    out = raw_roi if padding != "none" else raw_roi.grow(-geometry.context, -geometry.context)
    if roi is not None:
        out = out.intersect(roi)
    out = snap_roi(out, geometry.output_voxel_size)
    if out.empty or any(s <= 0 for s in out.shape):
        if padding != "none":
            raise InputError(f"raw ROI {raw_roi} does not overlap the requested ROI {roi}")
        raise InputError(
            f"raw ROI {raw_roi} is too small for the model: it needs a context of "
            f"{tuple(geometry.context)} (world units) on each side (or predict with padding)"
        )
    return out
