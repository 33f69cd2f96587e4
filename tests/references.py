"""Brute-force references shared by several test folders: per-voxel transcriptions of the
definitions of `dacapo.ops` kernels (twins a kernel must equal) and the synthetic labels they are
checked on (among them the synthetic volumes and affinities of the watershed and agglomeration
tests). Plain functions, imported by the tests of `ops/`, `experiments/tasks/` and `segment/`
(tests/README.md says which shared code lives where)."""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from dacapo.ops.affinities import affinities
from dacapo.ops.binary_metrics import BINARY_METRIC_NAMES
from dacapo.ops.lsds import num_lsds

# --- affinities and their mask (dacapo.ops.affinities) ----------------------------------------


def brute_affinities(labels, neighborhood, background_as_object=False):
    """aff[k, u] = 1 iff u + o_k lies in the crop and label(u) == label(u + o_k), and
    label(u) != 0 unless background counts as an object."""
    out = np.zeros((len(neighborhood),) + labels.shape, np.uint8)
    for k, o in enumerate(neighborhood):
        for u in itertools.product(*map(range, labels.shape)):
            v = tuple(a + b for a, b in zip(u, o))
            if not all(0 <= c < n for c, n in zip(v, labels.shape)):
                continue
            same = labels[u] == labels[v]
            out[k][u] = same and (background_as_object or labels[u] != 0)
    return out


def brute_mask(mask, shape, neighborhood):
    out = np.zeros((len(neighborhood),) + tuple(shape), np.uint8)
    for k, o in enumerate(neighborhood):
        for u in itertools.product(*map(range, shape)):
            v = tuple(a + b for a, b in zip(u, o))
            if all(0 <= c < n for c, n in zip(v, shape)):
                out[k][u] = mask is None or (mask[u] != 0 and mask[v] != 0)
    return out


# --- class-balancing weights (dacapo.ops.balance) ---------------------------------------------


def brute_weights(labels, mask, num_classes, clipmin, clipmax, previous=None):
    """Per channel: count classes among masked-in voxels (plus ``previous``), fraction
    clipped, w = mask / (num_classes * f) voxel by voxel."""
    C = labels.shape[0]
    weights = np.zeros(labels.shape)
    counts = np.zeros((C, num_classes), np.int64)
    for c in range(C):
        m = np.ones(labels.shape[1:], bool) if mask is None else mask[c if mask.shape[0] > 1 else 0] != 0
        for v in zip(*np.nonzero(m)):
            counts[c, labels[c][v]] += 1
        if previous is not None:
            counts[c] += previous[c]
        total = counts[c].sum()
        for v in np.ndindex(labels.shape[1:]):
            if m[v] and total:
                f = min(max(counts[c, labels[c][v]] / total, clipmin), clipmax)
                weights[c][v] = 1 / (num_classes * f)
    return weights, counts


# --- the 21 binary metrics (dacapo.ops.binary_metrics) ----------------------------------------


def _coords(mask: np.ndarray, voxel_size) -> np.ndarray:
    return np.argwhere(mask) * np.asarray(voxel_size, dtype=float)


def _min_dists(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest target (brute force over all pairs)."""
    diff = points[:, None, :] - targets[None, :, :]
    return np.sqrt((diff**2).sum(-1)).min(axis=1)


def _cond_entropy(a: np.ndarray, b: np.ndarray) -> float:
    """H(a | b) in bits from explicit joint counts."""
    n = a.size
    h = 0.0
    for va, vb in itertools.product((0, 1), repeat=2):
        joint = np.count_nonzero((a == va) & (b == vb))
        marg = np.count_nonzero(b == vb)
        if joint:
            h -= joint / n * math.log2(joint / marg)
    return h


def brute_binary_metrics(test, truth, voxel_size, tol, clip) -> dict[str, float]:
    """Direct transcription of the definitions in dacapo.ops.binary_metrics (no EDT)."""
    S, T = test.astype(bool), truth.astype(bool)
    s, t = S.sum(), T.sum()
    nan = math.nan
    if s == 0 or t == 0:
        out = dict.fromkeys(BINARY_METRIC_NAMES, nan)
        out["hausdorff"] = 0.0 if s == t == 0 else nan
        if not (s == t == 0):
            out["dice"] = out["jaccard"] = 0.0
        return out
    fpd = _min_dists(_coords(S, voxel_size), _coords(T, voxel_size))
    fnd = _min_dists(_coords(T, voxel_size), _coords(S, voxel_size))
    tp, fp, fn = (S & T).sum(), (S & ~T).sum(), (T & ~S).sum()
    bg = (~T).sum()
    fp_tol, fn_tol = (fpd > tol).sum(), (fnd > tol).sum()
    tp_tol = (S | T).sum() - fp_tol - fn_tol
    p, r = tp / s, tp / t
    pt, rt = tp_tol / (tp_tol + fp_tol), tp_tol / (tp_tol + fn_tol)

    def f1(a, b):
        return nan if a + b == 0 else 2 * a * b / (a + b)

    mfp, mfn = fpd.mean(), fnd.mean()
    mfpc, mfnc = np.minimum(fpd, clip).mean(), np.minimum(fnd, clip).mean()
    return {
        "dice": 2 * tp / (s + t),
        "jaccard": tp / (S | T).sum(),
        "hausdorff": max(fpd.max(), fnd.max()),
        "false_negative_rate": fn / t,
        "false_negative_rate_with_tolerance": fn_tol / t,
        "false_discovery_rate": fp / s,
        "false_positive_rate": fp / bg if bg else nan,
        "false_positive_rate_with_tolerance": fp_tol / bg if bg else nan,
        "precision": p,
        "recall": r,
        "f1_score": f1(p, r),
        "precision_with_tolerance": pt,
        "recall_with_tolerance": rt,
        "f1_score_with_tolerance": f1(pt, rt),
        "voi": _cond_entropy(S, T) + _cond_entropy(T, S),
        "mean_false_positive_distance": mfp,
        "mean_false_negative_distance": mfn,
        "mean_false_distance": (mfp + mfn) / 2,
        "mean_false_positive_distance_clipped": mfpc,
        "mean_false_negative_distance_clipped": mfnc,
        "mean_false_distance_clipped": (mfpc + mfnc) / 2,
    }


# --- boundary distances (dacapo.ops.distances) ------------------------------------------------


def face_midpoints(values: np.ndarray) -> np.ndarray:
    """Index coordinates (float, half-integers along the face normal) of every face between
    axis neighbours of different value."""
    points = [np.zeros((0, values.ndim))]
    for k in range(values.ndim):
        a = np.moveaxis(values, k, 0)
        differ = np.moveaxis(a[1:] != a[:-1], 0, k)
        idx = np.argwhere(differ).astype(float)
        idx[:, k] += 0.5
        points.append(idx)
    return np.concatenate(points)


def brute_boundary_distance(values: np.ndarray, voxel_size) -> np.ndarray:
    """min over all face midpoints m of ||(v - m) * s||, every voxel v; inf without faces."""
    s = np.asarray(voxel_size, dtype=float)
    faces = face_midpoints(values) * s
    if len(faces) == 0:
        return np.full(values.shape, np.inf)
    centres = np.argwhere(np.ones(values.shape, bool)) * s
    d = np.sqrt(((centres[:, None, :] - faces[None, :, :]) ** 2).sum(-1)).min(axis=1)
    return d.reshape(values.shape)


def brute_signed_distance(mask: np.ndarray, voxel_size) -> np.ndarray:
    """+d inside, -d outside; ± half the smallest world extent without boundary."""
    mask = mask.astype(bool)
    d = brute_boundary_distance(mask, voxel_size)
    d[np.isinf(d)] = 0.5 * min(n * s for n, s in zip(mask.shape, voxel_size))
    return np.where(mask, d, -d)


def brute_inner_distance(labels: np.ndarray, voxel_size) -> np.ndarray:
    """Per voxel of label l != 0: distance to the nearest face between l and not-l."""
    out = np.zeros(labels.shape)
    extent = 0.5 * min(n * s for n, s in zip(labels.shape, voxel_size))
    for label in np.unique(labels):
        if label == 0:
            continue
        own = labels == label
        d = brute_boundary_distance(own, voxel_size)
        d[np.isinf(d)] = extent
        out[own] = d[own]
    return out


def random_labels(rng, shape, max_label) -> np.ndarray:
    """Blocky random labels (upsampled noise), so regions are bigger than one voxel."""
    coarse = rng.integers(0, max_label + 1, tuple((n + 1) // 2 for n in shape))
    fine = coarse
    for axis in range(len(shape)):
        fine = np.repeat(fine, 2, axis=axis)
    return fine[tuple(slice(0, n) for n in shape)]


# --- local shape descriptors (dacapo.ops.lsds) ------------------------------------------------


def blob_labels(shape, num, seed, background=0.3) -> np.ndarray:
    """Voronoi cells of random seeds (ids 1..num, some repeated so objects can be split in
    two pieces), with a random fraction of voxels set to background in whole cells."""
    rng = np.random.default_rng(seed)
    points = np.stack([rng.integers(0, s, num) for s in shape], axis=1)
    seeds = np.zeros(shape, np.int64)
    seeds[tuple(points.T)] = np.arange(1, num + 1)
    _, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[tuple(idx)]
    ids = rng.integers(1, max(2, num - 2), num + 1)  # merge some cells: disconnected objects
    ids[rng.random(num + 1) < background] = 0
    ids[0] = 0
    return ids[labels].astype(np.uint64)


def label_edges(labels: np.ndarray) -> np.ndarray:
    """True at the lower voxel of every axis-neighbour pair with different labels (setting
    them to 0 leaves one-voxel gaps between touching cells)."""
    edges = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        diff = np.diff(labels.astype(np.int64), axis=axis) != 0
        lower = [slice(None)] * labels.ndim
        lower[axis] = slice(0, -1)
        edges[tuple(lower)] |= diff
    return edges


def brute_lsds(labels: np.ndarray, voxel_size, sigma: float, downsample: int = 1) -> np.ndarray:
    """The definition applied literally (float64, world coordinates of voxel centres)."""
    if downsample > 1:
        f = downsample
        small = labels[(slice(None, None, f),) * labels.ndim]
        out = brute_lsds(small, [v * f for v in voxel_size], sigma)
        for axis in range(labels.ndim):
            out = np.repeat(out, f, axis=axis + 1)
        return out[(slice(None),) + tuple(slice(0, n) for n in labels.shape)]
    dims = labels.ndim
    sigma_vox = [sigma / v for v in voxel_size]

    def gauss(a):
        return ndimage.gaussian_filter(a, sigma_vox, mode="constant", cval=0.0, truncate=3.0)

    x = np.meshgrid(
        *[(np.arange(n) + 0.5) * v for n, v in zip(labels.shape, voxel_size)], indexing="ij"
    )
    pairs = [(i, j) for i in range(dims) for j in range(i + 1, dims)]
    out = np.zeros((num_lsds(dims),) + labels.shape)
    for label in np.unique(labels):
        if label == 0:
            continue
        m = (labels == label).astype(np.float64)
        c = gauss(m)
        c1 = np.where(c == 0, 1.0, c)
        mu = [gauss(x[i] * m) / c1 for i in range(dims)]
        cov = {
            (i, j): gauss(x[i] * x[j] * m) / c1 - mu[i] * mu[j]
            for i in range(dims)
            for j in range(i, dims)
        }
        var = [np.maximum(cov[i, i], 0.001) for i in range(dims)]
        channels = [(mu[i] - x[i]) / sigma * 0.5 + 0.5 for i in range(dims)]
        channels += [var[i] / sigma**2 for i in range(dims)]
        channels += [cov[i, j] / np.sqrt(var[i] * var[j]) * 0.5 + 0.5 for i, j in pairs]
        channels += [c]
        inside = labels == label
        for k, ch in enumerate(channels):
            out[k][inside] = np.clip(ch[inside], 0.0, 1.0)
    return out


# --- segmentation volumes (dacapo.ops.watershed, dacapo.ops.agglomeration, segment/) --------

#: the offsets of the mutex watershed tests' affinities
WATERSHED_OFFSETS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0), (0, 3, 0), (0, 0, 3)]
#: the nearest-neighbour offsets, and all offsets of the agglomeration tests' affinities
NN = [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
AGGLOMERATION_OFFSETS = NN + [(2, 0, 0), (0, 4, 0), (0, 0, 4)]


def make_labels(shape=(32, 32, 32), num=12, seed=0) -> np.ndarray:
    """Voronoi cells of random seeds, cut to balls (convex, so connected), with gaps."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.uint64)
    points = np.stack([rng.integers(0, s, num) for s in shape], axis=1)
    seeds[tuple(points.T)] = np.arange(1, num + 1)
    dist, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[tuple(idx)]
    labels[dist > 9] = 0
    labels[label_edges(labels)] = 0  # one-voxel gaps between touching cells
    return labels


def watershed_volume() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mutex watershed tests' volume: `make_labels`, their exact affinities (float32,
    `WATERSHED_OFFSETS`) and noisy ones (contrast 0.15..0.85, Gaussian noise 0.15)."""
    labels = make_labels()
    affs = brute_affinities(labels, WATERSHED_OFFSETS).astype(np.float32)
    rng = np.random.default_rng(1)
    noisy = np.clip(0.15 + 0.7 * affs + rng.normal(0, 0.15, affs.shape), 0, 1).astype(np.float32)
    return labels, affs, noisy


def noisy_affinities(labels, offsets=AGGLOMERATION_OFFSETS, noise=0.12, seed=1):
    """GT affinities, contrast 0.1..0.9, blurred (sigma 1 voxel) and with Gaussian noise."""
    affs = affinities(labels, offsets).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.stack([ndimage.gaussian_filter(0.1 + 0.8 * a, 1.0) for a in affs])
    return np.clip(out + rng.normal(0, noise, out.shape), 0, 1).astype(np.float32)


def agglomeration_volume() -> tuple[np.ndarray, np.ndarray]:
    """The agglomeration tests' volume: `make_labels` (32^3, 12 cells) and their
    `noisy_affinities` (`AGGLOMERATION_OFFSETS`)."""
    labels = make_labels((32, 32, 32), num=12)
    return labels, noisy_affinities(labels)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True iff the two labelings are the same partition (up to relabelling)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


# --- object matching (dacapo.ops.object_matching, the instance evaluators) --------------------


def brute_object_scores(pred, truth) -> dict[str, float]:
    """StarDist's object-matching scores by their definitions, under the instance evaluators'
    names: IoU of every (GT, prediction) pair of non-zero objects by loops over their masks;
    at each threshold t the one-to-one matching with the most pairs of IoU >= t (then the
    largest IoU sum) by enumerating every assignment — with more than 7 objects on a side by
    StarDist's dense assignment instead (``linear_sum_assignment`` of the whole IoU matrix,
    cost -[IoU >= t] - IoU / 2n; the kernel solves sparse components); TP, FP =
    unmatched predictions, FN = unmatched GT; precision, recall, f1 = 2TP / (2TP + FP + FN),
    ap50 = TP / (TP + FP + FN) and mean_matched_iou at t = 0.5; map and f1_50_95 the means
    of AP and F1 over t = 0.5, 0.55, ..., 0.95. A ratio 0/0 is NaN."""
    t_ids = [int(i) for i in np.unique(truth) if i != 0]
    p_ids = [int(j) for j in np.unique(pred) if j != 0]
    n = max(len(t_ids), len(p_ids))
    iou = np.zeros((n, n))
    for a, i in enumerate(t_ids):
        for b, j in enumerate(p_ids):
            ti, pj = truth == i, pred == j
            iou[a, b] = np.logical_and(ti, pj).sum() / np.logical_or(ti, pj).sum()

    def ratio(num, den):
        return num / den if den else math.nan

    f1s, aps, at_half = [], [], None
    for t in [round(0.5 + 0.05 * k, 2) for k in range(10)]:
        tp, total = 0, 0.0
        if n > 7:
            ok = iou >= t
            rows, cols = linear_sum_assignment(-ok.astype(float) - np.where(ok, iou, 0.0) / (2 * n))
            hit = ok[rows, cols] & (iou[rows, cols] > 0)
            tp, total = int(hit.sum()), float(iou[rows, cols][hit].sum())
        for perm in itertools.permutations(range(n)) if n <= 7 else ():
            vals = [iou[a, perm[a]] for a in range(n) if iou[a, perm[a]] >= t and iou[a, perm[a]] > 0]
            if (len(vals), sum(vals)) > (tp, total + 1e-12):
                tp, total = len(vals), float(sum(vals))
        fp, fn = len(p_ids) - tp, len(t_ids) - tp
        f1s.append(ratio(2 * tp, 2 * tp + fp + fn))
        aps.append(ratio(tp, tp + fp + fn))
        if at_half is None:
            at_half = (tp, fp, fn, total)
    tp, fp, fn, total = at_half
    return {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "f1": f1s[0],
            "ap50": aps[0], "mean_matched_iou": ratio(total, tp),
            "map": float(np.mean(aps)), "f1_50_95": float(np.mean(f1s))}
