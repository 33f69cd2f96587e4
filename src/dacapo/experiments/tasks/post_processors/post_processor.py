"""Base class of post-processors: prediction -> segmentation, over a parameter sweep."""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array

from dacapo.blockwise import BlockwiseOptions, run_blockwise
from dacapo.io.arrays import container_of, open_array, read_array
from dacapo.io.ome_write import prepare_ome  # outputs are OME-NGFF label images
from dacapo.io.rewrite import renew_output

from .post_processor_parameters import PostProcessorParameters


class PostProcessor(ABC):
    """Turns a prediction into a segmentation for each parameter of a sweep.

    ``set_prediction`` takes a zarr array path (processed blockwise) or an in-memory
    funlib `Array`; ``process`` writes the segmentation for one parameter set to a zarr
    array path and returns it opened read-only. A blockwise run follows ``options``
    (`dacapo.blockwise.options.BlockwiseOptions`: workers, worker command, ``log_dir``
    for its work files and logs; default: in this process, a temporary work folder);
    ``block_size`` (world units) defaults to ``DEFAULT_BLOCK_VOXELS`` voxels per axis.
    """

    prediction: Array | str | Path | None = None

    #: default block size in voxels per axis when none is given
    DEFAULT_BLOCK_VOXELS = 64

    @abstractmethod
    def enumerate_parameters(self) -> Iterable[PostProcessorParameters]:
        """The parameter sweep, each with a distinct ``id``."""

    def set_prediction(self, prediction: Array | str | Path) -> None:
        """The prediction to post-process next (zarr path or in-memory Array)."""
        self.prediction = prediction

    @abstractmethod
    def process(
        self,
        parameters: PostProcessorParameters,
        output_array: str | Path,
        options: BlockwiseOptions | None = None,
        block_size=None,
    ) -> Array:
        """Write the segmentation for ``parameters`` to ``output_array``; return it."""

    def _open_prediction(self) -> Array:
        """The prediction set by `set_prediction`, opened read-only."""
        if self.prediction is None:
            raise ValueError(f"{type(self).__name__}: call set_prediction() before process()")
        return open_array(self.prediction, "prediction")

    def _label_output(self, output_array: str | Path, prediction: Array,
                      block_size: Coordinate, dtype=np.uint64,
                      num_channels: int | None = None) -> Array:
        """The OME-NGFF label image at ``output_array`` over the prediction's ROI, chunked
        by ``block_size``, with the prediction's axis names and units (created or reused:
        `dacapo.io.ome_write.prepare_ome`; reused for an in-memory prediction, it is
        written anew: `dacapo.io.rewrite.renew_output`)."""
        out = prepare_ome(output_array, total_roi=prediction.roi,
                          voxel_size=prediction.voxel_size, dtype=dtype,
                          num_channels=num_channels, write_size=block_size,
                          axis_names=list(prediction.axis_names),
                          units=list(prediction.units), label=True)
        if isinstance(self.prediction, Array):  # written whole, no done-markers
            renew_output(output_array)
        return out

    @staticmethod
    def _work_base(log_dir: Path | None, output_array: str | Path) -> Path:
        """Where a blockwise run keeps its work files: ``log_dir``, else the folder holding
        the output's zarr container (created)."""
        if log_dir is not None:
            base = Path(log_dir)
        else:
            container = container_of(output_array)
            base = (container if container is not None else Path(output_array).absolute()).parent
        base.mkdir(parents=True, exist_ok=True)
        return base

    def _block_size(self, block_size, prediction: Array) -> Coordinate:
        """``block_size`` (world units; default ``DEFAULT_BLOCK_VOXELS`` per axis) clipped to
        the prediction's ROI: blocks larger than the ROI would make the output's chunks
        smaller than a block, which the runner refuses for parallel writes."""
        voxel_size = prediction.voxel_size
        if block_size is None:
            block_size = Coordinate((self.DEFAULT_BLOCK_VOXELS,) * voxel_size.dims) * voxel_size
        return Coordinate(min(b, s) for b, s in zip(Coordinate(block_size), prediction.roi.shape))


class BlockwisePostProcessor(PostProcessor):
    """A post-processor that works block by block with a fixed context.

    Subclasses implement ``process_block`` (numpy in, numpy out, same spatial shape) and
    describe the output (``output_dtype``, ``output_channels``). A zarr prediction is
    processed blockwise with the daisy runner; an in-memory `Array` in one block. The
    output is an OME-NGFF label image (`dacapo.io.ome_write`); a single-channel one has no
    channel axis.
    """

    @abstractmethod
    def process_block(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        """Segmentation of ``prediction`` (channels first: always a leading channel axis,
        also for a single-channel prediction) for ``parameters``; the spatial shape of the
        result equals that of the input."""

    def output_dtype(self, parameters: PostProcessorParameters) -> np.dtype:
        return np.dtype(np.uint8)

    def output_channels(self, prediction: Array, parameters: PostProcessorParameters) -> int | None:
        """Channels of the output (None: no channel axis)."""
        return None

    def context(self, parameters: PostProcessorParameters, voxel_size: Coordinate) -> Coordinate:
        """Context (world units, each side) a block needs; none by default."""
        return Coordinate((0,) * len(voxel_size))

    def process(
        self,
        parameters: PostProcessorParameters,
        output_array: str | Path,
        options: BlockwiseOptions | None = None,
        block_size=None,
    ) -> Array:
        options = BlockwiseOptions() if options is None else options
        prediction = self._open_prediction()
        voxel_size = prediction.voxel_size
        spatial_roi = prediction.roi
        channels = self.output_channels(prediction, parameters)
        block_size = self._block_size(block_size, prediction)
        out = self._label_output(output_array, prediction, block_size,
                                 self.output_dtype(parameters), channels)
        if isinstance(self.prediction, Array):
            data = _with_channel_axis(read_array(prediction, spatial_roi), voxel_size.dims)
            seg = self.process_block(data, parameters)
            out[spatial_roi] = seg if out.channel_dims or seg.ndim == voxel_size.dims else seg[0]
            return open_array(output_array, "output")
        # Without a log_dir, done-markers go to a temporary directory: a later call with a
        # new prediction and the same output path must recompute every block, not skip
        # them. With an explicit log_dir, an interrupted run resumes (the runner's markers).
        with tempfile.TemporaryDirectory(prefix="dacapo_post_") as tmp:
            run_blockwise(
                partial(_process_block, self, parameters),
                inputs={"prediction": self.prediction},
                output=output_array,
                block_size=block_size,
                context=self.context(parameters, voxel_size),
                options=options.job(f"{type(self).__name__}_{parameters.id}",
                                    options.log_dir or tmp),
            )
        del out
        return open_array(output_array, "output")


def _process_block(post_processor: BlockwisePostProcessor, parameters, prediction, block) -> np.ndarray:
    """Run ``process_block`` on a block with context and crop to the write ROI."""
    voxel_size = block.voxel_size
    seg = post_processor.process_block(_with_channel_axis(prediction, voxel_size.dims), parameters)
    begin = (block.write_roi.begin - block.read_roi.begin) / voxel_size
    shape = block.write_roi.shape / voxel_size
    spatial = tuple(slice(b, b + s) for b, s in zip(begin, shape))
    lead = (slice(None),) * (seg.ndim - len(spatial))
    return seg[lead + spatial]


def _with_channel_axis(data: np.ndarray, dims: int) -> np.ndarray:
    """``data`` with a leading channel axis (added if it has only ``dims`` axes)."""
    return data[None] if data.ndim == dims else data
