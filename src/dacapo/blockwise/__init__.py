"""Blockwise processing of large volumes on daisy: plan → launch → report."""

from dacapo.blockwise.report import BlockwiseError, BlockwiseResult, FailedBlock
from dacapo.blockwise.runner import run_blockwise
from dacapo.blockwise.worker import BlockInfo

__all__ = ["BlockInfo", "BlockwiseError", "BlockwiseResult", "FailedBlock", "run_blockwise"]
