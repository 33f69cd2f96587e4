"""Blockwise processing of large volumes on daisy: plan → launch → report."""

from dacapo.blockwise.options import BlockwiseOptions, resolve_workers
from dacapo.blockwise.report import BlockwiseError, BlockwiseResult, FailedBlock
from dacapo.blockwise.runner import run_blockwise
from dacapo.blockwise.worker import BlockInfo

__all__ = ["BlockInfo", "BlockwiseError", "BlockwiseOptions", "BlockwiseResult", "FailedBlock",
           "resolve_workers", "run_blockwise"]
