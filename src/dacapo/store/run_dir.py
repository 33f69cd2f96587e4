"""The run directory: everything one training run writes, in one folder.

Layout of ``<root>/<run name>/``::

    run.yaml               the whole RunConfig (round-trips with `dacapo.store.converter`)
    checkpoints/<it>.pt    {"iteration", "model", "optimizer"} every checkpoint_interval
                           (written to a temp file, then os.replace: never half-written)
    training_stats.csv     iteration,loss,time
    validation_scores.csv  iteration,dataset,parameters,criterion,value
    best.json              {criterion: {iteration, dataset, parameters, value}}
    snapshots/<it>.zarr    raw, gt, target, weight, prediction of one training batch
    predictions/<it>/      validation predictions and segmentations (zarr)
    plots/                 PNG figures (see `dacapo.plots`)
    logs/                  daisy worker logs and done-markers of blockwise jobs

CSV files are appended line by line (flushed), so a killed run loses at most the line
being written; `truncate_after` drops rows newer than the checkpoint a run resumes from.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TRAINING_FIELDS = ["iteration", "loss", "time"]
VALIDATION_FIELDS = ["iteration", "dataset", "parameters", "criterion", "value"]
_CHECKPOINT = re.compile(r"^(\d+)\.pt$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and `os.replace`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class RunDir:
    """Paths and files of one run directory (created on demand)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ---- paths -------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "run.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def training_stats_file(self) -> Path:
        return self.path / "training_stats.csv"

    @property
    def validation_scores_file(self) -> Path:
        return self.path / "validation_scores.csv"

    @property
    def best_file(self) -> Path:
        return self.path / "best.json"

    @property
    def snapshots(self) -> Path:
        return self.path / "snapshots"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def create(self) -> RunDir:
        """Make the folders; remove temp files a killed writer left behind."""
        for d in (self.path, self.checkpoints, self.plots, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.path, self.checkpoints):
            for stale in d.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        return self

    def exists(self) -> bool:
        return self.config_file.is_file()

    # ---- config ------------------------------------------------------------
    def save_config(self, run_config) -> None:
        from dacapo.store.converter import to_yaml

        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, to_yaml(run_config))

    def load_config(self):
        from dacapo.experiments.run_config import RunConfig
        from dacapo.store.converter import from_yaml

        if not self.config_file.is_file():
            raise FileNotFoundError(f"run directory {str(self.path)!r}: no run.yaml in it")
        return from_yaml(self.config_file, RunConfig)

    # ---- checkpoints -------------------------------------------------------
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
        import io

        import torch

        self.checkpoints.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save({"iteration": iteration, **state}, buffer)
        path = self.checkpoint_path(iteration)
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def load_checkpoint(self, iteration: int | None = None) -> dict[str, Any]:
        """The checkpoint of ``iteration`` (default: the latest), on the CPU."""
        import torch

        if iteration is None:
            iteration = self.latest_checkpoint()
            if iteration is None:
                raise FileNotFoundError(f"run {str(self.path)!r}: no checkpoint yet")
        path = self.checkpoint_path(iteration)
        if not path.is_file():
            have = self.checkpoint_iterations()
            raise FileNotFoundError(
                f"run {str(self.path)!r}: no checkpoint for iteration {iteration} "
                f"(available: {have[-10:] or 'none'})"
            )
        return torch.load(path, map_location="cpu", weights_only=True)

    # ---- CSV tables --------------------------------------------------------
    @staticmethod
    def _read_csv(path: Path) -> list[dict[str, str]]:
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            return list(csv.DictReader(f))

    @staticmethod
    def _append_csv(path: Path, fields: list[str], rows: Iterable[dict[str, Any]]) -> None:
        new = not path.is_file() or path.stat().st_size == 0
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            if new:
                writer.writeheader()
            for row in rows:
                writer.writerow(row)
            f.flush()

    @staticmethod
    def _rewrite_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buffer.getvalue())

    def append_training_stats(self, rows: Iterable[dict[str, Any]]) -> None:
        self._append_csv(self.training_stats_file, TRAINING_FIELDS, rows)

    def training_stats(self) -> list[dict[str, float]]:
        rows = []
        for r in self._read_csv(self.training_stats_file):
            try:
                rows.append({k: float(r[k]) for k in TRAINING_FIELDS})
            except (KeyError, TypeError, ValueError):  # a line cut by a kill
                continue
        return rows

    def truncate_training_stats(self, iteration: int) -> None:
        """Drop rows with iteration > ``iteration`` (from before a resume)."""
        rows = self.training_stats()
        keep = [r for r in rows if r["iteration"] <= iteration]
        if len(keep) != len(rows) or self.training_stats_file.is_file():
            self._rewrite_csv(
                self.training_stats_file,
                TRAINING_FIELDS,
                [{"iteration": int(r["iteration"]), "loss": r["loss"], "time": r["time"]} for r in keep],
            )

    def validation_scores(self) -> list[dict[str, Any]]:
        rows = []
        for r in self._read_csv(self.validation_scores_file):
            try:
                rows.append(
                    {
                        "iteration": int(r["iteration"]),
                        "dataset": r["dataset"],
                        "parameters": json.loads(r["parameters"]),
                        "criterion": r["criterion"],
                        "value": float(r["value"]),
                    }
                )
            except (KeyError, TypeError, ValueError):
                continue
        return rows

    def replace_validation_scores(self, iteration: int, rows: list[dict[str, Any]]) -> None:
        """Store ``rows`` as the scores of ``iteration`` (replacing older rows of it)."""
        old = [r for r in self.validation_scores() if r["iteration"] != iteration]
        out = []
        for r in old + rows:
            out.append({**r, "parameters": json.dumps(r["parameters"], sort_keys=True)})
        out.sort(key=lambda r: r["iteration"])
        self._rewrite_csv(self.validation_scores_file, VALIDATION_FIELDS, out)

    # ---- best.json ---------------------------------------------------------
    def save_best(self, best: dict[str, Any]) -> None:
        atomic_write_text(self.best_file, json.dumps(best, indent=2, sort_keys=True) + "\n")

    def load_best(self) -> dict[str, Any]:
        if not self.best_file.is_file():
            return {}
        return json.loads(self.best_file.read_text())
