"""Base class of post-processors: prediction -> segmentation, over a parameter sweep."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate
from funlib.persistence import Array

from dacapo.store.arrays import open_array

from .post_processor_parameters import PostProcessorParameters


class PostProcessor(ABC):
    """Turns a prediction into a segmentation for each parameter of a sweep.

    ``set_prediction`` takes a zarr array path (processed blockwise) or an in-memory
    funlib `Array`; ``process`` writes the segmentation for one parameter set to a zarr
    array path and returns it opened read-only.
    """

    prediction: Array | str | Path | None = None

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
        num_workers: int = 1,
        block_size=None,
        log_dir: str | Path | None = None,
    ) -> Array:
        """Write the segmentation for ``parameters`` to ``output_array``; return it."""


class BlockwisePostProcessor(PostProcessor):
    """A post-processor that works block by block with a fixed context.

    Subclasses implement ``process_block`` (numpy in, numpy out, same spatial shape) and
    describe the output (``output_dtype``, ``output_channels``). A zarr prediction is
    processed blockwise with the daisy runner; an in-memory `Array` in one block.
    """

    #: default block size in voxels per axis when none is given
    DEFAULT_BLOCK_VOXELS = 64

    @abstractmethod
    def process_block(self, prediction: np.ndarray, parameters: PostProcessorParameters) -> np.ndarray:
        """Segmentation of ``prediction`` (channels first) for ``parameters``; the spatial
        shape of the result equals that of the input."""

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
        num_workers: int = 1,
        block_size=None,
        log_dir: str | Path | None = None,
    ) -> Array:
        from dacapo.blockwise import prepare_output, run_blockwise

        if self.prediction is None:
            raise ValueError("post-processor: call set_prediction() before process()")
        prediction = open_array(self.prediction, "prediction")
        voxel_size = prediction.voxel_size
        spatial_roi = prediction.roi
        channels = self.output_channels(prediction, parameters)
        if block_size is None:
            block_size = Coordinate((self.DEFAULT_BLOCK_VOXELS,) * voxel_size.dims) * voxel_size
        block_size = Coordinate(block_size)
        out = prepare_output(
            output_array,
            total_roi=spatial_roi,
            voxel_size=voxel_size,
            dtype=self.output_dtype(parameters),
            num_channels=channels,
            write_size=block_size,
        )
        if isinstance(self.prediction, Array):
            seg = self.process_block(np.asarray(prediction.to_ndarray(spatial_roi)), parameters)
            out[spatial_roi] = seg
            return open_array(output_array, "output")
        run_blockwise(
            partial(_process_block, self, parameters),
            inputs={"prediction": self.prediction},
            output=output_array,
            block_size=block_size,
            context=self.context(parameters, voxel_size),
            num_workers=num_workers,
            log_dir=log_dir,
            task_id=f"{type(self).__name__}_{parameters.id}",
        )
        del out
        return open_array(output_array, "output")


def _process_block(post_processor: BlockwisePostProcessor, parameters, prediction, block) -> np.ndarray:
    """Run ``process_block`` on a block with context and crop to the write ROI."""
    seg = post_processor.process_block(prediction, parameters)
    voxel_size = block.voxel_size
    begin = (block.write_roi.begin - block.read_roi.begin) / voxel_size
    shape = block.write_roi.shape / voxel_size
    spatial = tuple(slice(b, b + s) for b, s in zip(begin, shape))
    lead = (slice(None),) * (seg.ndim - len(spatial))
    return seg[lead + spatial]

