"""Local Shape Descriptors (Sheridan et al., Nature Methods 2022), exact and fast.

Definition (that of the reference ``lsd`` package): σ in world units on every axis;
G = normalised Gaussian with σ/voxel_size voxels per axis, truncated like
``scipy.ndimage.gaussian_filter(..., truncate=3)`` (radius ``int(3σ_vox + 0.5)`` voxels,
1D kernels normalised by their sum), zero outside the crop; x = voxel-centre coordinates in
world units. For each object l with indicator m::

    c = G∗m;  μ = G∗(x m) / c;  C_ij = G∗(x_i x_j m) / c − μ_i μ_j     (c = 0 → 1)
    var_i = max(C_ii, 0.001);  ρ_ij = C_ij / sqrt(var_i var_j)

Channels, written only at voxels of l and clipped to [0, 1]: offsets (μ − x)/σ·0.5 + 0.5,
variances var_i/σ², correlations ρ·0.5 + 0.5, size c. Every channel is 0 on background
(label 0). Order 3D: offset z,y,x · var zz,yy,xx · ρ zy,zx,yx · size (10 channels);
2D: offset y,x · var yy,xx · ρ yx · size (6 channels).

``downsample`` f: computed on ``labels[::f, ::f(, ::f)]`` with voxel size × f (σ unchanged),
then every value repeated f times per axis and cropped to the input shape.

Algorithm (same numbers as filtering the whole crop once per object, up to rounding): with
displacements t = v − u (voxels), all statistics follow from the moments
M_a(u) = Σ_v G(t) t^a m(v), |a| ≤ 2, since μ − x = M_e/M_0 and C is translation invariant.
Because m is zero outside the object's bounding box and outputs are only needed on the
object, filtering inside the box with zero padding is exact. The separable filter runs in
three stages sharing partial moments (3 → 6 → 10 fields): stage 1 along one axis from the
runs of m via prefix sums of G t^k, stage 2 only on rows that contain the object, stage 3
only over the object's extent in each row; taps that could only read zeros (outside the
object's box) are skipped, and the six stage-2 fields are stored interleaved per position so
that stage 3 reads the values of a tap contiguously. Relative displacements avoid the catastrophic
cancellation of world coordinates. numba kernels, one thread per group of objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import fastremap
import numpy as np
from numba import njit
from scipy import ndimage

logger = logging.getLogger(__name__)

# scratch per worker thread (float64 values) before a large object is processed in slabs
_SLAB_BUDGET = 1 << 23


def num_lsds(dims: int) -> int:
    """Number of LSD channels: 10 in 3D, 6 in 2D."""
    if dims not in (2, 3):
        raise ValueError(f"LSDs need 2 or 3 spatial dims, got {dims}")
    return 10 if dims == 3 else 6


def lsd_sigma(voxel_size: Sequence[float], num_lsd_voxels: float) -> float:
    """σ (world units) = num_lsd_voxels × max(voxel_size)."""
    return float(num_lsd_voxels) * float(max(voxel_size))


def gaussian_kernel1d(sigma_voxels: float) -> np.ndarray:
    """Normalised 1D Gaussian, radius ``int(3σ + 0.5)`` (as scipy, truncate=3)."""
    radius = int(3.0 * sigma_voxels + 0.5)
    if radius == 0:
        return np.ones(1)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * t**2 / float(sigma_voxels) ** 2)
    return g / g.sum()


def local_shape_descriptors(
    labels: np.ndarray,
    voxel_size: Sequence[float],
    sigma: float,
    downsample: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """LSDs ``(num_lsds(dims), *labels.shape)`` float32 of an integer label array.

    ``sigma`` in world units (see `lsd_sigma`); ``voxel_size`` in the array's axis order.
    ``out``: a float32 array of that shape to write the result into (and return).
    """
    labels = np.asarray(labels)
    dims = labels.ndim
    num_lsds(dims)
    if len(voxel_size) != dims:
        raise ValueError(f"voxel_size: {tuple(voxel_size)} does not match labels with {dims} dims")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise TypeError(f"labels: integer dtype required, got {labels.dtype}")
    if sigma <= 0:
        raise ValueError(f"sigma: must be > 0, got {sigma}")
    f = int(downsample)
    if f < 1:
        raise ValueError(f"downsample: must be >= 1, got {downsample}")
    shape = (num_lsds(dims),) + labels.shape
    if out is not None and (out.shape != shape or out.dtype != np.float32):
        raise ValueError(f"out: expected a float32 array of shape {shape}, got {out.dtype} "
                         f"{out.shape}")
    if f == 1:
        return _lsds(labels, tuple(float(v) for v in voxel_size), float(sigma), out)
    small = labels[(slice(None, None, f),) * dims]
    desc = _lsds(small, tuple(float(v) * f for v in voxel_size), float(sigma))
    for axis in range(dims):
        desc = np.repeat(desc, f, axis=axis + 1)
    desc = desc[(slice(None),) + tuple(slice(0, n) for n in labels.shape)]
    if out is None:
        return np.ascontiguousarray(desc)
    out[...] = desc
    return out


def _moment_tables(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(w, prefix)``: w[k, t] = g(t) t^k for t = 0..r; prefix[k, j] = Σ_{t<j-r} g(t) t^k."""
    r = len(g) // 2
    t = np.arange(-r, r + 1, dtype=np.float64)
    full = np.stack([g, g * t, g * t * t])
    prefix = np.concatenate([np.zeros((3, 1)), np.cumsum(full, axis=1)], axis=1)
    return np.ascontiguousarray(full[:, r:]), prefix


def _stage_order(lengths: Sequence[int]) -> tuple[int, int, int]:
    """Axes for stage 1 (longest kernel: runs make it cheap), 2 (shortest), 3 (the rest)."""
    first = max(range(3), key=lambda d: (lengths[d], -d))
    rest = [d for d in range(3) if d != first]
    second = min(rest, key=lambda d: (lengths[d], d))
    third = next(d for d in rest if d != second)
    return first, second, third


def _lsds(labels: np.ndarray, voxel_size: tuple[float, ...], sigma: float,
          result: np.ndarray | None = None) -> np.ndarray:
    dims = labels.ndim
    if dims == 2:
        labels = labels[None]
        voxel_size = (1.0,) + voxel_size
    kernels = [gaussian_kernel1d(sigma / v) for v in voxel_size]
    if dims == 2:
        kernels[0] = np.ones(1)
    perm = _stage_order([len(k) for k in kernels])
    if result is not None and dims == 3:
        out = result
        out.fill(0)
    else:
        out = np.zeros((10,) + labels.shape, dtype=np.float32)
    internal = np.ascontiguousarray(labels.transpose(perm))
    renumbered, _ = fastremap.renumber(internal, in_place=False)
    renumbered = renumbered.astype(np.uint32, copy=False)
    boxes = [
        (i + 1, *(v for s in sl for v in (s.start, s.stop)))
        for i, sl in enumerate(ndimage.find_objects(renumbered))
        if sl is not None
    ]
    if boxes:
        _run_objects(renumbered, np.asarray(boxes, dtype=np.int64), kernels, perm, voxel_size, sigma, out)
    if dims == 2:
        out = out[[1, 2, 4, 5, 8, 9], 0]
        if result is not None:
            result[...] = out
            return result
    return out


def _channel_maps(perm: Sequence[int]) -> np.ndarray:
    """Output channels (offset, variance per internal axis; correlation per internal pair)."""
    pair = {(0, 1): 6, (0, 2): 7, (1, 2): 8}
    corr = [pair[tuple(sorted((perm[i], perm[j])))] for i, j in ((0, 1), (0, 2), (1, 2))]
    return np.asarray([perm[0], perm[1], perm[2], 3 + perm[0], 3 + perm[1], 3 + perm[2], *corr], np.int64)


def _run_objects(lab, boxes, kernels, perm, voxel_size, sigma, out) -> None:
    wa, pa = _moment_tables(kernels[perm[0]])
    wb, _ = _moment_tables(kernels[perm[1]])
    wc, _ = _moment_tables(kernels[perm[2]])
    vs = np.asarray([voxel_size[d] for d in perm], dtype=np.float64)
    channels = _channel_maps(perm)
    out_t = out.transpose((0,) + tuple(1 + d for d in perm))
    radii = np.asarray([len(kernels[d]) // 2 for d in perm], dtype=np.int64)
    cost = np.prod(boxes[:, 2::2] - boxes[:, 1::2] + 2 * radii[None], axis=1)
    workers = max(1, min(os.cpu_count() or 1, len(boxes)))
    groups: list[list[int]] = [[] for _ in range(workers)]
    load = np.zeros(workers)
    for i in np.argsort(-cost, kind="stable"):
        w = int(np.argmin(load))
        groups[w].append(int(i))
        load[w] += cost[i]

    def work(group: list[int]) -> None:
        _lsd_worker(lab, boxes[group], pa, wb, wc, vs, channels, sigma, _SLAB_BUDGET, out_t)

    logger.debug("LSDs: %d objects on %d threads, stage axes %s", len(boxes), workers, perm)
    if workers == 1:
        work(groups[0])
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, groups))


@njit(cache=True, nogil=True)
def _lsd_worker(lab, boxes, pa, wb, wc, vs, channels, sigma, budget, out):  # pragma: no cover - numba
    rb = wb.shape[1] - 1
    rc = wc.shape[1] - 1
    size1 = 0
    size2 = 0
    size_rows = 0
    max_c = 1
    for i in range(boxes.shape[0]):
        na = boxes[i, 2] - boxes[i, 1]
        nb = boxes[i, 4] - boxes[i, 3]
        nc = boxes[i, 6] - boxes[i, 5]
        per_a = 3 * (nb + 2 * rb) * nc + 8 * nb * (nc + 2 * rc)
        slab = min(na, max(1, budget // per_a))
        size1 = max(size1, 3 * slab * (nb + 2 * rb) * nc)
        size2 = max(size2, 8 * slab * nb * (nc + 2 * rc))
        size_rows = max(size_rows, 2 * slab * nb)
        max_c = max(max_c, nc)
    s1 = np.empty(size1)
    s2 = np.empty(size2)
    rows = np.empty(size_rows, dtype=np.int64)
    runs = np.empty((lab.shape[0] // 2 + 2, 2), dtype=np.int64)
    for i in range(boxes.shape[0]):
        na = boxes[i, 2] - boxes[i, 1]
        nb = boxes[i, 4] - boxes[i, 3]
        nc = boxes[i, 6] - boxes[i, 5]
        per_a = 3 * (nb + 2 * rb) * nc + 8 * nb * (nc + 2 * rc)
        slab = min(na, max(1, budget // per_a))
        _lsd_object(lab, boxes[i], slab, pa, wb, wc, vs, channels, sigma, out, s1, s2, rows, runs)


@njit(cache=True, nogil=True, fastmath=True)
def _moments_c(g, x, wc, tmax):  # pragma: no cover - numba
    """Stage 3 at one voxel: the 10 moments (ka, kb, kc) along c from the stage-2 row ``g``
    (positions x fields, fields (ka, kb) = 00, 01, 02, 10, 11, 20 interleaved so that the
    six loads of a tap are contiguous); taps beyond ``tmax`` only see zeros (outside the
    object's box) and are skipped. Returns m000, m001, m002, m010, m011, m020, m100, m101,
    m110, m200."""
    w = wc[0, 0]
    e0 = w * g[x, 0]
    e1 = w * g[x, 1]
    e2 = w * g[x, 2]
    e3 = w * g[x, 3]
    e4 = w * g[x, 4]
    e5 = w * g[x, 5]
    o0 = 0.0
    o1 = 0.0
    o3 = 0.0
    q0 = 0.0
    for t in range(1, tmax + 1):
        w0 = wc[0, t]
        w1 = wc[1, t]
        u = g[x + t]
        d = g[x - t]
        p0 = u[0] + d[0]
        e0 += w0 * p0
        e1 += w0 * (u[1] + d[1])
        e2 += w0 * (u[2] + d[2])
        e3 += w0 * (u[3] + d[3])
        e4 += w0 * (u[4] + d[4])
        e5 += w0 * (u[5] + d[5])
        o0 += w1 * (u[0] - d[0])
        o1 += w1 * (u[1] - d[1])
        o3 += w1 * (u[3] - d[3])
        q0 += wc[2, t] * p0
    return e0, o0, q0, e1, o1, e2, e3, o3, e4, e5


@njit(cache=True, nogil=True, inline="always")
def _clip01(v):  # pragma: no cover - numba
    return min(max(v, 0.0), 1.0)


@njit(cache=True, nogil=True)
def _lsd_object(lab, box, slab, pa, wb, wc, vs, channels, sigma, out, s1flat, s2flat, rowsflat, runs):  # pragma: no cover - numba
    label = box[0]
    a0, a1, b0, b1, c0, c1 = box[1], box[2], box[3], box[4], box[5], box[6]
    ra = (pa.shape[1] - 2) // 2
    rb = wb.shape[1] - 1
    rc = wc.shape[1] - 1
    nb = b1 - b0
    nc = c1 - c0
    nbp = nb + 2 * rb
    ncp = nc + 2 * rc
    gb0 = wb[0, 0]
    inv_s2 = 1.0 / (sigma * sigma)
    for sa0 in range(a0, a1, slab):
        sa1 = min(sa0 + slab, a1)
        na = sa1 - sa0
        s1 = s1flat[: 3 * na * nbp * nc].reshape((3, na, nbp, nc))  # padded along b only
        s2 = s2flat[: 8 * na * nb * ncp].reshape((na, nb, ncp, 8))
        rows = rowsflat[: 2 * na * nb].reshape((na, nb, 2))
        s1[:] = 0.0
        # stage 1 (axis a): moments k = 0, 1, 2 of each line's runs, by prefix sums
        lo_a = max(a0, sa0 - ra)
        hi_a = min(a1, sa1 + ra)
        for b in range(b0, b1):
            for c in range(c0, c1):
                nr = 0
                inside = False
                for a in range(lo_a, hi_a):
                    if lab[a, b, c] == label:
                        if not inside:
                            runs[nr, 0] = a
                            inside = True
                    elif inside:
                        runs[nr, 1] = a - 1
                        nr += 1
                        inside = False
                if inside:
                    runs[nr, 1] = hi_a - 1
                    nr += 1
                if nr == 0:
                    continue
                bi = b - b0 + rb
                ci = c - c0
                for a in range(sa0, sa1):
                    m0 = 0.0
                    m1 = 0.0
                    m2 = 0.0
                    for r in range(nr):
                        lo = runs[r, 0] - a
                        hi = runs[r, 1] - a
                        if hi < -ra or lo > ra:
                            continue
                        lo = max(lo, -ra) + ra
                        hi = min(hi, ra) + ra + 1
                        m0 += pa[0, hi] - pa[0, lo]
                        m1 += pa[1, hi] - pa[1, lo]
                        m2 += pa[2, hi] - pa[2, lo]
                    s1[0, a - sa0, bi, ci] = m0
                    s1[1, a - sa0, bi, ci] = m1
                    s1[2, a - sa0, bi, ci] = m2
        # extent of the object in each row (a, b) along c
        for ai in range(na):
            for bj in range(nb):
                cmin = -1
                cmax = -1
                for c in range(c0, c1):
                    if lab[sa0 + ai, b0 + bj, c] == label:
                        if cmin < 0:
                            cmin = c
                        cmax = c
                rows[ai, bj, 0] = cmin
                rows[ai, bj, 1] = cmax
        # stage 2 (axis b) on rows holding the object: fields (ka, kb) =
        # 00, 01, 02, 10, 11, 20, over the padded c range that stage 3 reads
        for ai in range(na):
            for bj in range(nb):
                if rows[ai, bj, 0] < 0:
                    continue
                plo = rows[ai, bj, 0] - c0
                phi = rows[ai, bj, 1] - c0 + 2 * rc + 1
                clo = max(plo, rc)
                chi = min(phi, rc + nc)
                for x in range(plo, clo):
                    s2[ai, bj, x, :6] = 0.0
                for x in range(chi, phi):
                    s2[ai, bj, x, :6] = 0.0
                bi = bj + rb
                tb = min(rb, max(bj, nb - 1 - bj))  # farther taps leave the box: zeros
                for x in range(clo, chi):
                    acc0 = gb0 * s1[0, ai, bi, x - rc]
                    acc1 = 0.0
                    acc2 = 0.0
                    acc3 = gb0 * s1[1, ai, bi, x - rc]
                    acc4 = 0.0
                    acc5 = gb0 * s1[2, ai, bi, x - rc]
                    for t in range(1, tb + 1):
                        w0 = wb[0, t]
                        w1 = wb[1, t]
                        u0 = s1[0, ai, bi + t, x - rc]
                        d0 = s1[0, ai, bi - t, x - rc]
                        u1 = s1[1, ai, bi + t, x - rc]
                        d1 = s1[1, ai, bi - t, x - rc]
                        p0 = u0 + d0
                        acc0 += w0 * p0
                        acc1 += w1 * (u0 - d0)
                        acc2 += wb[2, t] * p0
                        acc3 += w0 * (u1 + d1)
                        acc4 += w1 * (u1 - d1)
                        acc5 += w0 * (s1[2, ai, bi + t, x - rc] + s1[2, ai, bi - t, x - rc])
                    row = s2[ai, bj, x]
                    row[0] = acc0
                    row[1] = acc1
                    row[2] = acc2
                    row[3] = acc3
                    row[4] = acc4
                    row[5] = acc5
        # stage 3 (axis c) over the object's extent of each row, then the descriptors
        for ai in range(na):
            for bj in range(nb):
                cmin = rows[ai, bj, 0]
                if cmin < 0:
                    continue
                n = rows[ai, bj, 1] - cmin + 1
                g = s2[ai, bj]
                a = sa0 + ai
                b = b0 + bj
                for i in range(n):
                    c = cmin + i
                    if lab[a, b, c] != label:
                        continue
                    m000, m001, m002, m010, m011, m020, m100, m101, m110, m200 = _moments_c(
                        g, c - c0 + rc, wc, min(rc, max(c - c0, c1 - 1 - c))
                    )
                    inv = 1.0 / m000
                    ma = m100 * inv
                    mb = m010 * inv
                    mc = m001 * inv
                    vaa = max((m200 * inv - ma * ma) * vs[0] * vs[0], 1e-3)
                    vbb = max((m020 * inv - mb * mb) * vs[1] * vs[1], 1e-3)
                    vcc = max((m002 * inv - mc * mc) * vs[2] * vs[2], 1e-3)
                    cab = (m110 * inv - ma * mb) * vs[0] * vs[1]
                    cac = (m101 * inv - ma * mc) * vs[0] * vs[2]
                    cbc = (m011 * inv - mb * mc) * vs[1] * vs[2]
                    out[channels[0], a, b, c] = _clip01(ma * vs[0] / sigma * 0.5 + 0.5)
                    out[channels[1], a, b, c] = _clip01(mb * vs[1] / sigma * 0.5 + 0.5)
                    out[channels[2], a, b, c] = _clip01(mc * vs[2] / sigma * 0.5 + 0.5)
                    out[channels[3], a, b, c] = _clip01(vaa * inv_s2)
                    out[channels[4], a, b, c] = _clip01(vbb * inv_s2)
                    out[channels[5], a, b, c] = _clip01(vcc * inv_s2)
                    out[channels[6], a, b, c] = _clip01(cab / np.sqrt(vaa * vbb) * 0.5 + 0.5)
                    out[channels[7], a, b, c] = _clip01(cac / np.sqrt(vaa * vcc) * 0.5 + 0.5)
                    out[channels[8], a, b, c] = _clip01(cbc / np.sqrt(vbb * vcc) * 0.5 + 0.5)
                    out[9, a, b, c] = _clip01(m000)
