"""Training batches: random crops of the training volumes -> augmentations ->
targets and weights, made by a torch DataLoader.

Batches
    Batch ``i`` (the one that produces iteration ``i + 1``) holds the samples
    ``k = i·B + j``, ``j = 0 .. B-1`` (``B = batch_size``); sample ``k`` is drawn with the
    generator ``numpy.random.default_rng([seed, k])`` (with ``B = 1``: ``[seed, i]``).
    Data-parallel training (`dacapo.training.distributed`) gives rank ``r`` of ``W`` the slots
    ``j = r·B/W .. (r+1)·B/W - 1`` of every batch, so ``W`` ranks draw exactly the samples
    one process draws (``W = 2`` × 1 sample = 1 process × 2 samples). A sample is a random
    training dataset, a random output ROI
    (the model output shape, on the voxel grid, inside raw ∩ gt (∩ mask)), the raw input
    ROI around it (zero-padded outside the raw) and the GT region the predictor asks for
    (``predictor.gt_region_for_roi``; voxels outside the GT or the mask are masked out).
    Crops with a labelled fraction below ``min_masked`` or a non-zero GT fraction below
    ``min_foreground`` (both in the output ROI) are redrawn (up to 50 times). Targets and
    weights come from ``predictor.create_target``/``create_weight`` on the augmented GT and
    are cropped to the output ROI; a partially annotated dataset has its own predictor
    (``Predictor.for_crop``: no loss on the classes it does not annotate).
    ``moving_class_counts`` is carried from batch to batch
    in streams ``(i % S, j)``, ``S = max(1, num_data_workers)``: slot ``j`` of batch ``i``
    continues stream ``(i % S, j)`` (the torch DataLoader hands out batches round-robin,
    so each worker owns the streams ``i % S`` of its batches, and each rank those of its
    slots; no stream waits for another process). The counts of every stream are saved
    with each checkpoint and restored on resume, so a run is deterministic given the
    seed, ``num_data_workers`` and the number of torch threads, resumed or not, on any
    number of ranks that divides ``batch_size``.

Processes
    Batches are made by ``num_data_workers`` spawned processes (torch DataLoader, one torch
    thread each); the main process only runs the model, with ``trainer.torch_threads``
    threads (0: torch's default, every core; all of them again while validating). When
    batch preparation costs more than a model step (a small model on few cores), leaving
    the workers their cores (``torch_threads = cores - num_data_workers``) is faster:
    OpenMP threads of the model would otherwise take the CPU the workers need. Training
    arrays of at most ``CACHE_BYTES`` are read into memory once per worker (`Volume`).
"""

from __future__ import annotations

import logging
import math
import pickle
import signal
from typing import Any

import dask
import numpy as np
import torch
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.experiments.normalization import for_array, normalize_input
from dacapo.experiments.run_config import RunConfig
from dacapo.io.arrays import in_memory, memory_data, read_array, read_padded
from dacapo.pipeline.model_geometry import ModelGeometry, crop, snap_roi
from dacapo.training.augment import augment

logger = logging.getLogger(__name__)

MAX_REJECTIONS = 50
#: training arrays up to this size are read into memory once per data worker (reading crops
#: from memory instead of through dask/zarr makes a batch several times faster)
CACHE_BYTES = 512 * 2**20


def as_numpy(array: Array) -> np.ndarray:
    """The data of a funlib `Array`, without a dask round trip (a compute and a copy:
    ~23 ms for a 16-channel LSD target) for in-memory arrays (numpy, or `in_memory`)."""
    source = getattr(array, "_source_data", None)
    if not getattr(array, "lazy_ops", None):
        if isinstance(source, np.ndarray):
            return source
        held = memory_data(source)
        if held is not None:
            return held
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
            return read_array(self.array, roi, fill_value)
        return read_padded(self.data, self.roi, self.voxel_size, roi, fill_value)


class BatchProvider(torch.utils.data.Dataset):
    """Batch ``i`` of a run (see the module docstring); used by a torch DataLoader.

    Opens arrays and builds the task lazily, so each worker process does it once.
    """

    def __init__(self, run_config: RunConfig, input_shape=None, with_snapshot_every: int = 0,
                 initial_counts: dict[tuple[int, int], Any] | None = None,
                 slots: range | None = None):
        self.run_config = run_config
        self.input_shape = None if input_shape is None else Coordinate(input_shape)
        self.with_snapshot_every = with_snapshot_every
        self.streams = max(1, run_config.trainer_config.num_data_workers)
        self.initial_counts = dict(initial_counts or {})
        #: the slots of each batch this process draws (data parallel: a rank's share)
        self.slots = range(run_config.trainer_config.batch_size) if slots is None else slots
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
            classes = list(rc.task_config.gt_rules().channel_names) or None
            datasets = [d.open(classes) for d in rc.datasplit_config.train]
            geometries = [ModelGeometry(model, ds.raw.voxel_size, self.input_shape) for ds in datasets]
            volumes = [
                {name: None if getattr(ds, name) is None else Volume(getattr(ds, name))
                 for name in ("raw", "gt", "mask")}
                for ds in datasets
            ]
            self._state = {
                "predictors": [ds.crop_predictor(task.predictor) for ds in datasets],
                "datasets": datasets,
                "volumes": volumes,
                "normalizations": [for_array(rc.normalization, ds.raw, f"dataset {ds.name!r}: raw")
                                   for ds in datasets],
                "geometries": geometries,
                "counts": dict(self.initial_counts),
            }
        return self._state

    def __getitem__(self, index: int) -> dict[str, Any]:
        # the predictors' small in-memory dask reads: no thread pool hand-offs
        with dask.config.set(scheduler="synchronous"):
            return self._batch(index)

    def _batch(self, index: int) -> dict[str, Any]:
        state = self._setup()
        size = self.run_config.trainer_config.batch_size
        samples, counts = [], {}
        for j in self.slots:
            rng = np.random.default_rng([int(self.run_config.seed), int(index) * size + j])
            key = (int(index) % self.streams, j)
            sample, counts[key] = self._sample(state, rng, state["counts"].get(key))
            state["counts"][key] = counts[key]
            samples.append(sample)
        batch = {
            "iteration": index,
            # pickled, so that the DataLoader passes it through untouched
            "counts": pickle.dumps(counts),
            "raw": np.stack([s["raw"] for s in samples]),
            "target": np.stack([s["target"] for s in samples]),
            "weight": np.stack([s["weight"] for s in samples]),
        }
        every = self.with_snapshot_every
        if every and (index + 1) % every == 0:
            # contiguous: a mirrored view (negative strides) cannot become a tensor
            batch["snapshot"] = {k: np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v
                                 for k, v in samples[0].items()}
        return batch

    def _sample(self, state: dict[str, Any], rng: np.random.Generator,
                counts: Any) -> tuple[dict[str, Any], Any]:
        tc = self.run_config.trainer_config
        k = int(rng.integers(len(state["datasets"])))
        ds = state["datasets"][k]
        vol = state["volumes"][k]
        geo: ModelGeometry = state["geometries"][k]
        predictor = state["predictors"][k]
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
        margin = tc.augment.elastic_margin(step, geo.input_size)
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
            inner = crop(mask, gt_read, out_roi, ovs)
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
        raw = normalize_input(vol["raw"].read(in_read), state["normalizations"][k])
        if raw.ndim == geo.voxel_size.dims:
            raw = raw[None]
        gt = vol["gt"].read(gt_read)
        raw, (gt, mask) = augment(raw, [gt, mask], ovs, tc.augment, rng)
        if margin != Coordinate((0,) * len(margin)):
            raw = crop(raw, in_read, in_read.grow(-margin, -margin), geo.voxel_size)
            gt = crop(gt, gt_read, gt_roi, ovs)
            mask = crop(mask, gt_read, gt_roi, ovs)
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
        target_data = _with_channels(crop(as_numpy(target), target.roi, out_roi, ovs), ovs.dims)
        weight_data = _with_channels(crop(as_numpy(weight), weight.roi, out_roi, ovs), ovs.dims)
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


def _valid_mask(ds, mask: Volume | None, roi: Roi) -> np.ndarray:
    """1 where the GT exists (and the mask, if any, is non-zero, and the section is not in
    ``ds.ignore_sections``) inside ``roi``."""
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
    first = (roi.begin[0] - ds.gt.roi.begin[0]) // vs[0]
    for section in ds.ignore_sections:
        if 0 <= section - first < shape[0]:
            valid[section - first] = False
    return valid


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)
    # SIGINT (Ctrl-C reaches the whole process group) and SIGTERM (a scheduler signals
    # every process) are for the training process, which stops after the step with a
    # checkpoint (`dacapo.training.stop`); a worker dying of them would fail that step
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)


def close_loader(batches) -> None:
    """Stop the data workers of a loader's iterator now. Its ``__del__`` would, but a worker's
    error re-raised in the loop keeps the iterator alive in the traceback, and the workers
    ignore SIGTERM (`_worker_init`): the interpreter's exit would wait for them forever."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


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
