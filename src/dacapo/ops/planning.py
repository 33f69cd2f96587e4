"""Pure arithmetic of experiment planning (`dacapo.planning.planner`): valid-UNet shapes and cost,
the anisotropy rule for pooling and kernels, object widths of a label volume.

- `unet_shapes`: the output shape of the valid CNNectome UNet (each conv of kernel k
  shrinks an axis by k - 1, pooling divides (sizes must divide), upsampling multiplies, the
  skip connection is cropped to the upsampled size) and its multiply-adds
  sum(output voxels x kernel volume x in x out channels) over the convolutions;
- `level_layout`: nnU-Net's rule (Isensee et al. 2021): a level whose z voxel is at least
  twice the in-plane one convolves in 2D (1,3,3) and pools in-plane (1,2,2); otherwise 3D;
- `object_widths`: width of an object = 2 x the largest Euclidean distance (edt, voxel size
  as anisotropy) from its voxels to the nearest voxel of another label or background.
"""

from __future__ import annotations

import math

import edt
import numpy as np
from scipy import ndimage

from dacapo.ops.sections import anisotropic


def object_widths(labels: np.ndarray, voxel_size) -> tuple[np.ndarray, np.ndarray]:
    """(width, volume in voxels) of every non-zero label: width = 2 x the largest distance
    (world units, edt with the voxel size as anisotropy) from a voxel of the object to the
    nearest voxel of another label or background."""
    labels = np.ascontiguousarray(labels)
    if labels.dtype.kind not in "iu":
        labels = labels.astype(np.uint32)
    ids = np.unique(labels)
    ids = ids[ids != 0]
    if ids.size == 0:
        return np.zeros(0), np.zeros(0)
    dist = edt.edt(labels, anisotropy=tuple(float(v) for v in voxel_size), black_border=False)
    widths = 2 * np.asarray(ndimage.maximum(dist, labels, ids), dtype=np.float64)
    volumes = np.asarray(ndimage.sum(np.ones(labels.shape, np.float32), labels, ids))
    return widths, volumes


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value at which half of the total weight lies below (lower median)."""
    order = np.argsort(values)
    cum = np.cumsum(np.asarray(weights, dtype=np.float64)[order])
    return float(np.asarray(values)[order][np.searchsorted(cum, cum[-1] / 2)])


def unet_shapes(input_shape, factors, kernels_down, kernels_up, num_fmaps: int = 12,
                inc: int = 2, fmaps_in: int = 1, fmaps_out: int = 12, pooling=None):
    """(output shape, multiply-adds of one forward pass) of the valid CNNectome UNet, or
    None when it does not fit (a size < 1, or one not divisible by its pooling factor).
    ``pooling``: the input's average pooling (``input_pooling``): the UNet runs on the
    pooled shape and ``n`` output voxels come back as ``p·(n − 1)``."""
    pool = [int(p) for p in pooling] if pooling else [1] * len(input_shape)
    if any(s % p for s, p in zip(input_shape, pool)):
        return None
    shape = [s // p for s, p in zip(input_shape, pool)]
    macs = 0.0
    skips = []
    fmaps = [num_fmaps * inc**level for level in range(len(kernels_down))]
    for level, kernels in enumerate(kernels_down):
        c_in = fmaps_in if level == 0 else fmaps[level - 1]
        for k in kernels:
            shape = [s - (kk - 1) for s, kk in zip(shape, k)]
            if min(shape) < 1:
                return None
            macs += float(math.prod(shape)) * float(math.prod(k)) * c_in * fmaps[level]
            c_in = fmaps[level]
        if level < len(factors):
            skips.append(list(shape))
            if any(s % f for s, f in zip(shape, factors[level])):
                return None
            shape = [s // f for s, f in zip(shape, factors[level])]
    for level in reversed(range(len(factors))):
        shape = [s * f for s, f in zip(shape, factors[level])]
        macs += float(math.prod(shape)) * fmaps[level + 1] * fmaps[level]  # 1x1 after upsampling
        if any(a > b for a, b in zip(shape, skips[level])):
            return None
        c_in, c_out = 2 * fmaps[level], fmaps[level] if level > 0 else fmaps_out
        for k in kernels_up[level]:
            shape = [s - (kk - 1) for s, kk in zip(shape, k)]
            if min(shape) < 1:
                return None
            macs += float(math.prod(shape)) * float(math.prod(k)) * c_in * c_out
            c_in = c_out
    return tuple(s * p - 2 * (p // 2) for s, p in zip(shape, pool)), macs


def level_layout(voxel_size, levels_max: int, object_width: float | None,
                 two_d: bool) -> tuple[list, list, list, list[str]]:
    """Pooling factors and kernel sizes per level (anisotropy rule), with reasons."""
    vs = [float(v) for v in voxel_size]
    dims = len(vs)
    factors, kd, why = [], [], []
    current = list(vs)
    fov = list(vs)  # rough field of view (world units) per axis
    for level in range(levels_max + 1):
        flat = dims == 3 and (two_d or anisotropic(current))
        k = tuple([1] + [3] * (dims - 1)) if flat else tuple([3] * dims)
        kd.append([k, k])
        for a in range(dims):
            fov[a] += 4 * (k[a] // 2) * current[a]
        if level == levels_max:
            break
        if object_width is not None and min(fov[1:] if dims == 3 else fov) > 2 * object_width and level >= 1:
            why.append(f"stop at {level} pooling levels: the field of view {tuple(int(f) for f in fov)} "
                       f"already spans 2 object widths ({object_width:.0f})")
            break
        f = tuple(([1] if flat else [2]) + [2] * (dims - 1)) if dims == 3 else tuple([2] * dims)
        factors.append(f)
        current = [c * ff for c, ff in zip(current, f)]
    return factors, kd, [list(x) for x in kd[:-1]], why


def eval_increase(size: int, factors, axis: int) -> int:
    """A multiple of the total pooling factor along ``axis`` (keeps the UNet valid)."""
    total = int(np.prod([f[axis] for f in factors])) if factors else 1
    return total * max(1, (size // 2) // total)


def round_2(value: float) -> float:
    """Two significant digits."""
    if value <= 0:
        return value
    digits = 1 - int(math.floor(math.log10(value)))
    return float(round(value, digits))
