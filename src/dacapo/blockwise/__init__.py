"""Blockwise processing of large volumes (daisy-based)."""

from dacapo.blockwise.runner import (
    BlockInfo,
    BlockwiseError,
    BlockwiseResult,
    FailedBlock,
    prepare_output,
    run_blockwise,
)

__all__ = [
    "BlockInfo",
    "BlockwiseError",
    "BlockwiseResult",
    "FailedBlock",
    "prepare_output",
    "run_blockwise",
]
