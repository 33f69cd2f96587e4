"""Exact distances to the inter-voxel boundary (world units, anisotropic voxels).

The one kernel behind the Distance, InnerDistance and HotDistance targets and the
``mask_distances`` weights.

Definitions. Voxel ``v`` has its centre at ``v ⊙ s`` (``s`` = voxel size, array axis order).
For a value array ``x``, the boundary ``B(x)`` is the set of face midpoints
``(a + b) / 2`` between axis neighbours ``a``, ``b = a + e_k`` with ``x[a] != x[b]``, and

    d(v) = min_{m ∈ B(x)} ‖(v − m) ⊙ s‖₂          (``inf`` if ``B(x)`` is empty).

So a voxel touching the boundary along axis k has ``d = s_k / 2``.

Method (exact, no 2× grid). ``B`` is the union over axes k of the axis-k face midpoints,
so ``d² = min_k d_k²`` with ``d_k`` the distance to the axis-k faces. ``d_k²`` is separable
(Felzenszwalb & Huttenlocher, "Distance transforms of sampled functions", 2012): a 1D pass
along k gives the exact squared distance to the nearest axis-k face on each line
(``(t − 1/2)² s_k²`` with ``t`` the index distance to the nearest value change), then the
lower envelope of parabolas along every other axis j adds ``s_j² Δ_j²`` exactly. The 1D
kernels are compiled with numba: the ``edt`` package measures to voxel centres, which is off
by up to half a voxel here, and its ``voxel_graph`` option (cut edges between voxels) was
tried and neither matched the face-midpoint brute force nor ran faster; running it on the
2× grid costs 8× the voxels. Same input and numbers as old DaCapo's scipy EDT on the 2× grid
(``benchmarks/bench_distance_target.py`` checks it), without the 8× grid.

For label arrays the nearest point of ``B`` always lies on a face of ``v``'s own label
region (a monotone lattice path from ``v`` towards any other face crosses one of them no
farther away), so the same ``d`` is the per-label inner distance (touching instances are
separated by their common faces).

Conventions chosen here:
- distances are to face midpoints (the boundary), never to voxel centres;
- the crop edge is not a boundary (objects may continue outside the crop); a channel with
  no boundary in the crop gets ``±`` half the smallest crop extent in world units;
- ``mask_distances``: a voxel's target is *knowable* when no masked-out or out-of-crop voxel
  is closer than the distance the target claims, capped where tanh saturates (0.8), see
  `knowable_mask`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

#: |tanh target| above which a distance counts as saturated for ``mask_distances``.
SATURATION = 0.8


@numba.njit(cache=True, nogil=True)
def _face_pass(values: np.ndarray, out: np.ndarray, spacing: float) -> None:
    """Squared distance along axis 1 of ``values (P, N, Q)`` to the nearest face between
    differing neighbours on the same line, written to ``out`` (``inf`` without a face)."""
    n_p, n, n_q = values.shape
    for p in range(n_p):
        for q in range(n_q):
            last = -np.inf
            for i in range(n):
                if i > 0 and values[p, i, q] != values[p, i - 1, q]:
                    last = i - 0.5
                out[p, i, q] = i - last
            nxt = np.inf
            for i in range(n - 1, -1, -1):
                if i < n - 1 and values[p, i + 1, q] != values[p, i, q]:
                    nxt = i + 0.5
                t = min(out[p, i, q], nxt - i) * spacing
                out[p, i, q] = t * t


@numba.njit(cache=True, nogil=True)
def _mark_pass(marks: np.ndarray, out: np.ndarray, spacing: float) -> None:
    """Squared distance along axis 1 of ``marks (P, N, Q)`` to the nearest marked sample on
    the same line (binary 1D EDT), written to ``out`` (``inf`` without a mark)."""
    n_p, n, n_q = marks.shape
    for p in range(n_p):
        for q in range(n_q):
            last = -np.inf
            for i in range(n):
                if marks[p, i, q]:
                    last = i
                out[p, i, q] = i - last
            nxt = np.inf
            for i in range(n - 1, -1, -1):
                if marks[p, i, q]:
                    nxt = i
                t = min(out[p, i, q], nxt - i) * spacing
                out[p, i, q] = t * t


@numba.njit(cache=True, nogil=True)
def _merge_pass(
    even: np.ndarray, odd: np.ndarray, out: np.ndarray, spacing: float, has_odd: bool
) -> None:
    """Lower envelope of parabolas along axis 1 (Felzenszwalb & Huttenlocher 2012).

    Samples ``even[i]`` lie at ``i·spacing`` and (if ``has_odd``) ``odd[i]`` at
    ``(i + 1/2)·spacing``; writes ``out[i] = min_x f(x) + (i·spacing − x)²`` over all samples.
    ``inf`` samples are skipped; ``out`` may be ``even``. Positions are handled as integer
    half steps ``j`` (``x = j·spacing/2``), values scaled by ``(2/spacing)²``.
    """
    n_p, n, n_q = even.shape
    h2 = (0.5 * spacing) ** 2
    inv = 1.0 / h2
    v = np.empty(2 * n, np.int64)
    g = np.empty(2 * n)
    c = np.empty(2 * n)
    z = np.empty(2 * n + 1)
    for p in range(n_p):
        for q in range(n_q):
            k = -1
            for j in range(2 * n - 1):
                if j & 1:
                    if not has_odd:
                        continue
                    f = odd[p, j >> 1, q]
                else:
                    f = even[p, j >> 1, q]
                if f == np.inf:
                    continue
                gj = f * inv
                cj = gj + j * j
                if k < 0:
                    k = 0
                    v[0] = j
                    g[0] = gj
                    c[0] = cj
                    z[0] = -np.inf
                    z[1] = np.inf
                    continue
                sect = (cj - c[k]) / (2.0 * (j - v[k]))
                while sect <= z[k]:
                    k -= 1
                    sect = (cj - c[k]) / (2.0 * (j - v[k]))
                k += 1
                v[k] = j
                g[k] = gj
                c[k] = cj
                z[k] = sect
                z[k + 1] = np.inf
            if k < 0:
                for i in range(n):
                    out[p, i, q] = np.inf
                continue
            r = 0
            for i in range(n):
                x = 2 * i
                while z[r + 1] < x:
                    r += 1
                d = x - v[r]
                out[p, i, q] = (g[r] + d * d) * h2


def _axis_view(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` (C-contiguous) seen as ``(prod(before), shape[axis], prod(after))``."""
    shape = a.shape
    return a.reshape(int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1 :])))


def _canonical_values(values: np.ndarray) -> np.ndarray:
    """Contiguous values of a dtype the kernels are compiled for (equality preserved)."""
    values = np.asarray(values)
    if values.dtype == bool or values.dtype.itemsize == 1:
        return np.ascontiguousarray(values).view(np.uint8)
    if values.dtype.kind in "iu" and values.dtype.itemsize == 8:
        return np.ascontiguousarray(values).view(np.int64)
    if values.dtype.kind in "iu":
        return np.ascontiguousarray(values, dtype=np.int64)
    return np.ascontiguousarray(values, dtype=np.float64)


def _check_voxel_size(shape: tuple[int, ...], voxel_size: Sequence[float]) -> np.ndarray:
    s = np.asarray(voxel_size, dtype=np.float64)
    if s.shape != (len(shape),) or not np.all(s > 0):
        raise ValueError(f"voxel_size {tuple(voxel_size)} does not fit an array of shape {shape}")
    return s


def boundary_distance_sq(values: np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
    """``d(v)²`` (float64, world units²) to the nearest face midpoint between axis neighbours
    of different value; ``inf`` where ``values`` is constant. See the module docstring.

    Separable EDT on the half-voxel lattice, evaluated only where needed: after the passes
    along axes ``0..i``, ``centre`` holds the squared distance from voxel centres to all
    faces of axes ``≤ i`` restricted to the current hyperplane, and ``faces[k]`` (``k > i``)
    the one from the axis-k face positions to the axis-k faces. The pass along axis ``i``
    merges ``faces[i]`` (at half-integer positions) into ``centre``.
    """
    s = _check_voxel_size(np.shape(values), voxel_size)
    vals = _canonical_values(values)
    if vals.size == 0:
        return np.full(vals.shape, np.inf)
    centre = np.empty(vals.shape)
    _face_pass(_axis_view(vals, 0), _axis_view(centre, 0), float(s[0]))
    faces = {}
    for k in range(1, vals.ndim):
        hi = tuple(slice(1, None) if a == k else slice(None) for a in range(vals.ndim))
        lo = tuple(slice(None, -1) if a == k else slice(None) for a in range(vals.ndim))
        marks = np.ascontiguousarray(vals[hi] != vals[lo])
        faces[k] = np.empty(marks.shape)
        _mark_pass(_axis_view(marks, 0), _axis_view(faces[k], 0), float(s[0]))
    for i in range(1, vals.ndim):
        odd = faces.pop(i)
        merged = np.empty(vals.shape)
        _merge_pass(
            _axis_view(centre, i), _axis_view(odd, i), _axis_view(merged, i), float(s[i]), True
        )
        centre = merged
        for f in faces.values():
            view = _axis_view(f, i)
            _merge_pass(view, view, view, float(s[i]), False)
    return centre


def boundary_distance(values: np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
    """``d(v) = min_{m ∈ B} ‖(v − m) ⊙ s‖`` (float64, world units), ``inf`` without boundary."""
    return np.sqrt(boundary_distance_sq(values, voxel_size))


def no_boundary_distance(shape: Sequence[int], voxel_size: Sequence[float]) -> float:
    """Distance given when a crop has no boundary: half its smallest world extent."""
    return 0.5 * float(min(n * v for n, v in zip(shape, voxel_size)))


def signed_distance(mask: np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
    """Signed boundary distance of a binary ``mask`` (float32): ``+d`` where ``mask``,
    ``−d`` elsewhere; without boundary ``±no_boundary_distance``."""
    inside = np.asarray(mask).astype(bool, copy=False)
    d = np.sqrt(boundary_distance_sq(inside, voxel_size), dtype=np.float32)
    d[np.isinf(d)] = no_boundary_distance(inside.shape, voxel_size)
    np.negative(d, out=d, where=~inside)
    return d


def inner_distance(labels: np.ndarray, voxel_size: Sequence[float]) -> np.ndarray:
    """Per-label inner distance (float32): for a voxel of label ``l ≠ 0`` the distance to the
    nearest face between a voxel of label ``l`` and one of another label (touching instances
    are separated); 0 on background (label 0); a label filling the crop gets
    ``no_boundary_distance``. The crop edge is not a boundary."""
    labels = np.asarray(labels)
    d = boundary_distance(labels, voxel_size)
    d[np.isinf(d)] = no_boundary_distance(labels.shape, voxel_size)
    d[labels == 0] = 0
    return d.astype(np.float32)


def tanh_normalize(distances: np.ndarray, scale_factor: float) -> np.ndarray:
    """``tanh(d / scale_factor)`` as float32 (computed in float32: |error| < 1e-6)."""
    if not scale_factor > 0:
        raise ValueError(f"scale_factor must be > 0, got {scale_factor}")
    scaled = np.asarray(distances, dtype=np.float32) / np.float32(scale_factor)
    return np.tanh(scaled, out=scaled)


def crop_edge_distance(shape: Sequence[int], voxel_size: Sequence[float]) -> np.ndarray:
    """Distance (float64) from each voxel to the crop edge: ``min_k s_k (min(i_k, n_k−1−i_k)
    + 1/2)`` — `mask_edge_distance` of an all-True mask, in closed form."""
    d = np.full(tuple(shape), np.inf)
    for k, (n, s) in enumerate(zip(shape, voxel_size)):
        i = np.arange(n)
        along = s * (np.minimum(i, n - 1 - i) + 0.5)
        np.minimum(d, along.reshape([-1 if a == k else 1 for a in range(len(shape))]), out=d)
    return d


def mask_edge_distance(mask: np.ndarray | None, voxel_size: Sequence[float], shape=None) -> np.ndarray:
    """Distance (float64, world units) from each masked-in voxel to the nearest face of a
    masked-out or out-of-crop voxel (the crop is padded by one masked-out voxel); 0 on
    masked-out voxels. A voxel on the crop edge gets ``s_k / 2``. ``mask=None`` means all
    voxels of ``shape`` are masked in."""
    if mask is None or np.all(mask):
        return crop_edge_distance(np.shape(mask) if mask is not None else shape, voxel_size)
    known = np.asarray(mask).astype(bool, copy=False)
    padded = np.pad(known, 1, constant_values=False)
    inner = (slice(1, -1),) * known.ndim
    d = boundary_distance(padded, voxel_size)[inner]
    d[~known] = 0
    return d


def mask_edge_distance_below(
    mask: np.ndarray | None, voxel_size: Sequence[float], limit: float, shape=None
) -> np.ndarray:
    """`mask_edge_distance` where it is below ``limit`` (world units), and some value
    ``>= limit`` elsewhere: all that `knowable_mask` needs with ``limit`` = the distance at
    which tanh saturates (``scale_factor · atanh(saturation)``).

    The crop edge term has a closed form (`crop_edge_distance`); the faces of masked-out
    voxels are searched only inside the bounding box of those voxels grown by
    ``ceil(limit / s_k) + 1`` voxels per axis: every voxel outside it is farther than
    ``limit`` from all of them. Exact where below ``limit``; cheaper than the full EDT when
    the masked-out voxels are few or compact (an unlabelled slab, a corner).
    """
    if mask is None or np.all(mask):
        return mask_edge_distance(mask, voxel_size, shape)
    known = np.asarray(mask).astype(bool, copy=False)
    s = _check_voxel_size(known.shape, voxel_size)
    d = crop_edge_distance(known.shape, s)
    out_idx = np.nonzero(~known)
    grow = [int(np.ceil(limit / v)) + 1 for v in s]
    box = tuple(
        slice(max(0, int(i.min()) - g), min(n, int(i.max()) + 1 + g))
        for i, g, n in zip(out_idx, grow, known.shape)
    )
    sub = known[box]
    if not sub.all():
        inner = boundary_distance(sub, s)  # faces between masked-in and masked-out voxels
        np.minimum(d[box], inner, out=d[box])
    d[~known] = 0
    return d


def knowable_mask(
    target: np.ndarray,
    edge_distance: np.ndarray,
    scale_factor: float,
    saturation: float = SATURATION,
    tol: float = 1e-6,
) -> np.ndarray:
    """True where a tanh target is knowable from the crop: keep ``v`` iff
    ``min(|target(v)|, saturation) ≤ tanh(edge_distance(v) / scale_factor) + tol``.

    Elsewhere a masked-out or out-of-crop voxel is closer than the distance the target claims,
    so the true distance may be smaller. ``edge_distance`` from `mask_edge_distance`
    (broadcast against ``target``); voxels with ``edge_distance == 0`` (masked out) are never
    knowable.
    """
    edge = np.asarray(edge_distance)
    claim = np.minimum(np.abs(np.asarray(target, dtype=np.float32)), np.float32(saturation))
    reach = tanh_normalize(edge, scale_factor)
    reach += np.float32(tol)
    return (claim <= reach) & (edge > 0)
