"""Training: random crops -> augmentations -> targets/weights -> optimiser steps.

Batches
    Batch ``i`` (the one that produces iteration ``i + 1``) is drawn with the generator
    ``numpy.random.default_rng([seed, i])``: a random training dataset, a random output ROI
    (the model output shape, on the voxel grid, inside raw ∩ gt (∩ mask)), the raw input
    ROI around it (zero-padded outside the raw) and the GT region the predictor asks for
    (``predictor.gt_region_for_roi``; voxels outside the GT or the mask are masked out).
    Crops with a labelled fraction below ``min_masked`` or a non-zero GT fraction below
    ``min_foreground`` (both in the output ROI) are redrawn (up to 50 times). Targets and
    weights come from ``predictor.create_target``/``create_weight`` on the augmented GT and
    are cropped to the output ROI. ``moving_class_counts`` is carried from batch to batch
    in ``max(1, num_data_workers)`` streams: batch ``i`` continues stream ``i % streams``
    (the torch DataLoader hands out batches round-robin, so each worker owns one stream).
    The counts of every stream are saved with each checkpoint and restored on resume, so
    a run is deterministic given the seed, ``num_data_workers`` and the number of torch
    threads, resumed or not.

Processes
    Batches are made by ``num_data_workers`` spawned processes (torch DataLoader, one torch
    thread each); the main process only runs the model, with ``trainer.torch_threads``
    threads (0: torch's default, every core; all of them again while validating). When
    batch preparation costs more than a model step (a small model on few cores), leaving
    the workers their cores (``torch_threads = cores - num_data_workers``) is faster:
    OpenMP threads of the model would otherwise take the CPU the workers need. Training
    arrays of at most ``CACHE_BYTES`` are read into memory once per worker (`Volume`).

Checkpoints and resume
    Every ``checkpoint_interval`` iterations (and at the end, and before each validation)
    ``checkpoints/<iteration>.pt`` holds model and optimiser state, written atomically. A
    re-run of the same config resumes from the latest checkpoint: rows of
    ``training_stats.csv`` after it are dropped and training continues with batch
    ``latest``, so an interrupted run reproduces an uninterrupted one (same batches, same
    weights, same class counts: the same losses). A validation the interruption cut short
    (its checkpoint exists, its scores do not) is done first.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.augment import augment
from dacapo.experiments.datasplits import normalize_raw
from dacapo.experiments.run_config import RunConfig
from dacapo.store.arrays import in_memory, read_padded
from dacapo.store.run_dir import RunDir

logger = logging.getLogger(__name__)

MAX_REJECTIONS = 50
#: training arrays up to this size are read into memory once per data worker (reading crops
#: from memory instead of through dask/zarr makes a batch several times faster)
CACHE_BYTES = 512 * 2**20


def as_numpy(array: Array) -> np.ndarray:
    """The data of a funlib `Array`, without a dask round trip for in-memory arrays."""
    source = getattr(array, "_source_data", None)
    if isinstance(source, np.ndarray) and not getattr(array, "lazy_ops", None):
        return source
    return np.asarray(array.data)


class Volume:
    """Crops of one array (zero outside its ROI): from memory when it is at most
    ``cache_bytes`` large, else read through funlib.persistence."""

    def __init__(self, array: Array, cache_bytes: int = CACHE_BYTES) -> None:
        self.array = array
        self.roi = array.roi
        self.voxel_size = array.voxel_size
        nbytes = int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize
        self.data = np.asarray(array[array.roi]) if nbytes <= cache_bytes else None

    def read(self, roi: Roi, fill_value=0) -> np.ndarray:
        if self.data is None:
            return np.asarray(self.array.to_ndarray(roi, fill_value=fill_value))
        return read_padded(self.data, self.roi, self.voxel_size, roi, fill_value)


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------


class CropGeometry:
    """Input/output shapes of a model on a dataset's voxel grid (world units)."""

    def __init__(self, model, raw_voxel_size: Coordinate, input_shape: Coordinate | None = None):
        self.input_shape = Coordinate(input_shape if input_shape is not None else model.input_shape)
        _, self.output_shape = model.compute_output_shape(self.input_shape)
        self.voxel_size = Coordinate(raw_voxel_size)
        self.output_voxel_size = Coordinate(model.scale(self.voxel_size))
        self.input_size = self.input_shape * self.voxel_size
        self.output_size = Coordinate(self.output_shape) * self.output_voxel_size
        diff = self.input_size - self.output_size
        if any(d < 0 or d % 2 or (d // 2) % v for d, v in zip(diff, self.voxel_size)):
            raise ValueError(
                f"model: input {tuple(self.input_size)} and output {tuple(self.output_size)} "
                "(world units) are not centred on each other"
            )
        self.context = diff / 2


def snap_roi(roi: Roi, voxel_size: Coordinate) -> Roi:
    """Largest ROI inside ``roi`` on the ``voxel_size`` grid."""
    begin = Coordinate(math.ceil(b / v) * v for b, v in zip(roi.begin, voxel_size))
    end = Coordinate(math.floor(e / v) * v for e, v in zip(roi.end, voxel_size))
    return Roi(begin, Coordinate(max(0, e - b) for b, e in zip(begin, end)))


# --------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------


class BatchProvider(torch.utils.data.Dataset):
    """Batch ``i`` of a run (see the module docstring); used by a torch DataLoader.

    Opens arrays and builds the task lazily, so each worker process does it once.
    """

    def __init__(self, run_config: RunConfig, input_shape=None, with_snapshot_every: int = 0,
                 initial_counts: dict[int, Any] | None = None):
        self.run_config = run_config
        self.input_shape = None if input_shape is None else Coordinate(input_shape)
        self.with_snapshot_every = with_snapshot_every
        self.streams = max(1, run_config.trainer_config.num_data_workers)
        self.initial_counts = dict(initial_counts or {})
        self._state: dict[str, Any] | None = None

    def __len__(self) -> int:
        return self.run_config.num_iterations

    def __getstate__(self):
        return {**self.__dict__, "_state": None}

    def _setup(self) -> dict[str, Any]:
        if self._state is None:
            rc = self.run_config
            task = rc.task_config.build()
            model = task.create_model(rc.architecture_config)
            datasets = [d.open() for d in rc.datasplit_config.train]
            geometries = [CropGeometry(model, ds.raw.voxel_size, self.input_shape) for ds in datasets]
            volumes = [
                {name: None if getattr(ds, name) is None else Volume(getattr(ds, name))
                 for name in ("raw", "gt", "mask")}
                for ds in datasets
            ]
            self._state = {
                "predictor": task.predictor,
                "datasets": datasets,
                "volumes": volumes,
                "geometries": geometries,
                "counts": dict(self.initial_counts),
            }
        return self._state

    def __getitem__(self, index: int) -> dict[str, Any]:
        import dask

        # the predictors' small in-memory dask reads: no thread pool hand-offs
        with dask.config.set(scheduler="synchronous"):
            return self._batch(index)

    def _batch(self, index: int) -> dict[str, Any]:
        state = self._setup()
        rng = np.random.default_rng([int(self.run_config.seed), int(index)])
        stream = int(index) % self.streams
        samples = []
        for _ in range(self.run_config.trainer_config.batch_size):
            sample, state["counts"][stream] = self._sample(state, rng, state["counts"].get(stream))
            samples.append(sample)
        batch = {
            "iteration": index,
            # pickled, so that the DataLoader passes it through untouched
            "counts": pickle.dumps((stream, state["counts"][stream])),
            "raw": np.stack([s["raw"] for s in samples]),
            "target": np.stack([s["target"] for s in samples]),
            "weight": np.stack([s["weight"] for s in samples]),
        }
        every = self.with_snapshot_every
        if every and (index + 1) % every == 0:
            batch["snapshot"] = samples[0]
        return batch

    def _sample(self, state: dict[str, Any], rng: np.random.Generator,
                counts: Any) -> tuple[dict[str, Any], Any]:
        tc = self.run_config.trainer_config
        k = int(rng.integers(len(state["datasets"])))
        ds = state["datasets"][k]
        vol = state["volumes"][k]
        geo: CropGeometry = state["geometries"][k]
        predictor = state["predictor"]
        ovs = geo.output_voxel_size
        region = snap_roi(ds.training_roi, ovs)
        slack = region.shape - geo.output_size
        if any(s < 0 for s in slack):
            raise ValueError(
                f"dataset {ds.name!r}: labelled region {tuple(region.shape)} is smaller than "
                f"the model output {tuple(geo.output_size)} (world units)"
            )
        step = Coordinate(
            v * o // math.gcd(v, o) for v, o in zip(geo.voxel_size, ovs)
        )  # on both grids
        margin = tc.augment.elastic_margin(step)
        for _attempt in range(MAX_REJECTIONS + 1):
            offset = region.begin + Coordinate(
                int(rng.integers(s // st + 1)) * st for s, st in zip(slack, step)
            )
            out_roi = Roi(offset, geo.output_size)
            gt_roi = predictor.gt_region_for_roi(out_roi, ovs)
            gt_read = gt_roi.grow(margin, margin)
            mask = _valid_mask(ds, vol["mask"], gt_read)
            if tc.min_masked <= 0 and tc.min_foreground <= 0:
                break
            inner = _crop(mask, gt_read, out_roi, ovs)
            if inner.mean() < tc.min_masked:
                continue
            if tc.min_foreground > 0:
                gt_out = vol["gt"].read(out_roi)
                if np.mean(gt_out != 0) < tc.min_foreground:
                    continue
            break
        else:
            logger.debug("dataset %s: no crop passed the rejection criteria", ds.name)
        in_read = out_roi.grow(geo.context, geo.context).grow(margin, margin)
        raw = normalize_raw(vol["raw"].read(in_read))
        if raw.ndim == geo.voxel_size.dims:
            raw = raw[None]
        gt = vol["gt"].read(gt_read)
        raw, (gt, mask) = augment(raw, [gt, mask], ovs, tc.augment, rng)
        if margin != Coordinate((0,) * len(margin)):
            raw = _crop(raw, in_read, in_read.grow(-margin, -margin), geo.voxel_size)
            gt = _crop(gt, gt_read, gt_roi, ovs)
            mask = _crop(mask, gt_read, gt_roi, ovs)
        gt_array = Array(
            in_memory(gt), offset=gt_roi.offset, voxel_size=ovs, axis_names=ds.gt.axis_names,
            units=ds.gt.units,
        )
        spatial_names = ds.gt.axis_names[len(ds.gt.axis_names) - ovs.dims :]
        mask_array = Array(
            in_memory(mask.astype(np.uint8)), offset=gt_roi.offset, voxel_size=ovs,
            axis_names=spatial_names, units=ds.gt.units,
        )
        target = predictor.create_target(gt_array)
        weight, counts = predictor.create_weight(
            gt_array, target, mask_array, moving_class_counts=counts
        )
        target_data = _with_channels(_crop(as_numpy(target), target.roi, out_roi, ovs), ovs.dims)
        weight_data = _with_channels(_crop(as_numpy(weight), weight.roi, out_roi, ovs), ovs.dims)
        return {
            "raw": np.ascontiguousarray(raw, dtype=np.float32),
            "target": np.ascontiguousarray(target_data, dtype=np.float32),
            "weight": np.ascontiguousarray(weight_data, dtype=np.float32),
            "gt": gt,
            "mask": mask.astype(np.uint8),
            "raw_offset": np.asarray(in_read.grow(-margin, -margin).offset),
            "gt_offset": np.asarray(gt_roi.offset),
            "out_offset": np.asarray(out_roi.offset),
            "voxel_size": np.asarray(geo.voxel_size),
            "output_voxel_size": np.asarray(ovs),
        }, counts


def _with_channels(data: np.ndarray, dims: int) -> np.ndarray:
    return data[None] if data.ndim == dims else data


def _crop(data: np.ndarray, data_roi: Roi, roi: Roi, voxel_size: Coordinate) -> np.ndarray:
    """The part of ``data`` (covering ``data_roi``) inside ``roi`` (trailing spatial axes)."""
    begin = (roi.begin - data_roi.begin) / voxel_size
    shape = roi.shape / voxel_size
    lead = (slice(None),) * (data.ndim - voxel_size.dims)
    return data[lead + tuple(slice(b, b + s) for b, s in zip(begin, shape))]


def _valid_mask(ds, mask: Volume | None, roi: Roi) -> np.ndarray:
    """1 where the GT exists (and the mask, if any, is non-zero) inside ``roi``."""
    vs = ds.gt.voxel_size
    shape = tuple(roi.shape / vs)
    valid = np.zeros(shape, dtype=bool)
    inside = roi.intersect(ds.gt.roi)
    if not inside.empty:
        begin = (inside.begin - roi.begin) / vs
        sl = tuple(slice(b, b + s) for b, s in zip(begin, inside.shape / vs))
        valid[sl] = True
    if mask is not None:
        m = mask.read(roi)
        m = m.reshape(m.shape[m.ndim - vs.dims :]) if m.ndim > vs.dims else m
        valid &= m != 0
    return valid


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)


def make_loader(provider: BatchProvider, start: int, stop: int, num_workers: int):
    """An iterator over batches ``start .. stop-1``."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs = {
            "multiprocessing_context": "spawn",
            "worker_init_fn": _worker_init,
            "prefetch_factor": 4,
        }
    return torch.utils.data.DataLoader(
        provider,
        batch_size=None,
        sampler=range(start, stop),
        num_workers=num_workers,
        **kwargs,
    )


# --------------------------------------------------------------------------
# model, optimiser, one step
# --------------------------------------------------------------------------


def choose_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(run_config: RunConfig, task=None):
    """The run's model, initialised deterministically from the run seed."""
    task = task or run_config.task_config.build()
    torch.manual_seed(int(run_config.seed))
    return task.create_model(run_config.architecture_config)


def make_optimizer(model: torch.nn.Module, trainer_config) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if trainer_config.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=trainer_config.learning_rate, weight_decay=trainer_config.weight_decay)


def train_step(model, optimizer, loss, raw, target, weight) -> tuple[float, torch.Tensor]:
    """One optimiser step on tensors already on the model's device; (loss, prediction)."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    prediction = model(raw)
    value = loss.compute(prediction, target, weight)
    value.backward()
    optimizer.step()
    return float(value.detach()), prediction.detach()


# --------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------


#: settings a re-run may change: the schedule and how the work is spread over the machine
FREE_FIELDS = {"num_iterations", "validation_interval", "checkpoint_interval",
               "snapshot_interval", "num_workers", "device"}
FREE_TRAINER_FIELDS = {"num_data_workers", "torch_threads"}


def _comparable(config: dict) -> dict:
    out = {k: v for k, v in config.items() if k not in FREE_FIELDS}
    if isinstance(out.get("trainer_config"), dict):
        out["trainer_config"] = {k: v for k, v in out["trainer_config"].items()
                                 if k not in FREE_TRAINER_FIELDS}
    return out


def prepare_run_dir(run_config: RunConfig, root: str | Path) -> RunDir:
    """Create ``<root>/<name>`` with ``run.yaml``, or check that it holds the same run.

    A stored run with another config raises ValueError naming the first differing field
    (``FREE_FIELDS`` and ``FREE_TRAINER_FIELDS`` may change).
    """
    from dacapo.store.converter import to_dict

    run_dir = RunDir(Path(root) / run_config.name)
    if run_dir.exists():
        stored = _comparable(to_dict(run_dir.load_config()))
        new = _comparable(to_dict(run_config))
        diff = [k for k in new if stored.get(k) != new.get(k)]
        if diff:
            raise ValueError(
                f"run directory {str(run_dir.path)!r} holds a run with a different "
                f"{diff[0]}; choose another run name or root, or delete the folder"
            )
    run_dir.create()
    run_dir.save_config(run_config)
    return run_dir


@contextmanager
def log_to_file(path: Path):
    """Also send dacapo's log records to ``path`` while inside the block."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("dacapo")
    old_level = root.level
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def train_run(
    run_config: RunConfig,
    root: str | Path = "runs",
    progress: bool = True,
    validate: bool = True,
) -> RunDir:
    """Train (or resume) ``run_config`` in ``<root>/<name>``; validate at the intervals.

    Returns the run directory. Raises ValueError for a config or data problem.
    """
    problems = run_config.problems(strict_task=False)
    if problems:
        raise ValueError("; ".join(problems))
    run_dir = prepare_run_dir(run_config, root)
    with log_to_file(run_dir.logs / "train.log"):
        _train(run_config, run_dir, progress, validate)
    return run_dir


def _train(run_config: RunConfig, run_dir: RunDir, progress: bool, validate: bool) -> None:
    from tqdm import tqdm

    rc = run_config
    tc = rc.trainer_config
    device = choose_device(rc.device)
    task = rc.task_config.build()
    model = build_model(rc, task).to(device)
    optimizer = make_optimizer(model, tc)

    streams = max(1, tc.num_data_workers)
    counts: dict[int, Any] = {}

    def checkpoint(iteration: int) -> None:
        run_dir.save_checkpoint(iteration, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            # pickled: the checkpoint stays loadable with torch.load(weights_only=True)
            "class_counts": pickle.dumps(counts), "count_streams": streams,
        })

    start = run_dir.latest_checkpoint() or 0
    if start > 0:
        state = run_dir.load_checkpoint(start)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("count_streams") == streams:
            counts = dict(pickle.loads(state["class_counts"]))
        else:
            logger.info("num_data_workers changed: class counts start afresh")
        logger.info("resuming %s from iteration %d", rc.name, start)
    else:
        checkpoint(0)
    run_dir.truncate_training_stats(start)
    if (validate and start > 0 and rc.validation_interval and start % rc.validation_interval == 0
            and start not in {r["iteration"] for r in run_dir.validation_scores()}):
        # the run was stopped during (or right before) this validation: redo it
        from dacapo.validate import validate_run

        logger.info("validating iteration %d, missing from an interrupted run", start)
        validate_run(run_dir, start, progress=False, run_config=rc,
                     model=model if rc.num_workers == 0 else None)
    if start >= rc.num_iterations:
        logger.info("%s: already trained for %d iterations", rc.name, start)
        return

    provider = BatchProvider(rc, with_snapshot_every=rc.snapshot_interval, initial_counts=counts)
    loader = make_loader(provider, start, rc.num_iterations, tc.num_data_workers)
    default_threads = torch.get_num_threads()
    step_threads = tc.torch_threads or default_threads
    t_start = time.perf_counter()
    bar = tqdm(
        total=rc.num_iterations, initial=start, desc=f"train {rc.name}", disable=not progress,
        dynamic_ncols=True,
    )
    try:
        torch.set_num_threads(step_threads)
        for batch in loader:
            iteration = int(batch["iteration"]) + 1
            stream, stream_counts = pickle.loads(batch["counts"])
            counts[stream] = stream_counts
            raw = batch["raw"].to(device, non_blocking=True)
            target = batch["target"].to(device, non_blocking=True)
            weight = batch["weight"].to(device, non_blocking=True)
            loss_value, prediction = train_step(model, optimizer, task.loss, raw, target, weight)
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"loss is {loss_value} at iteration {iteration}; lower the learning rate "
                    "or check the data"
                )
            run_dir.append_training_stats(
                [{"iteration": iteration, "loss": f"{loss_value:.6g}",
                  "time": f"{time.perf_counter() - t_start:.3f}"}]
            )
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4g}")
            if "snapshot" in batch:
                write_snapshot(run_dir, iteration, batch["snapshot"], prediction[0].cpu().numpy())
            validating = validate and rc.validation_interval and iteration % rc.validation_interval == 0
            if iteration % rc.checkpoint_interval == 0 or iteration == rc.num_iterations or validating:
                checkpoint(iteration)
            if validating:
                from dacapo.validate import validate_run

                bar.clear()
                torch.set_num_threads(default_threads)  # the data workers wait meanwhile
                validate_run(run_dir, iteration, progress=False, run_config=rc,
                             model=model if rc.num_workers == 0 else None)
                torch.set_num_threads(step_threads)
                bar.refresh()
    finally:
        torch.set_num_threads(default_threads)
        bar.close()
        del loader
    from dacapo.plots import safe_plot_run

    safe_plot_run(run_dir)


def write_snapshot(run_dir: RunDir, iteration: int, sample: dict, prediction: np.ndarray) -> Path:
    """``snapshots/<iteration>.zarr`` with raw, gt, mask, target, weight, prediction, each an
    OME-NGFF image (`dacapo.store.ome`; gt and mask as label images)."""
    import shutil

    from dacapo.store.ome import prepare_output

    path = run_dir.snapshots / f"{iteration:08d}.zarr"
    run_dir.snapshots.mkdir(parents=True, exist_ok=True)

    def as_np(x):
        return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    vs = Coordinate(as_np(sample["voxel_size"]).tolist())
    ovs = Coordinate(as_np(sample["output_voxel_size"]).tolist())
    arrays = {
        "raw": (as_np(sample["raw"]), as_np(sample["raw_offset"]), vs),
        "gt": (as_np(sample["gt"]), as_np(sample["gt_offset"]), ovs),
        "mask": (as_np(sample["mask"]), as_np(sample["gt_offset"]), ovs),
        "target": (as_np(sample["target"]), as_np(sample["out_offset"]), ovs),
        "weight": (as_np(sample["weight"]), as_np(sample["out_offset"]), ovs),
        "prediction": (prediction, as_np(sample["out_offset"]), ovs),
    }
    dims = vs.dims
    if path.exists():  # a snapshot of a resumed run's iteration is written anew
        shutil.rmtree(path)
    for name, (data, offset, voxel_size) in arrays.items():
        if data.ndim > dims + 1:
            raise ValueError(f"snapshot {name}: shape {data.shape} has more than one channel axis")
        data = data[0] if data.ndim == dims + 1 and data.shape[0] == 1 else data
        roi = Roi(Coordinate(offset.tolist()), Coordinate(data.shape[-dims:]) * voxel_size)
        ds = prepare_output(
            f"{path}/{name}", roi, voxel_size, data.dtype,
            num_channels=data.shape[0] if data.ndim > dims else None,
            label=name in ("gt", "mask"),
        )
        ds[ds.roi] = data
    return path
