"""Stitched blockwise segmentation for any per-block segmenter, several label channels.

The three passes of `dacapo.segment.mutex_watershed` (per-block labels with globally unique ids
and stitching slabs, majority-overlap stitching, relabelling through lookup tables), run
for each of C label channels and written to one ``(C, *spatial)`` output. Used by the
distance-instances post-processor; the mutex watershed runs the same passes for one channel.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from dacapo.blockwise.grid import BlockGeometry
from dacapo.blockwise.options import BlockwiseOptions
from dacapo.blockwise.runner import run_blockwise
from dacapo.io.arrays import prepare_zarr
from dacapo.segment.mutex_watershed import relabel_block, stitch

__all__ = ["relabel_channels_block", "run_stitched"]


def relabel_channels_block(block, *, geometry: BlockGeometry, scratches: list[str],
                           **fragments: np.ndarray) -> np.ndarray:
    """Pass 3 for several label channels: channel ``c`` (input ``fragments_<c>``) is mapped
    through the lookup table in ``scratches[c]``; returns ``(C, *spatial)`` (no channel axis
    when C = 1, the output layout)."""
    labels = np.stack([
        relabel_block(np.asarray(fragments[f"fragments_{c}"]), block, geometry=geometry,
                      scratch=scratch)
        for c, scratch in enumerate(scratches)
    ])
    return labels if len(scratches) > 1 else labels[0]


def run_stitched(block_functions, prediction: str, output_array, geometry: BlockGeometry,
                 min_size: int, options: BlockwiseOptions, work: Path) -> None:
    """Passes 1–3 for ``len(block_functions)`` label channels written to one
    ``(C, *spatial)`` output (``(*spatial)`` for one channel).

    ``block_functions[c]`` is called per block as ``f(prediction, block, geometry=...,
    scratch=...)`` and must return `store_block_labels` of its labels (pass 1); each
    channel is then stitched on its own (pass 2, ``min_size`` on whole objects) and one
    pass 3 writes every channel, each pass a job of the runner with ``options``' workers.
    Scratch arrays, tables and logs go to ``work`` (the caller removes it)."""
    scratches, inputs = [], {}
    for c, function in enumerate(block_functions):
        scratch = work / f"stitch_{c}"
        scratch.mkdir(parents=True, exist_ok=True)
        fragments = work / "fragments.zarr" / f"fragments_{c}"
        prepare_zarr(fragments, total_roi=geometry.total_roi, voxel_size=geometry.voxel_size,
                       dtype=np.uint64, write_size=geometry.block_size)
        run_blockwise(
            partial(function, geometry=geometry, scratch=str(scratch)),
            inputs={"prediction": str(prediction)},
            output=fragments, block_size=geometry.block_size, context=geometry.context,
            options=options.job(f"fragments_{c}", work),
        )
        stitch(scratch, geometry, min_size)
        scratches.append(str(scratch))
        inputs[f"fragments_{c}"] = str(fragments)
    run_blockwise(
        partial(relabel_channels_block, geometry=geometry, scratches=scratches),
        inputs=inputs, output=output_array, block_size=geometry.block_size, context=None,
        options=options.job("relabel", work),
    )
