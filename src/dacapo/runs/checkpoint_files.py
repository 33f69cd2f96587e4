"""The checkpoints of a run directory: ``checkpoints/<iteration>.pt``.

Each holds {"iteration", "model", "optimizer", ...}, written to a temp file and then
renamed (``os.replace``): never half-written. A corrupt one (e.g. from a failed copy) is
reported by name (`CheckpointError`), and a resume falls back to the newest intact one.
"""

from __future__ import annotations

import io
import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from dacapo.errors import CheckpointError
from dacapo.io.arrays import atomic_write_bytes

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^(\d+)\.pt$")


class CheckpointFiles:
    """The checkpoint files of `dacapo.runs.run_dir.RunDir` (a mixin over its ``path``)."""

    path: Path

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_path(self, iteration: int) -> Path:
        return self.checkpoints / f"{iteration:08d}.pt"

    def checkpoint_iterations(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        its = []
        for p in self.checkpoints.iterdir():
            m = _CHECKPOINT.match(p.name)
            if m:
                its.append(int(m.group(1)))
        return sorted(its)

    def latest_checkpoint(self) -> int | None:
        its = self.checkpoint_iterations()
        return its[-1] if its else None

    def save_checkpoint(self, iteration: int, state: dict[str, Any]) -> Path:
        """``torch.save`` ``state`` atomically as ``checkpoints/<iteration>.pt``."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save({"iteration": iteration, **state}, buffer)
        path = self.checkpoint_path(iteration)
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def existing_checkpoint(self, iteration: int) -> Path:
        """The checkpoint file of ``iteration``; FileNotFoundError naming the available
        ones when there is none (the one "no checkpoint" message)."""
        path = self.checkpoint_path(iteration)
        if not path.is_file():
            have = self.checkpoint_iterations()
            raise FileNotFoundError(
                f"run {str(self.path)!r}: no checkpoint for iteration {iteration} "
                f"(available: {have[-10:] or 'none'})"
            )
        return path

    def load_checkpoint(self, iteration: int | None = None) -> dict[str, Any]:
        """The checkpoint of ``iteration`` (default: the latest), on the CPU;
        `CheckpointError` when the file is corrupt."""
        if iteration is None:
            iteration = self.latest_checkpoint()
            if iteration is None:
                raise FileNotFoundError(f"run {str(self.path)!r}: no checkpoint yet")
        return load_checkpoint_file(self.existing_checkpoint(iteration))

    def latest_intact_checkpoint(self) -> tuple[int | None, dict[str, Any] | None]:
        """(iteration, state) of the newest checkpoint that loads, warning about each newer
        corrupt one (a failed copy or a full disk leaves a truncated file)."""
        for iteration in reversed(self.checkpoint_iterations()):
            try:
                return iteration, self.load_checkpoint(iteration)
            except CheckpointError as e:
                logger.warning("%s; resuming from an older checkpoint", e)
        return None, None


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """A checkpoint (``torch.load`` on the CPU, weights only); `CheckpointError` naming the
    file when it is truncated or not a checkpoint."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile,
            pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated ({first}); delete it to use "
            "an older one"
        ) from None
