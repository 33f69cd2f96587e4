"""Watershed post-processor: mutex watershed on predicted affinities over a bias sweep.

Only the first ``len(offsets)`` prediction channels are used (LSD channels that follow are
ignored); integer predictions are scaled by the dtype's maximum. Output: uint64 labels, no
channel axis, 0 = background (voxels that merged with nothing and fragments smaller than
``min_size``). See `dacapo.ops.watershed` for the edge convention (weight ``aff - bias``,
positive attractive); long-range channels (offsets longer than one voxel) get
``bias + long_range_bias_offset`` (0 by default: every channel alike).

An in-memory `Array` prediction is segmented in one block. A zarr prediction runs blockwise
(`dacapo.segment.mutex_watershed`): blocks with context, ids unique across blocks (uint64,
written to a scratch zarr array first),
objects cut by block faces stitched by majority overlap in the shared context, ``min_size``
applied to whole stitched objects, final relabel through per-block lookup tables. Results
are deterministic and independent of the number of workers; peak memory is bounded by the
block size. The scratch directory (next to the output's zarr container, or inside
``log_dir``) is removed at the end; each call recomputes every block.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array

from dacapo.blockwise import BlockwiseOptions, run_blockwise
from dacapo.blockwise.grid import BlockGeometry
from dacapo.io.arrays import open_array, prepare_zarr, read_array
from dacapo.ops.watershed import segment
from dacapo.segment.mutex_watershed import affinity_channels, fragments_block, relabel_block, stitch

from .post_processor import PostProcessor
from .watershed_post_processor_parameters import WatershedPostProcessorParameters

DEFAULT_BIASES = (0.1, 0.25, 0.5, 0.75, 0.9)


class WatershedPostProcessor(PostProcessor):
    """Mutex watershed of the affinity channels, one segmentation per bias.

    ``offsets``: the affinity neighborhood (one offset per channel, voxels).
    ``biases``: the sweep. ``min_size``: fragments smaller than this are removed; a
    sequence is swept too (every bias with every size, sizes outermost).
    ``strides`` / ``randomized_strides`` / ``seed``: edge subsampling of `mutex_watershed`
    (off by default; randomized strides are seeded, per block in blockwise runs).
    ``context``: voxels of context per axis for blockwise runs (default 2 x max |offset|).
    ``long_range_bias_offset``: added to the bias of the long-range channels.
    """

    def __init__(
        self,
        offsets: Sequence[Sequence[int]],
        biases: Sequence[float] = DEFAULT_BIASES,
        min_size: int | Sequence[int] = 0,
        strides: Sequence[Sequence[int]] | None = None,
        randomized_strides: bool = False,
        seed: int | None = None,
        context: Sequence[int] | None = None,
        long_range_bias_offset: float = 0.0,
    ) -> None:
        self.offsets = [tuple(int(v) for v in o) for o in offsets]
        if not self.offsets or len({len(o) for o in self.offsets}) != 1:
            raise ValueError(f"WatershedPostProcessor: offsets {offsets} must be non-empty "
                             "and all of one dimension")
        self.biases = [float(b) for b in biases]
        if not self.biases or len(set(self.biases)) != len(self.biases):
            raise ValueError(f"WatershedPostProcessor: biases {biases} must be non-empty "
                             "and distinct")
        sizes = [int(min_size)] if isinstance(min_size, int | float) else [int(m) for m in min_size]
        if not sizes or len(set(sizes)) != len(sizes) or min(sizes) < 0:
            raise ValueError(f"WatershedPostProcessor: min_size must be >= 0 (distinct values "
                             f"when a sequence), got {min_size}")
        if strides is not None and len(strides) != len(self.offsets):
            raise ValueError("WatershedPostProcessor: strides needs one entry per offset")
        self.min_sizes = sizes
        self.strides = None if strides is None else [tuple(int(v) for v in s) for s in strides]
        self.randomized_strides = bool(randomized_strides)
        self.seed = seed
        dims = len(self.offsets[0])
        if context is None:
            context = [max(1, 2 * max(abs(o[d]) for o in self.offsets)) for d in range(dims)]
        if len(context) != dims:
            raise ValueError(f"WatershedPostProcessor: context {context} needs {dims} values")
        self.context_voxels = Coordinate(int(c) for c in context)
        self.long_range_bias_offset = float(long_range_bias_offset)

    def _bias(self, parameters: WatershedPostProcessorParameters) -> float | list[float]:
        """The bias of every channel (one float when all are alike)."""
        if self.long_range_bias_offset == 0:
            return parameters.bias
        return [parameters.bias + (self.long_range_bias_offset
                                   if max(abs(v) for v in o) > 1 else 0.0)
                for o in self.offsets]

    def enumerate_parameters(self) -> Iterator[WatershedPostProcessorParameters]:
        pairs = ((size, bias) for size in self.min_sizes for bias in self.biases)
        for i, (size, bias) in enumerate(pairs):
            yield WatershedPostProcessorParameters(id=i, bias=bias, min_size=size)

    def _watershed_kwargs(self) -> dict:
        return {
            "strides": self.strides,
            "randomized_strides": self.randomized_strides,
            "seed": self.seed,
        }

    def process(
        self,
        parameters: WatershedPostProcessorParameters,
        output_array: str | Path,
        options: BlockwiseOptions | None = None,
        block_size=None,
    ) -> Array:
        """Segment the prediction for ``parameters`` into ``output_array`` (zarr path)."""
        options = BlockwiseOptions() if options is None else options
        prediction = self._open_prediction()
        voxel_size = prediction.voxel_size
        if voxel_size.dims != len(self.offsets[0]):
            raise ValueError(
                f"prediction: {voxel_size.dims} spatial dims, offsets have "
                f"{len(self.offsets[0])}"
            )
        num_channels = prediction.shape[0] if prediction.channel_dims else 1
        if num_channels < len(self.offsets):
            raise ValueError(
                f"prediction: {num_channels} channel(s), need at least one per offset "
                f"({len(self.offsets)})"
            )
        roi = prediction.roi
        block_size = self._block_size(block_size, prediction)
        blockwise = not isinstance(self.prediction, Array)
        # built (and its block size checked against the context) before anything is written
        geometry = (BlockGeometry(roi, voxel_size, block_size, self.context_voxels * voxel_size)
                    if blockwise else None)
        out = self._label_output(output_array, prediction, block_size)
        if blockwise:
            self._process_blockwise(parameters, output_array, geometry, options)
        else:
            affs = affinity_channels(read_array(prediction, roi),
                                     len(self.offsets), voxel_size.dims)
            out[roi] = segment(affs, self.offsets, self._bias(parameters), parameters.min_size,
                               **self._watershed_kwargs())
        del out
        return open_array(output_array, "output")

    def _process_blockwise(self, parameters, output_array, geometry: BlockGeometry,
                           options: BlockwiseOptions) -> None:
        base = self._work_base(options.log_dir, output_array)
        work = Path(tempfile.mkdtemp(prefix=f"watershed_{parameters.id}_", dir=base))
        scratch = work / "stitch"
        scratch.mkdir()
        fragments = work / "fragments.zarr" / "fragments"
        prepare_zarr(fragments, total_roi=geometry.total_roi, voxel_size=geometry.voxel_size,
                       dtype=np.uint64, write_size=geometry.block_size)
        common = {"geometry": geometry, "scratch": str(scratch)}
        try:
            run_blockwise(
                partial(fragments_block, **common, offsets=self.offsets,
                        bias=self._bias(parameters), watershed_kwargs=self._watershed_kwargs()),
                inputs={"prediction": str(self.prediction)},
                output=fragments, block_size=geometry.block_size, context=geometry.context,
                options=options.job("fragments", work),
            )
            stitch(scratch, geometry, parameters.min_size)
            run_blockwise(
                partial(relabel_block, **common),
                inputs={"fragments": str(fragments)},
                output=output_array, block_size=geometry.block_size, context=None,
                options=options.job("relabel", work),
            )
        finally:
            if options.log_dir is None:
                shutil.rmtree(work, ignore_errors=True)
            else:  # keep the workers' logs
                shutil.rmtree(scratch, ignore_errors=True)
                shutil.rmtree(work / "fragments.zarr", ignore_errors=True)
