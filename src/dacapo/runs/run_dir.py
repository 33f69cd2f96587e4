"""The run directory: everything one training run writes, in one folder.

Layout of ``<root>/<run name>/``::

    run.yaml               the whole RunConfig (round-trips with `dacapo.io.config_yaml`)
    checkpoints/<it>.pt    {"iteration", "model", "optimizer"} every checkpoint_interval
                           (written to a temp file, then os.replace: never half-written;
                           a corrupt one, e.g. from a failed copy, is reported by name)
    training_stats.csv     iteration,loss,time
    validation_scores.csv  iteration,dataset,parameters,criterion,value
    best.json              {criterion: {iteration, dataset, parameters, value}}
    snapshots/<it>.zarr    raw, gt, target, weight, prediction of one training batch
    predictions/<it>/      validation predictions and segmentations (zarr)
    plots/                 PNG figures (see `dacapo.runs.plots`)
    logs/                  daisy worker logs and done-markers of blockwise jobs

CSV files are appended line by line (flushed), so a killed run loses at most the line
being written; `RunDir.truncate_training_stats` drops rows newer than the checkpoint a
run resumes from.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import pickle
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from dacapo.errors import CheckpointError
from dacapo.experiments.run_config import RunConfig
from dacapo.io.arrays import atomic_write_bytes, atomic_write_text
from dacapo.io.config_yaml import from_yaml, to_dict, to_yaml

logger = logging.getLogger(__name__)

TRAINING_FIELDS = ["iteration", "loss", "time"]
VALIDATION_FIELDS = ["iteration", "dataset", "parameters", "criterion", "value", "scored_roi",
                     "gt_fraction", "degenerate"]
_CHECKPOINT = re.compile(r"^(\d+)\.pt$")


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
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, to_yaml(run_config))

    def load_config(self) -> RunConfig:
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
                        # what was scored (empty in tables written before it was recorded)
                        "scored_roi": r.get("scored_roi") or "",
                        "gt_fraction": float(r.get("gt_fraction") or "nan"),
                        "degenerate": r.get("degenerate") in ("1", "True"),
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


#: settings a re-run may change: the schedule and how the work is spread over the machine
FREE_FIELDS = {"num_iterations", "validation_interval", "checkpoint_interval",
               "snapshot_interval", "num_workers", "device", "padding", "test_time_flips"}
FREE_TRAINER_FIELDS = {"num_data_workers", "torch_threads"}


def _comparable(config: dict) -> dict:
    out = {k: v for k, v in config.items() if k not in FREE_FIELDS}
    if isinstance(out.get("trainer_config"), dict):
        out["trainer_config"] = {k: v for k, v in out["trainer_config"].items()
                                 if k not in FREE_TRAINER_FIELDS}
    return out


def prepare_run_dir(run_config: RunConfig, root: str | Path) -> RunDir:
    """Create ``<root>/<name>`` with ``run.yaml``, or check that it holds the same run.

    A stored run with another config raises ValueError naming the first differing field
    (``FREE_FIELDS`` and ``FREE_TRAINER_FIELDS`` may change).
    """
    run_dir = RunDir(Path(root) / run_config.name)
    if run_dir.exists():
        stored = _comparable(to_dict(run_dir.load_config()))
        new = _comparable(to_dict(run_config))
        diff = [k for k in new if stored.get(k) != new.get(k)]
        if diff:
            raise ValueError(
                f"run directory {str(run_dir.path)!r} holds a run with a different "
                f"{diff[0]}; choose another run name or root, or delete the folder"
            )
    run_dir.create()
    run_dir.save_config(run_config)
    return run_dir


def as_run_dir(run_dir) -> RunDir:
    """``run_dir`` as a `RunDir` (a path is opened as one)."""
    return run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
