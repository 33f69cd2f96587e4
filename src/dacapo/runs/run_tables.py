"""The tables of a run directory: ``training_stats.csv``, ``validation_scores.csv`` and
``best.json``.

CSV files are appended line by line (flushed), so a killed run loses at most the line
being written (a cut line is skipped when read); rewrites are atomic.
`RunTables.truncate_training_stats` drops rows newer than the checkpoint a run resumes from.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dacapo.io.arrays import atomic_write_text

TRAINING_FIELDS = ["iteration", "loss", "time"]
VALIDATION_FIELDS = ["iteration", "dataset", "parameters", "criterion", "value", "scored_roi",
                     "gt_fraction", "degenerate"]


class RunTables:
    """The CSV tables and ``best.json`` of `dacapo.runs.run_dir.RunDir` (a mixin over its
    ``path``)."""

    path: Path

    @property
    def training_stats_file(self) -> Path:
        return self.path / "training_stats.csv"

    @property
    def validation_scores_file(self) -> Path:
        return self.path / "validation_scores.csv"

    @property
    def best_file(self) -> Path:
        return self.path / "best.json"

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
