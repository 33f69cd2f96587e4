"""The built-in demo: synthetic 3D data, then train → validate → apply two tasks.

Data (`make_demo_data`): an anisotropic volume (voxel size 16×8×8 nm, z×y×x) of touching
blob-shaped cells: random seeds, each cell the Voronoi region of its seed limited to a
noisy radius, so neighbours touch along flat faces (sharing one membrane) and some cells
stand alone in background. Raw (uint8) shows brighter cytoplasm with a per-cell level, dark
membranes (a band of ±10 nm around every cell boundary), a smooth texture, Gaussian noise
and a slight blur. As in membrane-annotated EM ground truth, the membrane band is label 0
in the GT: neighbouring cells are separated by their shared membrane, 1-3 voxels wide.
(With the boundary drawn as a one-voxel line inside the membrane instead, the affinities a
CPU-sized UNet learns in a few minutes are too blurred at that line for the watershed: the
demo's VOI goal needs the membrane to be the boundary.) Arrays in
``<root>/data/demo.zarr/{train,validate}/``: ``raw``, ``labels`` (instance ids, uint32),
``fg`` (labels > 0, uint8), ``classes`` (0 background, 1 cell, 2 membrane, uint8),
``mask`` (all ones, uint8).

The demo job (`run_demo`): a Distance task (channel ``cell`` on ``fg``) and an Affinities
task with LSDs (on ``labels``), each a small 3D UNet trained on CPU, validated over its
post-processing sweep, and applied blockwise to the validation raw with its best
checkpoint/parameters; score tables printed, plots in each run's ``plots/``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array, prepare_ds
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.tasks import AffinitiesTaskConfig, DistanceTaskConfig
from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.io.arrays import open_array
from dacapo.pipeline.apply import apply_run
from dacapo.runs.scores import format_table
from dacapo.tools.export.bioimageio import export_run
from dacapo.training.loop import train_run

logger = logging.getLogger(__name__)

VOXEL_SIZE = Coordinate(16, 8, 8)
TRAIN_SHAPE = (40, 112, 112)
VALIDATE_SHAPE = (32, 96, 96)


# --------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# the demo job
# --------------------------------------------------------------------------


#: iterations of the two demo runs (distance, affinities); ``--quick``: a few only
ITERATIONS = {"demo_distance": 150, "demo_affinities": 400}
QUICK_ITERATIONS = 4
#: validations during training
VALIDATIONS = {"demo_distance": 2, "demo_affinities": 4}


def demo_unet(name: str, input_shape=(12, 64, 64), eval_shape_increase=(8, 32, 32),
              num_fmaps: int = 8) -> CNNectomeUNetConfig:
    """The demo's small anisotropic 3D UNet: 3D convolutions only at the coarse level (the
    voxels are twice as long in z), ``num_fmaps`` feature maps out. With the defaults,
    input (12, 64, 64) -> output (8, 48, 48) voxels."""
    return CNNectomeUNetConfig(
        name=name,
        input_shape=tuple(input_shape),
        eval_shape_increase=tuple(eval_shape_increase),
        fmaps_in=1,
        fmaps_out=num_fmaps,
        num_fmaps=num_fmaps,
        fmap_inc_factor=2,
        downsample_factors=[(1, 2, 2)],
        kernel_size_down=[[(1, 3, 3), (1, 3, 3)], [(3, 3, 3), (3, 3, 3)]],
        kernel_size_up=[[(1, 3, 3), (1, 3, 3)]],
        padding="valid",
    )


def demo_run_configs(root: str | Path, quick: bool = False,
                     iterations: dict[str, int] | None = None) -> list:
    """The demo's two run configs (Distance, Affinities + LSDs) on the demo data."""

    data = Path(root).absolute() / "data" / "demo.zarr"
    iterations = {**ITERATIONS, **(iterations or {})}

    def split(gt: str) -> DataSplitConfig:
        return DataSplitConfig(
            train=[DatasetConfig("train", f"{data}/train/raw", f"{data}/train/{gt}")],
            validate=[DatasetConfig("validate", f"{data}/validate/raw", f"{data}/validate/{gt}")],
        )

    def schedule(name: str) -> dict:
        # validate a few times: apply takes the best checkpoint, not just the last
        n = QUICK_ITERATIONS if quick else iterations[name]
        k = VALIDATIONS[name]
        return {"num_iterations": n, "validation_interval": max(1, n // k),
                "checkpoint_interval": max(1, n // k), "snapshot_interval": n,
                "num_workers": 0}

    # --quick: batches in this process (no worker start-up for a handful of iterations).
    # The demo's model is so small that preparing a batch costs more than a step: the
    # training process leaves the data worker a core of its own.
    workers = 0 if quick else 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    trainer = TrainerConfig(batch_size=2, learning_rate=5e-3, num_data_workers=workers,
                            torch_threads=max(1, (cores or 1) - workers))
    distance = RunConfig(
        name="demo_distance",
        task_config=DistanceTaskConfig(
            "distance", channels=["cell"], clip_distance=80, tol_distance=40, scale_factor=50
        ),
        architecture_config=demo_unet("unet_distance"),
        datasplit_config=split("fg"),
        trainer_config=trainer,
        **schedule("demo_distance"),
    )
    affinities = RunConfig(
        name="demo_affinities",
        task_config=AffinitiesTaskConfig(
            "affinities",
            neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0), (0, 4, 0), (0, 0, 4)],
            lsds=True,
            num_lsd_voxels=3,
            downsample_lsds=2,
        ),
        architecture_config=demo_unet("unet_affinities"),
        datasplit_config=split("labels"),
        trainer_config=trainer,
        **schedule("demo_affinities"),
    )
    return [distance, affinities]


def evaluate_output(run_config, output_path: str | Path) -> float:
    """The demo criterion of ``output_path`` (an applied segmentation) against the
    validation GT, on the output's ROI, with the task's own evaluator."""


    task = run_config.task_config.build()
    output = open_array(output_path, "segmentation")
    gt = open_array(run_config.datasplit_config.validate[0].gt, "gt")
    roi = output.roi.intersect(gt.roi)

    def crop(a: Array) -> Array:
        return Array(np.asarray(a.to_ndarray(roi)), roi.offset, a.voxel_size,
                     axis_names=a.axis_names, units=a.units)

    scores = task.evaluator.evaluate(crop(output), crop(gt))
    return float(scores[DEMO_CRITERIA[run_config.name][0]])


#: criterion, goal and whether higher is better, per demo run
DEMO_CRITERIA = {"demo_distance": ("cell__dice", 0.9, True),
                 "demo_affinities": ("voi", 0.5, False)}
TIME_GOAL_S = 300


def run_demo(root: str | Path = "demo_runs", quick: bool = False, echo=print,
             train_shape=TRAIN_SHAPE, validate_shape=VALIDATE_SHAPE,
             num_workers: int = 2) -> dict:
    """Generate data, train/validate/apply both demo runs; returns the results per run.

    Each run is applied to the validation raw (blockwise, ``num_workers`` workers) with its
    best checkpoint and parameters, and that output is scored against the validation GT.
    """

    t0 = time.perf_counter()
    root = Path(root)
    echo(f"writing synthetic data to {root / 'data' / 'demo.zarr'}")
    container = make_demo_data(root, train_shape=train_shape, validate_shape=validate_shape)
    echo(f"  done ({time.perf_counter() - t0:.1f} s)")
    results: dict = {}
    for rc in demo_run_configs(root, quick):
        t1 = time.perf_counter()
        echo(f"\n== {rc.name}: {type(rc.task_config).__name__}, {rc.num_iterations} iterations")
        run_dir = train_run(rc, root, progress=sys.stderr.isatty())
        echo(format_table(run_dir))
        criterion, goal, higher = DEMO_CRITERIA[rc.name]
        out = container / "validate" / f"{rc.name}_segmentation"
        apply_run(run_dir.path, container / "validate" / "raw", out, criterion=criterion,
                  num_workers=num_workers, progress=False)
        value = evaluate_output(rc, out)
        best = run_dir.load_best().get(criterion, {})
        package = run_dir.path / "model.zip"
        if not quick and not package.exists():  # a bioimage.io package of the applied model
            export_run(run_dir.path, package, criterion=criterion)
            echo(f"  exported {package} (bioimage.io; dacapo export {run_dir.path} ...)")
        results[rc.name] = {
            "criterion": criterion,
            "value": value,
            "goal_met": bool(value >= goal if higher else value <= goal),
            "goal": f"{'>=' if higher else '<='} {goal}",
            "iteration": best.get("iteration"),
            "parameters": best.get("parameters"),
            "seconds": time.perf_counter() - t1,
            "segmentation": str(out),
            "run_dir": str(run_dir.path),
        }
        echo(f"  applied (iteration {best.get('iteration')}) -> {out}  "
             f"({time.perf_counter() - t1:.1f} s for this run)")
    total = time.perf_counter() - t0
    echo("\n== demo summary (applied segmentation of the validation volume vs its GT)")
    for name, r in results.items():
        echo(f"  {name:16s} {r['criterion']:10s} {r['value']:.4f} (goal {r['goal']}: "
             f"{'met' if r['goal_met'] else 'NOT met'}), {r['seconds']:.0f} s; plots in "
             f"{r['run_dir']}/plots")
    echo(f"  wall time {total:.1f} s (goal <= {TIME_GOAL_S} s: "
         f"{'met' if total <= TIME_GOAL_S else 'NOT met'})")
    for r in (r for r in results.values() if isinstance(r, dict)):
        echo(f"  look at it: dacapo view {r['run_dir']}   (or: dacapo view "
             f"{container / 'validate' / 'raw'} {r['segmentation']})")
    results["_total_seconds"] = total
    results["_goals_met"] = bool(all(r["goal_met"] for r in results.values()
                                     if isinstance(r, dict)) and total <= TIME_GOAL_S)
    return results
