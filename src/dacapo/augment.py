"""Training augmentations on numpy crops that share one centre.

The trainer reads raw (input ROI) and gt/mask (GT region) as crops centred on the same
world point (both are the output ROI grown symmetrically), so spatial augmentations are
applied to each array about its own centre and stay aligned:

- mirror: flip each spatial axis with probability 1/2;
- transpose: a random permutation of axes that share the voxel size and the extent in
  every crop (in 3D EM with 40x8x8 nm voxels: y and x only);
- elastic (``elastic_magnitude`` > 0): a smooth random displacement field in world units
  (cubic-free: trilinear interpolation of a coarse Gaussian grid), raw resampled linearly,
  labels by nearest neighbour; the trainer reads a margin so that no padding is sampled;
- intensity (raw only): ``raw * a + b`` with a ~ U(1-s, 1+s), b ~ U(-t, t); gamma
  ``raw^exp(U(-g, g))`` on the non-negative part; Gaussian noise with σ ~ U(0, noise).

The settings are a `dacapo.experiments.trainer_config.AugmentConfig`. Every random draw
comes from the ``numpy.random.Generator`` passed in (deterministic given
the trainer's per-batch seed).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from funlib.geometry import Coordinate
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import map_coordinates

if TYPE_CHECKING:  # annotations only: the config lives in the layer above
    from dacapo.experiments.trainer_config import AugmentConfig


def _spatial(array: np.ndarray, dims: int) -> tuple[int, ...]:
    return tuple(range(array.ndim - dims, array.ndim))


def mirror_and_transpose(
    arrays: list[np.ndarray], voxel_size: Coordinate, cfg: AugmentConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """Flip/permute the trailing spatial axes of every array the same way."""
    dims = len(voxel_size)
    if cfg.mirror:
        flips = rng.random(dims) < 0.5
        arrays = [
            np.flip(a, axis=tuple(ax for ax, f in zip(_spatial(a, dims), flips) if f)) for a in arrays
        ]
    if cfg.transpose:
        perm = list(range(dims))
        groups: dict[int, list[int]] = {}
        for axis, v in enumerate(voxel_size):
            groups.setdefault(int(v), []).append(axis)
        for axes in groups.values():
            # only axes of equal extent in every array can be swapped
            shapes = {tuple(a.shape[a.ndim - dims + ax] for ax in axes) for a in arrays}
            if len(axes) < 2 or any(len(set(s)) != 1 for s in shapes):
                continue
            shuffled = list(rng.permutation(axes))
            for src, dst in zip(axes, shuffled):
                perm[src] = int(dst)
        if perm != list(range(dims)):
            out = []
            for a in arrays:
                lead = a.ndim - dims
                out.append(np.transpose(a, list(range(lead)) + [lead + p for p in perm]))
            arrays = out
    return [np.ascontiguousarray(a) for a in arrays]


def elastic_field(
    shape_world: Coordinate, cfg: AugmentConfig, voxel_size: Coordinate, rng: np.random.Generator
):
    """A random smooth displacement function ``f(points_world) -> displacement_world``.

    Control points on a grid with spacing ``elastic_spacing`` covering ``shape_world``
    (centred at 0), displacements N(0, magnitude²), interpolated linearly.
    """
    dims = len(voxel_size)
    spacing = cfg.elastic_spacing or 10 * max(voxel_size)
    grids = []
    for extent in shape_world:
        n = max(2, int(math.ceil(extent / spacing)) + 2)
        half = (n - 1) * spacing / 2
        grids.append(np.linspace(-half, half, n))
    values = rng.normal(0.0, cfg.elastic_magnitude, size=[len(g) for g in grids] + [dims])
    interp = RegularGridInterpolator(grids, values, bounds_error=False, fill_value=0.0)
    return interp


def apply_elastic(
    array: np.ndarray, voxel_size: Coordinate, field, order: int
) -> np.ndarray:
    """Resample ``array`` (trailing spatial axes) at its voxel centres + ``field``."""
    dims = len(voxel_size)
    shape = array.shape[array.ndim - dims :]
    axes = [(np.arange(s) - (s - 1) / 2.0) * v for s, v in zip(shape, voxel_size)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)  # (*shape, dims) world
    disp = field(mesh.reshape(-1, dims)).reshape(mesh.shape)
    src = (mesh + disp) / np.asarray(voxel_size, dtype=float) + (np.asarray(shape) - 1) / 2.0
    coords = np.moveaxis(src, -1, 0)
    lead = array.shape[: array.ndim - dims]
    flat = array.reshape((-1,) + tuple(shape))
    out = np.stack(
        [map_coordinates(c, coords, order=order, mode="nearest") for c in flat]
    )
    return out.reshape(lead + tuple(shape)).astype(array.dtype, copy=False)


def augment_intensity(raw: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Scale/shift, gamma and noise on float raw."""
    raw = raw.astype(np.float32, copy=True)
    if cfg.intensity_scale > 0 or cfg.intensity_shift > 0:
        a = rng.uniform(1 - cfg.intensity_scale, 1 + cfg.intensity_scale)
        b = rng.uniform(-cfg.intensity_shift, cfg.intensity_shift)
        raw = raw * np.float32(a) + np.float32(b)
    if cfg.gamma > 0:
        g = np.float32(math.exp(rng.uniform(-cfg.gamma, cfg.gamma)))
        pos = raw > 0
        raw[pos] = raw[pos] ** g
    if cfg.noise > 0:
        sigma = rng.uniform(0, cfg.noise)
        raw = raw + rng.normal(0.0, sigma, size=raw.shape).astype(np.float32)
    return raw


def augment(
    raw: np.ndarray,
    labels: list[np.ndarray],
    voxel_size: Coordinate,
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """All augmentations: ``raw`` (float, channels first) and ``labels`` (gt, mask: nearest).

    Shapes are kept (elastic crops nothing: the caller removes its margin afterwards).
    """
    if cfg.elastic_magnitude > 0:
        dims = len(voxel_size)
        extent = Coordinate(
            max(a.shape[a.ndim - dims + i] for a in [raw, *labels]) * v
            for i, v in enumerate(voxel_size)
        )
        field = elastic_field(extent, cfg, voxel_size, rng)
        raw = apply_elastic(raw, voxel_size, field, order=1)
        labels = [apply_elastic(lab, voxel_size, field, order=0) for lab in labels]
    arrays = mirror_and_transpose([raw, *labels], voxel_size, cfg, rng)
    raw, labels = arrays[0], arrays[1:]
    raw = augment_intensity(raw, cfg, rng)
    return raw, labels
