"""Signed-distance predictor: GT masks -> tanh-normalised signed boundary distances.

Target, per channel: ``tanh(d / scale_factor)`` with ``d`` the exact signed
distance (world units) from each voxel centre to the nearest face between voxels inside
(GT > 0) and outside, ``+`` inside (`dacapo.ops.distances.signed_distance`); a channel
without boundary in the crop gets ``±`` half the smallest crop extent.

Weight: class balancing of inside/outside per channel within the mask
(`dacapo.ops.balance.balance_weights`, ``moving_class_counts`` of shape ``(C, 2)``); with
``mask_distances`` also 0 where the target is unknowable from the crop
(`dacapo.ops.distances.knowable_mask`). A mask (``(*spatial)``, ``(1, *spatial)`` or
``(C, *spatial)``, nonzero = labelled) zeroes the weight of unlabelled voxels.

GT layouts: see `dacapo.ops.channels.gt_to_channels`.

Padding: ``ceil(CONTEXT · scale_factor / s_k) · s_k`` per axis (world units), with
``CONTEXT = 2.76`` (tanh(2.76) ≈ 0.992, as in DaCapo): every target with ``|target| <
0.992`` at the output ROI is exact, and the crop edge never masks output voxels.

Eval activation: none (the head output is compared with tanh targets directly).

Partial annotations (`PartialChannelsPredictor`, from ``for_crop``; see `Annotation`): the
channel of an unannotated class gets weight 0 in the whole crop (its class counts are not
updated either); an annotated channel is learnt as usual, the voxels of other classes and
``unknown_label`` voxels being outside it. With every class annotated, ``unknown_label``
voxels are masked out in every channel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array

from dacapo.experiments.array_types import ArrayType
from dacapo.experiments.model import create_model
from dacapo.ops.channels import gt_to_channels
from dacapo.ops.distances import (
    SATURATION,
    knowable_mask,
    mask_edge_distance_below,
    signed_distance,
    tanh_normalize,
)

from .predictor import (
    Annotation,
    PartialPredictor,
    Predictor,
    binary_balanced_weight,
    channel_data,
    like,
    numpy_data,
)

#: Context (in units of ``scale_factor``) a distance target needs around the output ROI.
CONTEXT = 2.76


def gt_channels(gt: Array, num_channels: int) -> np.ndarray:
    """GT as ``(C, *spatial)`` numpy; ValueError naming ``gt`` for NaN or a bad layout."""
    data = numpy_data(gt)
    if data.dtype.kind == "f" and np.isnan(data).any():
        raise ValueError("gt: contains NaN")
    return gt_to_channels(data, num_channels, gt.voxel_size.dims, "gt")


def mask_channels(mask: Array | None, gt: Array, num_channels: int) -> np.ndarray | None:
    """Mask as bool ``(1 or C, *spatial)`` (nonzero = labelled), checked against ``gt``.

    ValueError naming ``mask`` for another voxel size, ROI or shape, or NaN.
    """
    if mask is None:
        return None
    if mask.voxel_size != gt.voxel_size:
        raise ValueError(f"mask: voxel size {mask.voxel_size} != gt voxel size {gt.voxel_size}")
    if mask.roi != gt.roi:
        raise ValueError(f"mask: roi {mask.roi} != gt roi {gt.roi}")
    data = numpy_data(mask)
    dims = gt.voxel_size.dims
    if data.ndim == dims:
        data = data[None]
    if data.ndim != dims + 1 or data.shape[0] not in (1, num_channels):
        raise ValueError(
            f"mask: expected (1 or {num_channels}, *spatial) or (*spatial), got shape {data.shape}"
        )
    if data.dtype.kind == "f" and np.isnan(data).any():
        raise ValueError("mask: contains NaN")
    return data != 0


def distance_padding(scale_factor: float, voxel_size: Coordinate) -> Coordinate:
    """``ceil(CONTEXT · scale_factor / s_k) · s_k`` per axis (world units)."""
    return Coordinate(
        int(math.ceil(CONTEXT * scale_factor / v - 1e-9)) * int(v) for v in voxel_size
    )


class TanhDistancePredictor(Predictor):
    """Shared part of the predictors of one ``tanh(distance / scale_factor)`` channel per
    named channel: channels, output type, head, GT padding."""

    def __init__(self, channels: list[str], scale_factor: float) -> None:
        if not scale_factor > 0:
            raise ValueError(f"scale_factor must be > 0, got {scale_factor}")
        self._channels = list(channels)
        self.scale_factor = float(scale_factor)

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    @property
    def output_array_type(self) -> ArrayType:
        return ArrayType("distance", tuple(self._channels))

    def create_model(self, architecture):
        return create_model(architecture, len(self._channels))

    def padding(self, gt_voxel_size: Coordinate) -> Coordinate:
        return distance_padding(self.scale_factor, gt_voxel_size)


class DistancePredictor(TanhDistancePredictor):
    """Predicts ``tanh(signed distance / scale_factor)`` per channel (see module docstring)."""

    def __init__(
        self,
        channels: list[str],
        scale_factor: float,
        mask_distances: bool,
        clipmin: float = 0.05,
        clipmax: float = 0.95,
    ) -> None:
        super().__init__(channels, scale_factor)
        self.mask_distances = bool(mask_distances)
        self.clipmin = clipmin
        self.clipmax = clipmax

    def create_target(self, gt: Array) -> Array:
        return like(gt, self.distance_target(gt_channels(gt, len(self._channels)), gt.voxel_size))

    def for_annotation(self, annotation: Annotation) -> Predictor:
        return channel_annotation(self, annotation)

    def create_weight(
        self,
        gt: Array,
        target: Array,
        mask: Array | None = None,
        moving_class_counts: Any = None,
    ) -> tuple[Array, Any]:
        gt_np = gt_channels(gt, len(self._channels))
        mask_np = mask_channels(mask, gt, len(self._channels))
        weight, counts = self.balanced_weight(gt_np, mask_np, moving_class_counts)
        if self.mask_distances:
            target_np = channel_data(target, len(self._channels), "target")
            weight *= self.knowable(target_np, mask_np, gt.voxel_size)
        return like(gt, weight), counts

    # Building blocks (shared with HotDistancePredictor).

    def distance_target(self, gt_np: np.ndarray, voxel_size) -> np.ndarray:
        """``tanh(signed_distance(gt_c > 0) / scale_factor)`` per channel, float32."""
        return np.stack(
            [tanh_normalize(signed_distance(c > 0, voxel_size), self.scale_factor) for c in gt_np]
        )

    def balanced_weight(
        self, gt_np: np.ndarray, mask_np: np.ndarray | None, moving_class_counts: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inside/outside balanced weights ``(C, *spatial)`` and counts ``(C, 2)``."""
        return binary_balanced_weight(
            gt_np > 0, mask_np, self.clipmin, self.clipmax, moving_class_counts
        )

    def knowable(self, target_np: np.ndarray, mask_np: np.ndarray | None, voxel_size) -> np.ndarray:
        """Per channel, True where the tanh target is knowable from the crop and mask."""
        spatial = target_np.shape[1:]
        masks = [None] if mask_np is None else list(mask_np)
        # edge distances beyond the saturation distance never decide (knowable_mask caps
        # the claim at SATURATION): computed exactly only below it
        limit = 1.01 * self.scale_factor * math.atanh(SATURATION)
        edges = [mask_edge_distance_below(m, voxel_size, limit, spatial) for m in masks]
        return np.stack(
            [
                knowable_mask(t, edges[0 if len(edges) == 1 else i], self.scale_factor)
                for i, t in enumerate(target_np)
            ]
        )


def channel_annotation(predictor: Predictor, annotation: Annotation) -> Predictor:
    """``predictor`` (one channel per class) for a crop annotated as ``annotation``."""
    u = annotation.unknown_label
    if annotation.class_arrays and u is not None:
        raise ValueError("unknown_label: only for a class-id gt, not one array per class")
    if u is not None and 1 <= u <= len(annotation.annotated) and annotation.annotated[u - 1]:
        raise ValueError(f"unknown_label {u} is the id of the annotated class "
                         f"{predictor.channels[u - 1]!r} (class ids 1..C, 0 is background)")
    if annotation.complete:
        return predictor
    return PartialChannelsPredictor(predictor, annotation)


class PartialChannelsPredictor(PartialPredictor):
    """A predictor of one channel per class (`DistancePredictor`, `HotDistancePredictor`)
    for a partially annotated crop: its own targets, and its weights under a per-channel
    mask that is 0 on the channels of unannotated classes (see the module docstring)."""

    def create_target(self, gt: Array) -> Array:
        return self.full.create_target(self.annotation.without_unknown(gt)[0])

    def create_weight(
        self,
        gt: Array,
        target: Array,
        mask: Array | None = None,
        moving_class_counts: Any = None,
    ) -> tuple[Array, Any]:
        gt, unknown = self.annotation.without_unknown(gt)
        c = len(self.channels)
        given = mask_channels(mask, gt, c)
        known = np.ones((c,) + tuple(gt.shape[-gt.voxel_size.dims:]), bool)
        if given is not None:
            known &= given
        known[self.annotation.unannotated] = False
        if unknown is not None and not self.annotation.unannotated:
            known &= ~unknown
        return self.full.create_weight(gt, target, like(gt, known), moving_class_counts)
