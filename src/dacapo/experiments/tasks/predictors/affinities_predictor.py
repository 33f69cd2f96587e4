"""Affinities predictor: instance labels -> voxel affinities (+ Local Shape Descriptors).

Target, ``len(neighborhood)`` (+ ``num_lsds``) channels: the affinities of
`dacapo.ops.affinities.affinities` (edge at u links u and u + o; 1 iff both voxels carry the
same non-zero label, or both background with ``background_as_object``), then, with ``lsds``,
the LSDs of `dacapo.ops.lsds.local_shape_descriptors` (10 channels in 3D, 6 in 2D) with
σ = ``num_lsd_voxels`` × max(voxel size) and ``downsample_lsds``.

Weight, same channels: per affinity channel, the 0/1 classes balanced
(`dacapo.ops.balance.balance_weights`, clip ``affs_weight_clipmin/max``) among the valid
edges — both ends inside the GT crop and masked in (`dacapo.ops.affinities.affinity_mask`) —
and 0 on every other edge. LSD channels share one weight: object (label ≠ 0) / background
balanced within the mask (clip ``lsd_weight_clipmin/max``).
``moving_class_counts`` is a tuple ``(affinity counts (K, 2), LSD counts (1, 2) or None)``.

GT: one channel of integer instance ids (``(*spatial)`` or ``(1, *spatial)``); mask
``(*spatial)`` or ``(1, *spatial)``, nonzero = labelled.

Padding (world units, each side) per axis: the larger of max |offset| and the LSD Gaussian
radius (rounded up to a multiple of ``downsample_lsds`` voxels), so every target in the
output ROI is what the whole volume would give (for ``downsample_lsds`` > 1 the subsampling
grid starts at the GT crop's origin).

Model: head with ``len(neighborhood) + num_lsds`` outputs; sigmoid on all of them in eval
mode (the loss takes logits).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array
from torch import nn

from dacapo.experiments.array_types import ArrayType
from dacapo.experiments.model import create_model
from dacapo.ops.affinities import affinities, affinity_mask
from dacapo.ops.lsds import gaussian_kernel1d, local_shape_descriptors, lsd_sigma, num_lsds

from .distance_predictor import gt_channels, mask_channels
from .inner_distance_predictor import integer_labels
from .predictor import Predictor, binary_balanced_weight, like, numpy_data


def affinity_channel_name(offset) -> str:
    """``aff_<o_0>_<o_1>[_<o_2>]``, e.g. ``aff_0_0_-3``."""
    return "aff_" + "_".join(str(int(v)) for v in offset)


LSD_NAMES = {
    3: ["lsd_offset_z", "lsd_offset_y", "lsd_offset_x", "lsd_var_zz", "lsd_var_yy",
        "lsd_var_xx", "lsd_corr_zy", "lsd_corr_zx", "lsd_corr_yx", "lsd_size"],
    2: ["lsd_offset_y", "lsd_offset_x", "lsd_var_yy", "lsd_var_xx", "lsd_corr_yx", "lsd_size"],
}


class AffinitiesPredictor(Predictor):
    """Affinities (+ LSDs) targets and balanced weights (see module docstring)."""

    def __init__(
        self,
        neighborhood,
        lsds: bool = False,
        num_lsd_voxels: int = 10,
        downsample_lsds: int = 1,
        affs_weight_clipmin: float = 0.05,
        affs_weight_clipmax: float = 0.95,
        lsd_weight_clipmin: float = 0.05,
        lsd_weight_clipmax: float = 0.95,
        background_as_object: bool = False,
    ) -> None:
        self.neighborhood = [Coordinate(int(v) for v in o) for o in neighborhood]
        if not self.neighborhood:
            raise ValueError("neighborhood: must not be empty")
        self.dims = len(self.neighborhood[0])
        if self.dims not in (2, 3) or any(len(o) != self.dims for o in self.neighborhood):
            raise ValueError(
                f"neighborhood: offsets must all be 2D or all 3D, got {self.neighborhood}"
            )
        if num_lsd_voxels < 1:
            raise ValueError(f"num_lsd_voxels: must be >= 1, got {num_lsd_voxels}")
        if int(downsample_lsds) != downsample_lsds or downsample_lsds < 1:
            raise ValueError(f"downsample_lsds: must be an integer >= 1, got {downsample_lsds}")
        self.lsds = bool(lsds)
        self.num_lsd_voxels = num_lsd_voxels
        self.downsample_lsds = int(downsample_lsds)
        self.affs_weight_clipmin = affs_weight_clipmin
        self.affs_weight_clipmax = affs_weight_clipmax
        self.lsd_weight_clipmin = lsd_weight_clipmin
        self.lsd_weight_clipmax = lsd_weight_clipmax
        self.background_as_object = bool(background_as_object)

    @property
    def num_affinities(self) -> int:
        return len(self.neighborhood)

    @property
    def num_lsds(self) -> int:
        return num_lsds(self.dims) if self.lsds else 0

    @property
    def channels(self) -> list[str]:
        """The affinity channels (what the watershed uses)."""
        return [affinity_channel_name(o) for o in self.neighborhood]

    @property
    def num_output_channels(self) -> int:
        return self.num_affinities + self.num_lsds

    @property
    def output_array_type(self) -> ArrayType:
        names = self.channels + (LSD_NAMES[self.dims] if self.lsds else [])
        return ArrayType("affinities", tuple(names))

    def create_model(self, architecture):
        return create_model(architecture, self.num_output_channels, eval_activation=nn.Sigmoid())

    def sigma(self, voxel_size: Coordinate) -> float:
        """LSD σ in world units."""
        return lsd_sigma(voxel_size, self.num_lsd_voxels)

    def padding(self, gt_voxel_size: Coordinate) -> Coordinate:
        if len(gt_voxel_size) != self.dims:
            raise ValueError(
                f"voxel_size: {gt_voxel_size} does not match the {self.dims}D neighborhood"
            )
        pad = [max(abs(int(o[d])) for o in self.neighborhood) for d in range(self.dims)]
        if self.lsds:
            f = self.downsample_lsds
            sigma = self.sigma(gt_voxel_size)
            for d, v in enumerate(gt_voxel_size):
                radius = len(gaussian_kernel1d(sigma / (v * f))) // 2  # coarse voxels
                pad[d] = max(pad[d], (radius + 1) * f)
            pad = [int(math.ceil(p / f)) * f for p in pad]
        return Coordinate(p * int(v) for p, v in zip(pad, gt_voxel_size))

    def _labels(self, gt: Array) -> np.ndarray:
        if gt.voxel_size.dims != self.dims:
            raise ValueError(
                f"gt: {gt.voxel_size.dims} spatial dims, the neighborhood is {self.dims}D"
            )
        return integer_labels(gt_channels(gt, 1)[0])

    def create_target(self, gt: Array) -> Array:
        labels = self._labels(gt)
        k = self.num_affinities
        target = np.empty((self.num_output_channels,) + labels.shape, np.float32)
        target[:k] = affinities(labels, self.neighborhood, self.background_as_object)
        if self.lsds:
            local_shape_descriptors(
                labels, gt.voxel_size, self.sigma(gt.voxel_size), self.downsample_lsds,
                out=target[k:],
            )
        return like(gt, target)

    def create_weight(
        self,
        gt: Array,
        target: Array,
        mask: Array | None = None,
        moving_class_counts: Any = None,
    ) -> tuple[Array, Any]:
        labels = self._labels(gt)
        k = self.num_affinities
        shape = tuple(target.shape)
        if shape != (self.num_output_channels,) + labels.shape:
            raise ValueError(
                f"target: expected shape {(self.num_output_channels,) + labels.shape} "
                f"(channels, *gt spatial shape), got {shape}"
            )
        aff_target = numpy_data(target)[:k]  # only the affinity channels are read
        mask_np = mask_channels(mask, gt, 1)
        mask_np = None if mask_np is None else mask_np[0]
        aff_counts, lsd_counts = _split_counts(moving_class_counts)
        valid = affinity_mask(mask_np, labels.shape, self.neighborhood)
        weight = np.empty((self.num_output_channels,) + labels.shape, np.float32)
        _, aff_counts = binary_balanced_weight(
            np.greater(aff_target, 0.5),
            valid,
            self.affs_weight_clipmin,
            self.affs_weight_clipmax,
            aff_counts,
            out=weight[:k],
        )
        if self.lsds:
            _, lsd_counts = binary_balanced_weight(
                (labels != 0)[None],
                None if mask_np is None else mask_np[None],
                self.lsd_weight_clipmin,
                self.lsd_weight_clipmax,
                lsd_counts,
                out=weight[k : k + 1],
            )
            weight[k + 1 :] = weight[k]  # one weight shared by all LSD channels
        return like(gt, weight), (aff_counts, lsd_counts)


def _split_counts(counts: Any) -> tuple[Any, Any]:
    if counts is None:
        return None, None
    if not isinstance(counts, tuple) or len(counts) != 2:
        raise ValueError(
            "moving_class_counts: expected the (affinity counts, LSD counts) tuple returned "
            f"by a previous create_weight call, got {type(counts).__name__}"
        )
    return counts
