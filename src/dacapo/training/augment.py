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
  no displacement across the sections of an anisotropic stack (axes whose voxel is at
  least `SECTION_RATIO` x the finest: a section is a physical slice, and blending
  neighbours 50 nm apart pairs raw with another section's labels — gunpowder users set
  its z jitter to 0 for the same reason);
- rotation (``rotate``): an in-plane rotation by an angle ~ U(0, 2π) about the crop
  centre, in the plane of the last two axes (they must share the voxel size);
- misalignment (``misalign_probability`` > 0, 3D, as gunpowder's ElasticAugment
  shift/slip): with that probability, the sections from a random z on (*shift*) or one
  random section (*slip*, half of the cases) move in-plane by U(-m, m) world units each
  axis (``misalign_max``), rounded to whole voxels; raw and labels alike, as in real misaligned stacks;
  these three and elastic are one resampling (raw linear, labels nearest), and the
  trainer reads a margin (`AugmentConfig.elastic_margin`) so that no padding is sampled;
- intensity (raw only): ``raw * a + b`` with a ~ U(1-s, 1+s), b ~ U(-t, t); gamma
  ``raw^exp(U(-g, g))`` on the non-negative part; Gaussian noise with σ ~ U(0, noise);
- per-section intensity (``section_intensity`` = s > 0, 3D): section z gets
  ``raw * a_z + b_z``, a_z ~ U(1-s, 1+s), b_z ~ U(-s, s) (uneven EM section contrast);
- blur (``blur`` = b > 0): with probability 1/2 a Gaussian blur, in-plane σ ~ U(0, b)
  voxels (out of focus / charging);
- defective sections (3D): each section with probability ``missing_sections`` set to 0
  (a lost section) and with probability ``low_contrast_sections`` its contrast around its
  mean divided by 10 (gunpowder's DefectAugment ``prob_missing``/``prob_low_contrast``).

Every random draw comes from the ``numpy.random.Generator`` passed in (deterministic given
the trainer's per-batch seed).

The settings are a `dacapo.experiments.trainer_config.AugmentConfig`. Every random draw
comes from the ``numpy.random.Generator`` passed in (deterministic given
the trainer's per-batch seed).
"""

from __future__ import annotations

import math

import numpy as np
from funlib.geometry import Coordinate
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import gaussian_filter, map_coordinates

from dacapo.experiments.trainer_config import AugmentConfig
from dacapo.ops.sections import section_axes


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
    (centred at 0), displacements N(0, magnitude²) (0 along `section_axes`), interpolated
    linearly.
    """
    dims = len(voxel_size)
    spacing = cfg.elastic_spacing or 10 * max(voxel_size)
    grids = []
    for extent in shape_world:
        n = max(2, int(math.ceil(extent / spacing)) + 2)
        half = (n - 1) * spacing / 2
        grids.append(np.linspace(-half, half, n))
    values = rng.normal(0.0, cfg.elastic_magnitude, size=[len(g) for g in grids] + [dims])
    values[..., section_axes(voxel_size)] = 0.0  # sections stay sections
    interp = RegularGridInterpolator(grids, values, bounds_error=False, fill_value=0.0)
    return interp


class Displacement:
    """Elastic + rotation + misalignment of one sample, in world units about each crop's
    centre: ``elastic`` (``f(points) -> displacement``, `elastic_field`), ``rotation``
    (cos, sin of the in-plane angle), ``misalign`` (cut z, slip, in-plane shift, section
    thickness); each None when it does not apply."""

    def __init__(self, elastic=None, rotation=None, misalign=None) -> None:
        self.elastic, self.rotation, self.misalign = elastic, rotation, misalign

    def coordinates(self, shape: tuple[int, ...], voxel_size: Coordinate) -> np.ndarray:
        """``(dims, *shape)`` voxel coordinates to sample a crop of ``shape`` at: its voxel
        centres + the displacement (`map_coordinates`' input). Rotation and misalignment
        are computed on per-axis grids that broadcast (no per-voxel point list: most of the
        data worker's time went there); the values are those of the per-point formulas."""
        dims = len(shape)
        axes = [(np.arange(n) - (n - 1) / 2.0) * v for n, v in zip(shape, voxel_size)]
        grids = [a.reshape([-1 if i == k else 1 for i in range(dims)]) for k, a in enumerate(axes)]
        total: list = [None] * dims

        def add(axis: int, value) -> None:
            total[axis] = value if total[axis] is None else total[axis] + value

        if self.elastic is not None:
            mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
            disp = self.elastic(mesh.reshape(-1, dims)).reshape(mesh.shape)
            for axis in range(dims):
                add(axis, disp[..., axis])
        if self.rotation is not None:
            c, s_ = self.rotation
            y, x = grids[-2], grids[-1]
            add(dims - 2, c * y - s_ * x - y)
            add(dims - 1, s_ * y + c * x - x)
        if self.misalign is not None:
            cut, slip, shift, thickness = self.misalign
            z = grids[0]
            moved = np.abs(z - cut) < thickness / 2 if slip else z >= cut
            for axis in range(1, dims):
                add(axis, np.where(moved, shift[axis - 1], 0.0))
        coords = np.empty((dims, *shape))
        for axis in range(dims):
            src = grids[axis] if total[axis] is None else grids[axis] + total[axis]
            coords[axis] = src / float(voxel_size[axis]) + (shape[axis] - 1) / 2.0
        return coords


def spatial_transform(extent: Coordinate, cfg: AugmentConfig, voxel_size: Coordinate,
                      rng: np.random.Generator) -> Displacement | None:
    """The sample's `Displacement` (elastic + rotation + misalignment), or None when none
    applies. Random draws in this order: elastic grid, angle, misalignment."""
    dims = len(voxel_size)
    elastic = rotation = misalign = None
    if cfg.elastic_magnitude > 0:
        elastic = elastic_field(extent, cfg, voxel_size, rng)
    if cfg.rotate and dims >= 2:
        angle = rng.uniform(0, 2 * math.pi)
        rotation = (math.cos(angle), math.sin(angle))
    if cfg.misalign_probability > 0 and cfg.misalign_max > 0 and dims == 3:
        if rng.random() < cfg.misalign_probability:
            half = extent[0] / 2
            cut = rng.uniform(-half, half)
            slip = rng.random() < 0.5
            shift = rng.uniform(-cfg.misalign_max, cfg.misalign_max, size=2)
            shift = np.round(shift / np.asarray(voxel_size[1:])) * np.asarray(voxel_size[1:])
            misalign = (cut, slip, shift, voxel_size[0])
    if elastic is None and rotation is None and misalign is None:
        return None
    return Displacement(elastic, rotation, misalign)


def displace(displacement: Displacement, raw: np.ndarray, labels: list[np.ndarray],
             voxel_size: Coordinate) -> tuple[np.ndarray, list[np.ndarray]]:
    """``raw`` (linear) and ``labels`` (nearest) resampled by ``displacement``, the
    coordinates computed once per crop shape (GT and mask share them)."""
    dims = len(voxel_size)
    coords: dict[tuple[int, ...], np.ndarray] = {}

    def at(a: np.ndarray) -> np.ndarray:
        shape = a.shape[a.ndim - dims:]
        if shape not in coords:
            coords[shape] = displacement.coordinates(shape, voxel_size)
        return coords[shape]

    return resample(raw, at(raw), order=1), [resample(lab, at(lab), order=0) for lab in labels]


def resample(array: np.ndarray, coords: np.ndarray, order: int) -> np.ndarray:
    """``array`` (trailing spatial axes) sampled at ``coords`` (`Displacement.coordinates`):
    linearly (``order`` 1) or nearest (0), edges repeated."""
    dims = coords.shape[0]
    shape = coords.shape[1:]
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


def augment_sections(raw: np.ndarray, dims: int, cfg: AugmentConfig,
                     rng: np.random.Generator) -> np.ndarray:
    """Blur, per-section intensity and defective sections on float raw (channels first)."""
    if cfg.blur > 0 and rng.random() < 0.5:
        sigma = rng.uniform(0, cfg.blur)
        spatial = [0.0] * (dims - 2) + [sigma, sigma]
        lead = [0.0] * (raw.ndim - dims)
        raw = gaussian_filter(raw, lead + spatial, mode="nearest").astype(np.float32)
    if dims != 3:
        return raw
    z_axis = raw.ndim - 3
    n = raw.shape[z_axis]
    shape = [1] * raw.ndim
    shape[z_axis] = n
    if cfg.section_intensity > 0:
        s = cfg.section_intensity
        a = rng.uniform(1 - s, 1 + s, size=n).astype(np.float32).reshape(shape)
        b = rng.uniform(-s, s, size=n).astype(np.float32).reshape(shape)
        raw = raw * a + b
    if cfg.missing_sections > 0 or cfg.low_contrast_sections > 0:
        raw = raw.copy()
        draws = rng.random(n)
        for z in range(n):
            index = (slice(None),) * z_axis + (z,)
            if draws[z] < cfg.missing_sections:
                raw[index] = 0
            elif draws[z] < cfg.missing_sections + cfg.low_contrast_sections:
                mean = raw[index].mean()
                raw[index] = mean + (raw[index] - mean) / 10
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
    dims = len(voxel_size)
    if cfg.resamples:
        extent = Coordinate(
            max(a.shape[a.ndim - dims + i] for a in [raw, *labels]) * v
            for i, v in enumerate(voxel_size)
        )
        displacement = spatial_transform(extent, cfg, voxel_size, rng)
        if displacement is not None:
            raw, labels = displace(displacement, raw, labels, voxel_size)
    arrays = mirror_and_transpose([raw, *labels], voxel_size, cfg, rng)
    raw, labels = arrays[0], arrays[1:]
    raw = augment_intensity(raw, cfg, rng)
    raw = augment_sections(raw, dims, cfg, rng)
    return raw, labels
