"""The demo's synthetic data: an anisotropic volume of touching blob-shaped cells.

An anisotropic volume (voxel size 16×8×8 nm, z×y×x) of touching blob-shaped cells: random
seeds, each cell the Voronoi region of its seed limited to a noisy radius, so neighbours
touch along flat faces (sharing one membrane) and some cells stand alone in background. Raw
(uint8) shows brighter cytoplasm with a per-cell level, dark membranes (a band of ±10 nm
around every cell boundary), a smooth texture, Gaussian noise and a slight blur. As in
membrane-annotated EM ground truth, the membrane band is label 0 in the GT: neighbouring
cells are separated by their shared membrane, 1-3 voxels wide. (With the boundary drawn as
a one-voxel line inside the membrane instead, the affinities a CPU-sized UNet learns in a
few minutes are too blurred at that line for the watershed: the demo's VOI goal needs the
membrane to be the boundary.) Arrays in ``<root>/data/demo.zarr/{train,validate}/``:
``raw``, ``labels`` (instance ids, uint32), ``fg`` (labels > 0, uint8), ``classes``
(0 background, 1 cell, 2 membrane, uint8), ``mask`` (all ones, uint8).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import prepare_ds
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

VOXEL_SIZE = Coordinate(16, 8, 8)
TRAIN_SHAPE = (40, 112, 112)
VALIDATE_SHAPE = (32, 96, 96)


def synthetic_cells(
    shape: tuple[int, ...],
    voxel_size: Coordinate,
    rng: np.random.Generator,
    cell_radius: float = 150.0,
    membrane: float = 10.0,
    noise: float = 0.05,
    blur: float = 6.0,
    gap: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw uint8, labels uint32, membrane bool) of touching blob-shaped cells (world
    units in nm). ``gap``: the membrane band is label 0 (else cells meet at a face)."""

    vs = np.asarray(voxel_size, dtype=float)
    extent = np.asarray(shape) * vs
    # seeds: dart throwing with a minimal distance, so cells have similar sizes
    n_target = int(np.prod(extent) / (4 / 3 * math.pi * cell_radius**3) * 1.2) + 2
    seeds: list[np.ndarray] = []
    for _ in range(n_target * 30):
        p = rng.uniform(-0.3 * cell_radius, extent + 0.3 * cell_radius)
        if all(np.linalg.norm(p - q) > 1.4 * cell_radius for q in seeds):
            seeds.append(p)
        if len(seeds) >= n_target:
            break
    seeds_arr = np.asarray(seeds)
    radii = rng.uniform(0.85, 1.25, size=len(seeds_arr)) * cell_radius

    grid = np.stack(np.meshgrid(*[(np.arange(s) + 0.5) * v for s, v in zip(shape, vs)],
                                indexing="ij"), axis=-1).reshape(-1, len(shape))
    tree = cKDTree(seeds_arr)
    dist, idx = tree.query(grid, k=2)
    d1, d2 = dist[:, 0].reshape(shape), dist[:, 1].reshape(shape)
    nearest = idx[:, 0].reshape(shape)

    sigma = tuple(0.5 * cell_radius / v for v in vs)
    wobble = gaussian_filter(rng.normal(size=shape), sigma)
    wobble *= 0.18 / (wobble.std() + 1e-9)
    inside = d1 < radii[nearest] * (1 + wobble)
    labels = np.where(inside, nearest + 1, 0).astype(np.uint32)
    # relabel to 1..n in order of appearance
    ids = np.unique(labels[labels > 0])
    lut = np.zeros(len(seeds_arr) + 2, dtype=np.uint32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.uint32)
    labels = lut[labels]

    # membranes: a band of half-width ``membrane`` centred on every label edge, from the
    # geometry (not the voxels), so that the dark band is symmetric about the GT boundary
    # along every axis: the Voronoi face between two seeds (where either cell is present)
    # and the cell surface d1 = radius.
    second = idx[:, 1].reshape(shape)
    reach1 = radii[nearest] * (1 + wobble)
    reach2 = radii[second] * (1 + wobble)
    near_face = ((d2 - d1) / 2 < membrane) & ((d1 < reach1) | (d2 < reach2))
    near_surface = np.abs(d1 - reach1) < membrane
    membrane_mask = near_face | near_surface
    level = rng.uniform(0.55, 0.75, size=len(ids) + 1)
    level[0] = 0.35
    raw = level[labels]
    if gap:
        labels = np.where(membrane_mask, 0, labels).astype(np.uint32)
        ids = np.unique(labels[labels > 0])  # a cell thinner than its membrane vanishes
        lut = np.zeros(int(labels.max()) + 1, dtype=np.uint32)
        lut[ids] = np.arange(1, len(ids) + 1, dtype=np.uint32)
        labels = lut[labels]
    texture = gaussian_filter(rng.normal(size=shape), tuple(20.0 / v for v in vs))
    raw = raw + 0.06 * texture / (texture.std() + 1e-9)
    raw[membrane_mask] = 0.12
    if blur > 0:
        raw = gaussian_filter(raw, tuple(blur / v for v in vs))
    raw = raw + rng.normal(0, noise, size=shape)
    raw_u8 = np.clip(raw * 255, 0, 255).astype(np.uint8)
    return raw_u8, labels, membrane_mask


def _write(path: str, data: np.ndarray, voxel_size: Coordinate) -> None:

    chunks = tuple(min(s, 64) for s in data.shape)
    ds = prepare_ds(
        path, shape=data.shape, offset=Coordinate((0,) * data.ndim), voxel_size=voxel_size,
        axis_names=["z", "y", "x"][-data.ndim:], units=["nm"] * data.ndim,
        dtype=data.dtype, chunk_shape=chunks, mode="w",
    )
    ds[ds.roi] = data


def make_demo_data(root: str | Path, seed: int = 1, train_shape=TRAIN_SHAPE,
                   validate_shape=VALIDATE_SHAPE) -> Path:
    """Write the synthetic dataset; returns the zarr container path. Idempotent."""
    container = Path(root) / "data" / "demo.zarr"
    marker = container / ".complete"
    if marker.exists():
        return container
    container.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, shape in (("train", train_shape), ("validate", validate_shape)):
        raw, labels, membrane = synthetic_cells(tuple(shape), VOXEL_SIZE, rng)
        fg = (labels > 0).astype(np.uint8)
        classes = np.where(labels > 0, 1, np.where(membrane, 2, 0)).astype(np.uint8)
        for name, data in (("raw", raw), ("labels", labels), ("fg", fg), ("classes", classes),
                           ("mask", np.ones_like(fg))):
            _write(str(container / split / name), data, VOXEL_SIZE)
    marker.write_text("ok\n")
    return container
