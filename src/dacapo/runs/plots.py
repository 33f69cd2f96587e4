"""PNG figures of a run directory (matplotlib, Agg backend), written to ``plots/``.

- ``loss.png``: training loss per iteration (and a moving average);
- ``criteria.png``: every stored-best criterion vs iteration (best over the sweep, one
  line per validation dataset);
- ``sweep_<criterion>.png``: the main criteria over the parameter sweep at their best
  iteration.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib
import numpy as np

from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import main_criteria, parameters_label

logger = logging.getLogger(__name__)


def _plt():
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # lazy: pyplot after choosing the Agg backend

    return plt


def plot_loss(run_dir: RunDir) -> Path | None:
    stats = run_dir.training_stats()
    if not stats:
        return None
    plt = _plt()
    it = np.array([s["iteration"] for s in stats])
    loss = np.array([s["loss"] for s in stats])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(it, loss, lw=0.6, alpha=0.5, label="loss")
    window = max(1, len(loss) // 30)
    if window > 1:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(it[window - 1 :], smooth, lw=1.5, label=f"mean of {window}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    if np.all(loss > 0) and loss.max() / max(loss.min(), 1e-12) > 20:
        ax.set_yscale("log")
    ax.set_title(f"{run_dir.path.name}: training loss")
    ax.legend()
    fig.tight_layout()
    path = run_dir.plots / "loss.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def best_per_iteration(rows: list[dict], criterion: str, dataset: str,
                       higher_is_better: bool) -> tuple[list[int], list[float]]:
    """(iterations, best value over the sweep at each) of ``criterion`` on ``dataset``."""
    per_it: dict[int, list[float]] = {}
    for r in rows:
        if r["criterion"] == criterion and r["dataset"] == dataset and not math.isnan(r["value"]):
            per_it.setdefault(r["iteration"], []).append(r["value"])
    its = sorted(per_it)
    return its, [(max if higher_is_better else min)(per_it[i]) for i in its]


def plot_criteria(run_dir: RunDir, max_panels: int = 36) -> Path | None:
    rows = run_dir.validation_scores()
    best = run_dir.load_best()
    criteria = [c for c in dict.fromkeys(r["criterion"] for r in rows) if c in best]
    if not criteria:
        return None
    scores = run_dir.load_config().task_config.build().evaluation_scores
    ordered = main_criteria(criteria, len(criteria))
    criteria = (ordered + [c for c in criteria if c not in ordered])[:max_panels]
    plt = _plt()
    cols = min(4, len(criteria))
    nrows = math.ceil(len(criteria) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 2.6 * nrows), squeeze=False)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    for ax, c in zip(axes.flat, criteria):
        for ds in datasets:
            its, vals = best_per_iteration(rows, c, ds, scores.higher_is_better(c))
            if its:
                ax.plot(its, vals, marker="o", ms=3, label=ds)
        ax.set_title(c, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.locator_params(nbins=4)
    for ax in list(axes.flat)[len(criteria):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{run_dir.path.name}: best over the sweep vs iteration", fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.5 / nrows, top=1 - 0.45 / nrows,
                        wspace=0.3, hspace=0.5)
    path = run_dir.plots / "criteria.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_sweeps(run_dir: RunDir, limit: int = 3) -> list[Path]:
    rows = run_dir.validation_scores()
    best = run_dir.load_best()
    paths = []
    for c in main_criteria([c for c in best], limit):
        b = best[c]
        sel = [r for r in rows if r["criterion"] == c and r["iteration"] == b["iteration"]
               and r["dataset"] == b["dataset"]]
        if not sel:
            continue
        plt = _plt()
        labels = [parameters_label(r["parameters"]) for r in sel]
        values = [r["value"] for r in sel]
        fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(sel) + 2), 3.5))
        ax.plot(range(len(sel)), values, marker="o")
        ax.set_xticks(range(len(sel)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(c)
        ax.set_title(f"{run_dir.path.name}: {c} over the sweep at iteration {b['iteration']}",
                     fontsize=9)
        fig.tight_layout()
        safe = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in c)
        path = run_dir.plots / f"sweep_{safe}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_run(run_dir: RunDir | str | Path) -> list[Path]:
    """All figures of a run; returns the files written."""
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run_dir.plots.mkdir(parents=True, exist_ok=True)
    out = [plot_loss(run_dir), plot_criteria(run_dir), *plot_sweeps(run_dir)]
    return [p for p in out if p is not None]


def safe_plot_run(run_dir: RunDir | str | Path) -> list[Path]:
    """`plot_run`, logging instead of raising: a figure must never fail a run."""
    try:
        return plot_run(run_dir)
    except Exception:  # noqa: BLE001
        logger.exception("plotting %s failed", run_dir)
        return []
