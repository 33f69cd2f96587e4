"""Agglomeration post-processor: fragments + hierarchical agglomeration over a threshold sweep.

The LSD paper's pipeline (Sheridan et al. 2022) on the nearest-neighbour affinity channels
(the offsets +-e_d of the neighborhood; long-range and LSD channels are ignored; integer
predictions are scaled by the dtype's maximum): seeded watershed fragments, region-adjacency
edges scored by a histogram quantile of the affinities on the contact (waterz's
``hist_quant_<quantile>``), waterz's hierarchical agglomeration, cut at each threshold of
the sweep (merge where the score 1 - quantile affinity is < threshold: a higher threshold
merges more). Kernels and conventions: `dacapo.ops.agglomeration`.

Output: uint64 labels, no channel axis; every voxel belongs to a segment (0 only where a
block had no seed, i.e. no affinity above the fragments threshold).

An in-memory `Array` prediction is processed in one block (exactly waterz's result on the
fragments). A zarr prediction runs blockwise (`dacapo.segment.rag_agglomeration`): fragments
and edges are computed once per prediction (the first ``process`` call after
``set_prediction``) and shared by every threshold; edges go to a graph database (SQLite
file in the work directory by default, PostgreSQL when ``db_url`` is given); each threshold
is a snapshot of one union-find over the edges streamed in ascending merge level (all
thresholds in one pass) and a blockwise relabelling. The work directory is a folder in
``log_dir`` named after the prediction and the parameters (kept, with the workers' logs and
the SQLite file: a killed run resumes from the finished blocks, in this process or a new
one) or a new folder next to the output's zarr container (removed with the post-processor
or at the next ``set_prediction``; a failed run resumes on the next ``process`` call).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array

from dacapo.blockwise import BlockwiseOptions, run_blockwise
from dacapo.blockwise.grid import BlockGeometry
from dacapo.io.arrays import open_array, prepare_zarr, read_array
from dacapo.ops.agglomeration import (
    agglomerate_edges,
    merge_scores,
    nearest_neighbour_affinities,
    nearest_neighbour_channels,
    relabel,
    watershed_fragments,
)
from dacapo.segment.rag_agglomeration import (
    GraphStore,
    edges_block,
    fragments_block,
    global_luts,
    relabel_block,
)

from .agglomeration_post_processor_parameters import AgglomerationPostProcessorParameters
from .post_processor import PostProcessor

logger = logging.getLogger(__name__)

#: steps of 0.025 up to 0.9: the segmentation goes from split to merged between 0.2 and 0.5
#: on weak predictions (bench_agglomeration) and between 0.5 and 0.8 on better trained ones
#: (docs/quality.md: the best threshold moved to 0.7 with training), so fine everywhere
DEFAULT_THRESHOLDS = tuple(round(0.025 * i, 3) for i in range(1, 37))
#: quantiles waterz ships compiled (others need a C++ compiler and boost at first use)
PREBUILT_QUANTILES = tuple(range(10, 100, 5))


class AgglomerationPostProcessor(PostProcessor):
    """Fragments + agglomeration of the affinity channels, one segmentation per threshold.

    ``offsets``: the affinity neighborhood (must hold +e_d or -e_d for every axis).
    ``thresholds``: the sweep. ``quantile``: of the contact affinities (percent).
    ``fragments_threshold`` / ``seed_distance``: fragments mask (mean affinity above it) and
    the cube (voxels) of the seed maxima. ``fragments_context`` / ``edges_context``: voxels
    of context per axis of the two blockwise passes (default 2 and 4 x ``seed_distance``).
    ``db_url``: PostgreSQL URL for the fragment graph (default: SQLite).
    """

    #: blocks of 128^3 read their context (16-32 voxels a side) ~2x, not ~3.4x as 64^3 do
    DEFAULT_BLOCK_VOXELS = 128

    def __init__(
        self,
        offsets: Sequence[Sequence[int]],
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        quantile: int = 75,
        fragments_threshold: float = 0.5,
        seed_distance: int = 10,
        fragments_context: Sequence[int] | None = None,
        edges_context: Sequence[int] | None = None,
        db_url: str | None = None,
    ) -> None:
        self.offsets = [tuple(int(v) for v in o) for o in offsets]
        self.channels = nearest_neighbour_channels(self.offsets)
        dims = len(self.channels)
        self.thresholds = [float(t) for t in thresholds]
        if not self.thresholds or len(set(self.thresholds)) != len(self.thresholds):
            raise ValueError(f"AgglomerationPostProcessor: thresholds {thresholds} must be "
                             "non-empty and distinct")
        if int(quantile) != quantile or not 0 <= quantile <= 100:
            raise ValueError(f"AgglomerationPostProcessor: quantile must be an integer in "
                             f"[0, 100], got {quantile}")
        if not 0 < fragments_threshold < 1:
            raise ValueError("AgglomerationPostProcessor: fragments_threshold must be in (0, 1)")
        if int(seed_distance) < 1:
            raise ValueError("AgglomerationPostProcessor: seed_distance must be >= 1")
        self.quantile = int(quantile)
        self.fragments_threshold = float(fragments_threshold)
        self.seed_distance = int(seed_distance)
        if fragments_context is None:
            fragments_context = (2 * self.seed_distance,) * dims
        if edges_context is None:  # bench_agglomeration: 2x -> VOI +0.19 vs one block, 4x +0.10
            edges_context = (4 * self.seed_distance,) * dims
        for name, value in (("fragments_context", fragments_context),
                            ("edges_context", edges_context)):
            if len(value) != dims or min(value) < 1:
                raise ValueError(f"AgglomerationPostProcessor: {name} {value} needs {dims} "
                                 "values >= 1")
        self.fragments_context = Coordinate(int(c) for c in fragments_context)
        self.edges_context = Coordinate(int(c) for c in edges_context)
        self.db_url = db_url
        self._reset()

    def enumerate_parameters(self) -> Iterator[AgglomerationPostProcessorParameters]:
        for i, threshold in enumerate(self.thresholds):
            yield AgglomerationPostProcessorParameters(id=i, threshold=threshold)

    def set_prediction(self, prediction) -> None:
        super().set_prediction(prediction)
        self._reset()

    def _reset(self) -> None:
        """Forget the fragments and edges of the previous prediction."""
        self._one_block = None
        self._blockwise = None
        cleanup = getattr(self, "_cleanup", None)
        if cleanup is not None:
            cleanup()
        self._cleanup = None

    # ------------------------------------------------------------------ one block

    def _fragments_and_edges(self, prediction: Array):
        """(fragments, edges, levels) of an in-memory prediction (computed once)."""
        if self._one_block is None:
            data = read_array(prediction, prediction.roi)
            affs = nearest_neighbour_affinities(data, self.channels)
            fragments = watershed_fragments(
                affs, tuple(prediction.voxel_size), self.fragments_threshold,
                self.seed_distance, origin=(0,) * (affs.ndim - 1), volume_shape=affs.shape[1:])
            edges, levels, _, _ = merge_scores(fragments, affs, self.quantile)
            self._one_block = (fragments, edges, levels)
        return self._one_block

    # ------------------------------------------------------------------ blockwise

    def _prepare_blockwise(self, prediction: Array, block_size: Coordinate,
                           options: BlockwiseOptions, output_array) -> dict:
        """Fragments and edges passes (once per prediction and block size)."""
        log_dir = options.log_dir
        key = (tuple(block_size), None if log_dir is None else str(log_dir))
        state = self._blockwise
        if state is not None and state["key"] == key and state.get("luts") is not None:
            return state
        if state is None or state["key"] != key:
            self._reset()
            voxel_size = prediction.voxel_size
            geometry = BlockGeometry(prediction.roi, voxel_size, block_size,
                                self.fragments_context * voxel_size)
            base = self._work_base(log_dir, output_array)
            if log_dir is None:
                work = Path(tempfile.mkdtemp(prefix="agglomeration_", dir=base))
                self._cleanup = weakref.finalize(self, shutil.rmtree, str(work), True)
            else:  # named after what it computes: a killed run resumes in a new process
                work = Path(base) / f"agglomeration_{self._work_key(block_size, log_dir)}"
                work.mkdir(parents=True, exist_ok=True)
            store = GraphStore(dims=voxel_size.dims, sqlite_path=str(work / "graph.db"),
                               url=self.db_url, prefix=_table_prefix(work))
            store.create(overwrite=log_dir is None)
            state = {"key": key, "work": work, "geometry": geometry, "store": store,
                     "luts": None}
            self._blockwise = state
        state["fragments"] = self._fragments_pass(state, block_size, options)
        self._edges_pass(state, block_size, options)
        state["luts"] = self._cut(state)
        return state

    def _fragments_pass(self, state: dict, block_size: Coordinate,
                        options: BlockwiseOptions) -> Path:
        """Pass 1 (`fragments_block`) into ``<work>/fragments.zarr/fragments``."""
        work, geometry = state["work"], state["geometry"]
        fragments = work / "fragments.zarr" / "fragments"
        prepare_zarr(fragments, total_roi=geometry.total_roi, voxel_size=geometry.voxel_size,
                       dtype=np.uint64, write_size=block_size)
        run_blockwise(
            partial(fragments_block, geometry=geometry, channels=self.channels,
                    threshold=self.fragments_threshold, seed_distance=self.seed_distance),
            inputs={"prediction": str(self.prediction)}, output=fragments,
            block_size=block_size, context=geometry.context,
            options=options.job("fragments", work),
        )
        return fragments

    def _edges_pass(self, state: dict, block_size: Coordinate,
                    options: BlockwiseOptions) -> None:
        """Pass 2 (`edges_block`): nodes and edges into the graph store."""
        work, geometry = state["work"], state["geometry"]
        done = work / "fragments.zarr" / "edges_done"
        prepare_zarr(done, total_roi=geometry.total_roi, voxel_size=geometry.voxel_size,
                       dtype=np.uint8, write_size=block_size)
        run_blockwise(
            partial(edges_block, geometry=geometry, channels=self.channels,
                    quantile=self.quantile, store=state["store"]),
            inputs={"prediction": str(self.prediction), "fragments": str(state["fragments"])},
            output=done, block_size=block_size,
            context=self.edges_context * geometry.voxel_size,
            options=options.job("edges", work),
        )

    def _cut(self, state: dict) -> list[Path]:
        """Pass 3 (`global_luts`): one lookup table per threshold, in one pass."""
        luts = [state["work"] / f"lut_{p.id}.npz" for p in self.enumerate_parameters()]
        global_luts(state["store"], self.thresholds, luts)
        return luts

    def _work_key(self, block_size: Coordinate, log_dir) -> str:
        """Hash of the prediction, the log folder and everything the fragments and edges
        depend on."""
        text = repr((str(Path(str(self.prediction)).absolute()), str(Path(log_dir).absolute()),
                     tuple(block_size), self.channels, self.quantile, self.fragments_threshold,
                     self.seed_distance, tuple(self.fragments_context),
                     tuple(self.edges_context), self.db_url))
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    # ------------------------------------------------------------------ process

    def process(
        self,
        parameters: AgglomerationPostProcessorParameters,
        output_array: str | Path,
        options: BlockwiseOptions | None = None,
        block_size=None,
    ) -> Array:
        """Segment the prediction at ``parameters.threshold`` into ``output_array``."""
        options = BlockwiseOptions() if options is None else options
        prediction = self._open_prediction()
        voxel_size = prediction.voxel_size
        if voxel_size.dims != len(self.channels):
            raise ValueError(f"prediction: {voxel_size.dims} spatial dims, offsets have "
                             f"{len(self.channels)}")
        num_channels = prediction.shape[0] if prediction.channel_dims else 1
        needed = max(c for c, _ in self.channels) + 1
        if num_channels < needed:
            raise ValueError(f"prediction: {num_channels} channel(s), the nearest-neighbour "
                             f"affinities need {needed}")
        roi = prediction.roi
        block_size = self._block_size(block_size, prediction)
        if isinstance(self.prediction, Array):
            fragments, edges, levels = self._fragments_and_edges(prediction)
            ids, roots = agglomerate_edges(edges, levels, parameters.threshold)
            out = self._label_output(output_array, prediction, block_size)
            out[roi] = relabel(fragments, ids, roots)
            del out
            return open_array(output_array, "output")
        state = self._prepare_blockwise(prediction, block_size, options, output_array)
        work = state["work"]
        lut = state["luts"][parameters.id]
        out = self._label_output(output_array, prediction, block_size)
        del out
        tag = hashlib.sha1(str(Path(output_array).absolute()).encode()).hexdigest()[:8]
        task_id = f"relabel_{parameters.id}_{tag}"
        shutil.rmtree(work / task_id, ignore_errors=True)  # cheap: always rewrite the output
        run_blockwise(
            partial(relabel_block, lut=str(lut)),
            inputs={"fragments": str(state["fragments"])}, output=output_array,
            block_size=block_size, context=None, options=options.job(task_id, work),
        )
        return open_array(output_array, "output")


def _table_prefix(work: Path) -> str:
    """Table prefix for this work directory (letters, digits, underscores)."""
    return "agglo_" + "".join(c if c.isalnum() else "_" for c in work.name.lower())
