"""What a blockwise job did: counts, failed and retried blocks, and the error raised when
blocks are left unfinished (naming them, the first error and where the logs are)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from funlib.geometry import Roi

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedBlock:
    """A block that was not completed: its id, write ROI and last error."""

    block_id: int
    write_roi: Roi
    error: str | None = None

    def __str__(self) -> str:
        return f"block {self.block_id} (write ROI {self.write_roi})"


@dataclass
class BlockwiseResult:
    """Block counts of one `run_blockwise` call.

    ``processed`` blocks were completed by this call, ``skipped`` blocks were
    already done (marker present) before it, ``failed`` lists the blocks that
    are still not done afterwards, ``retried`` the blocks that failed at least
    once in this call but succeeded on a retry (with their last error).
    """

    total: int
    processed: int
    skipped: int
    failed: list[FailedBlock] = field(default_factory=list)
    retried: list[FailedBlock] = field(default_factory=list)


class BlockwiseError(RuntimeError):
    """Raised when blocks remain unfinished after `run_blockwise`."""

    def __init__(self, message: str, result: BlockwiseResult | None = None):
        super().__init__(message)
        self.result = result

    @property
    def failed(self) -> list[FailedBlock]:
        """The blocks that were not completed."""
        return [] if self.result is None else self.result.failed


def failed_dir(task_dir: str | Path) -> Path:
    """Where workers record the error of a failed block (``<block id>.json``)."""
    return Path(task_dir) / "failed"


def read_failure(task_dir: Path, block_id: int) -> str | None:
    path = failed_dir(task_dir) / f"{block_id}.json"
    try:
        return json.loads(path.read_text())["error"]
    except (OSError, ValueError, KeyError):
        return None


def report(task_id: str, task_dir: Path, blocks: dict[int, Roi], done_before: set[int],
           done_after: set[int], abandoned: str | None, max_retries: int) -> BlockwiseResult:
    """The result of a job (logged); raises `BlockwiseError` if blocks are unfinished."""
    failed = [FailedBlock(i, blocks[i], read_failure(task_dir, i))
              for i in sorted(set(blocks) - done_after)]
    retried = [FailedBlock(i, blocks[i], error) for i in sorted(done_after - done_before)
               if (error := read_failure(task_dir, i)) is not None]
    for b in retried:
        last = b.error.strip().splitlines()[-1] if b.error else "unknown error"
        logger.warning("task %s: %s failed and succeeded on a retry (%s)", task_id, b, last)
    result = BlockwiseResult(total=len(blocks), processed=len(done_after - done_before),
                             skipped=len(done_before), failed=failed, retried=retried)
    logger.info("task %s: %d blocks processed, %d skipped, %d failed, %d retried", task_id,
                result.processed, result.skipped, len(failed), len(retried))
    if not failed:
        return result
    shown = failed[:10]
    lines = [f"  {b}" for b in shown]
    if len(failed) > len(shown):
        lines.append(f"  ... and {len(failed) - len(shown)} more")
    errors = [b for b in failed if b.error]
    how = ("were not completed (workers kept crashing)" if abandoned
           else f"failed (after {max_retries} retries)")
    msg = f"blockwise task {task_id!r}: {len(failed)} of {len(blocks)} blocks {how}:\n"
    msg += "\n".join(lines)
    if errors:
        msg += f"\nerror of {errors[0]}:\n{errors[0].error.rstrip()}"
    if abandoned:
        msg += f"\ndaisy abandoned the task: {abandoned}"
    msg += f"\nworker logs: {task_dir}. Re-run to retry only the unfinished blocks."
    raise BlockwiseError(msg, result)
