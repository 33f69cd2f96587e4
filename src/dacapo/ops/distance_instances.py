"""Instances from a predicted (inner or signed) distance: seeds at its maxima, watershed.

Notation: ``f`` = one channel of the prediction (tanh-normalised distance, high inside
objects), ``s`` = voxel size (world units, array axis order), ``N(v)`` = the 3^n − 1 voxels
around ``v`` (full connectivity), ``g = f − h`` evaluated in float64.

1. Mask: ``M = {v : f(v) > threshold}``.
2. Seed voxels (``h`` is None): ``S = {v : f(v) > seed_threshold}`` — the two-threshold
   rule (touching objects separate where the distance dips below ``seed_threshold``).
   Seed voxels (``h >= 0``): the h-maxima (Soille, *Morphological Image Analysis*, 2003,
   §6.3.4) above ``seed_threshold``: ``v ∈ S`` iff ``f(v) > seed_threshold`` and no path
   (steps in ``N``) leads from ``v`` to a voxel ``u`` with ``g(u) > g(v)`` through voxels
   that all have ``f > g(v)``. Equivalently ``R(v) <= g(v)`` with ``R`` the grey
   reconstruction by dilation of ``g`` under ``f`` — how it is computed
   (``skimage.morphology.reconstruction``). So a peak yields a seed (its top) unless a
   higher peak is reachable without descending more than ``h``; ``h = 0`` gives the local
   maxima (no higher voxel in ``N(v)``; plateaus included), computed with a maximum filter.
3. Seeds: the connected components (full connectivity) of ``S ∩ M``; with
   ``min_seed_distance = r > 0`` components are joined when they are within ``r`` of each
   other, i.e. the components of the dilation ``{v : min_{u ∈ S ∩ M} ‖(v − u) ⊙ s‖ <= r/2}``
   (exact anisotropic EDT, ``edt``) give the seed ids of the seed voxels they contain.
4. Watershed (Meyer's flooding, `dacapo.ops.flood.flood`: ``−f`` quantised to steps of
   2^-12, ties first-in first-out) of ``−f`` from the seeds inside ``M`` with face
   connectivity: each voxel of ``M`` connected to a seed gets the id of
   the seed whose flood reaches it first (flooding from the highest distance down).
5. Components of ``M`` (face connectivity) without a seed become one object each, so no
   foreground is lost. (``min_size`` is applied by the caller: blockwise runs apply it to
   whole stitched objects.)

Labels: uint64, 0 = background, ids 1..n in order of first occurrence (C order).
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import edt
import fastremap
import numpy as np
from scipy.ndimage import maximum_filter
from skimage.morphology import reconstruction

from .flood import flood

__all__ = [
    "distance_instances",
    "h_maxima_voxels",
    "join_seeds",
    "seed_voxels",
]


def _full_footprint(dims: int) -> np.ndarray:
    return np.ones((3,) * dims, dtype=bool)


def h_maxima_voxels(f: np.ndarray, h: float) -> np.ndarray:
    """Boolean h-maxima voxels of ``f`` (step 2 of the module docstring): ``R(v) <= g(v)``
    with ``g = f − h`` (float64) and ``R`` the reconstruction by dilation of ``g`` under
    ``f`` (full connectivity); for ``h = 0`` the local maxima ``f >= max over N(v) of f``
    (there ``R = f`` everywhere, so the reconstruction test would not discriminate)."""
    if not h >= 0:
        raise ValueError(f"h: must be >= 0, got {h}")
    f = np.asarray(f, dtype=np.float64)
    if f.size == 0:
        return np.zeros(f.shape, bool)
    if h == 0:  # local maxima: no neighbour is higher (R = f would mark every voxel)
        return f >= maximum_filter(f, footprint=_full_footprint(f.ndim), mode="nearest")
    g = f - float(h)
    r = reconstruction(g, f, method="dilation", footprint=_full_footprint(f.ndim))
    return r <= g


def seed_voxels(f: np.ndarray, seed_threshold: float, h: float | None) -> np.ndarray:
    """Seed voxels ``S``: ``f > seed_threshold``, and h-maxima when ``h`` is not None."""
    seeds = np.asarray(f) > seed_threshold
    if h is not None:
        seeds &= h_maxima_voxels(f, h)
    return seeds


def join_seeds(seeds: np.ndarray, voxel_size: Sequence[float], min_seed_distance: float) -> np.ndarray:
    """Seed ids (uint64, 0 = no seed) of the boolean ``seeds``: connected components (full
    connectivity), joined by the ``min_seed_distance / 2`` dilation when it is > 0."""
    seeds = np.asarray(seeds, dtype=bool)
    connectivity = 26 if seeds.ndim == 3 else 8
    if min_seed_distance > 0 and seeds.any():
        dist = edt.edt(np.ascontiguousarray(~seeds), anisotropy=tuple(float(v) for v in voxel_size),
                       black_border=False)
        grown = dist <= min_seed_distance / 2
        labels = cc3d.connected_components(grown, connectivity=connectivity)
    else:
        labels = cc3d.connected_components(seeds, connectivity=connectivity)
    labels = labels.astype(np.uint64, copy=False)
    labels[~seeds] = 0
    return labels


def distance_instances(
    f: np.ndarray,
    voxel_size: Sequence[float],
    threshold: float,
    seed_threshold: float,
    h: float | None = None,
    min_seed_distance: float = 0.0,
) -> np.ndarray:
    """Instance labels of one distance channel ``f`` (module docstring, steps 1–5)."""
    f = np.asarray(f)
    if f.ndim not in (2, 3):
        raise ValueError(f"prediction: expected 2 or 3 spatial dims, got shape {f.shape}")
    if len(voxel_size) != f.ndim:
        raise ValueError(f"voxel_size {tuple(voxel_size)} does not match {f.ndim} spatial dims")
    if not np.all(np.isfinite(f)):
        raise ValueError("prediction: contains non-finite values")
    if min_seed_distance < 0:
        raise ValueError(f"min_seed_distance: must be >= 0, got {min_seed_distance}")
    mask = f > threshold
    if not mask.any():
        return np.zeros(f.shape, np.uint64)
    markers = join_seeds(seed_voxels(f, seed_threshold, h) & mask, voxel_size, min_seed_distance)
    labels = flood(np.negative(f, dtype=np.float32), markers, mask)
    orphans = mask & (labels == 0)
    if orphans.any():
        face = 6 if f.ndim == 3 else 4
        extra = cc3d.connected_components(orphans, connectivity=face).astype(np.uint64)
        extra[orphans] += np.uint64(labels.max())
        labels[orphans] = extra[orphans]
    labels, _ = fastremap.renumber(labels, preserve_zero=True, in_place=True)
    return labels.astype(np.uint64, copy=False)
