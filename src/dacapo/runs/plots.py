"""PNG figures of a run directory (matplotlib, Agg backend), written to ``plots/``.

- ``loss.png``: training loss per iteration (and a moving average);
- ``criteria.png``: every stored-best criterion vs iteration, one panel each (x: iteration,
  y: the criterion's best over the sweep, degenerate segmentations passed over as in
  ``best.json``), one line per validation dataset, named in one legend; every validation
  is a marker, so a run validated once shows single points (the figure says so);
- ``sweep_<criterion>.png``: the criterion that chooses (the task's main one), then the
  next main criteria, over the parameter sweep at their best iteration (the mean over the
  validation datasets, on which best.json chooses): a line over the values of a
  one-parameter sweep, a heatmap for two parameters, the parameter set ids (at most
  `MAX_TICKS` labels) for more; the chosen
  parameters are circled, degenerate ones crossed.

The ``*_figure`` functions build the figures; ``plot_*`` write them.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import dataset_means, main_criteria, main_criterion, parameters_label

logger = logging.getLogger(__name__)

#: most tick labels on a sweep axis
MAX_TICKS = 12
ONE_VALIDATION = "one validation so far: each panel shows single points"


def _plt():
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # lazy: pyplot after choosing the Agg backend

    return plt


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)
    return path


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
    return _save(fig, run_dir.plots / "loss.png", 100)


def best_per_iteration(rows: list[dict], criterion: str, dataset: str,
                       higher_is_better: bool) -> tuple[list[int], list[float]]:
    """(iterations, best value over the sweep at each) of ``criterion`` on ``dataset``;
    degenerate segmentations count only at an iteration where every one is."""
    per_it: dict[int, dict[bool, list[float]]] = {}
    for r in rows:
        if r["criterion"] == criterion and r["dataset"] == dataset and not math.isnan(r["value"]):
            bucket = per_it.setdefault(r["iteration"], {False: [], True: []})
            bucket[bool(r.get("degenerate"))].append(r["value"])
    its = sorted(per_it)
    pick = max if higher_is_better else min
    return its, [pick(per_it[i][False] or per_it[i][True]) for i in its]


def criteria_figure(run_dir: RunDir, max_panels: int = 36) -> Figure | None:
    """One panel per stored-best criterion (module docstring); None without scores."""
    rows = run_dir.validation_scores()
    best = run_dir.load_best()
    criteria = [c for c in dict.fromkeys(r["criterion"] for r in rows) if c in best]
    if not criteria:
        return None
    scores = run_dir.load_config().task_config.build().evaluation_scores
    ordered = main_criteria(criteria, len(criteria))
    criteria = (ordered + [c for c in criteria if c not in ordered])[:max_panels]
    cols = min(4, len(criteria))
    nrows = math.ceil(len(criteria) / cols)
    fig, axes = _plt().subplots(nrows, cols, figsize=(3.6 * cols, 2.8 * nrows + 0.6),
                                squeeze=False)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    lines, most_points = {}, 0
    for ax, c in zip(axes.flat, criteria):
        higher = scores.higher_is_better(c)
        iterations: set[int] = set()
        for ds in datasets:
            its, vals = best_per_iteration(rows, c, ds, higher)
            if its:
                lines[ds], = ax.plot(its, vals, marker="o", ms=5, lw=1.2, label=ds)
                most_points = max(most_points, len(its))
                iterations.update(its)
        ax.set_title(f"{'higher' if higher else 'lower'} is better", fontsize=7, color="0.4")
        ax.set_xlabel("iteration", fontsize=7)
        ax.set_ylabel(c, fontsize=7)
        ax.tick_params(labelsize=7)
        if len(iterations) <= 4:  # the validated iterations themselves
            ax.set_xticks(sorted(iterations))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        # values, not "1e-5+9.997e-1" over the panel title: a nearly flat criterion
        ax.ticklabel_format(axis="y", useOffset=False)
    for ax in list(axes.flat)[len(criteria):]:
        ax.axis("off")
    if lines:
        fig.legend(list(lines.values()), list(lines), loc="upper right", fontsize=7,
                   ncol=min(4, len(lines)), title="validation dataset", title_fontsize=7)
    note = f" ({ONE_VALIDATION})" if most_points == 1 else ""
    fig.suptitle(f"{run_dir.path.name}: best over the parameter sweep vs iteration{note}",
                 fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / (2.8 * nrows + 0.6)))
    return fig


def plot_criteria(run_dir: RunDir, max_panels: int = 36) -> Path | None:
    fig = criteria_figure(run_dir, max_panels)
    return None if fig is None else _save(fig, run_dir.plots / "criteria.png", 90)


def _varying(rows: list[dict]) -> tuple[list[str], dict]:
    """(names of the parameters that take several values in ``rows``, the fixed ones)."""
    values: dict[str, list] = {}
    for r in rows:
        for k, v in r["parameters"].items():
            if k not in ("type", "id") and v not in values.setdefault(k, []):
                values[k].append(v)
    varying = [k for k, vs in values.items() if len(vs) > 1]
    return varying, {k: vs[0] for k, vs in values.items() if len(vs) == 1}


def _sortable(values: list) -> list:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return sorted(values) if numeric else sorted(values, key=str)


def _thin_ticks(axis, labels: list[str]) -> None:
    """Tick labels at positions 0..n-1, at most `MAX_TICKS` of them, horizontal."""
    step = max(1, math.ceil(len(labels) / MAX_TICKS))
    axis.set_ticks(range(0, len(labels), step), labels[::step])


def sweep_figure(rows: list[dict], criterion: str, chosen: dict, title: str,
                 higher_is_better: bool = True) -> Figure:
    """``criterion`` over the parameter sets of ``rows`` (one per set: one validation of one
    dataset, or `dacapo.runs.scores.dataset_means` of several),
    ``chosen`` (a row's parameters) marked; see the module docstring for the layout."""
    varying, fixed = _varying(rows)
    fixed_text = parameters_label(fixed) if fixed else ""
    is_chosen = [r["parameters"] == chosen for r in rows]
    degenerate = [bool(r.get("degenerate")) for r in rows]
    if len(varying) == 2:
        fig = _heatmap(rows, criterion, varying, is_chosen, degenerate, higher_is_better)
    else:
        fig, ax = _plt().subplots(figsize=(6.5, 3.8))
        if len(varying) == 1:
            name = varying[0]
            order = _sortable([r["parameters"][name] for r in rows])
            x = [order.index(r["parameters"][name]) for r in rows]
            labels, xlabel = [str(v) for v in order], name
        else:
            x = list(range(len(rows)))
            labels = [str(r["parameters"].get("id", i)) for i, r in enumerate(rows)]
            xlabel = "parameter set id (validation_scores.csv names its parameters)"
        keep = np.argsort(x)
        xs, ys = np.asarray(x)[keep], np.asarray([r["value"] for r in rows])[keep]
        # a line along one parameter's values; for more, the points (ids are no axis)
        ax.plot(xs, ys, marker="o", ms=5, lw=1.2 if len(varying) == 1 else 0, color="C0")
        _marks(ax, xs, ys, np.asarray(is_chosen)[keep], np.asarray(degenerate)[keep])
        _thin_ticks(ax.xaxis, labels)
        ax.set_xlabel(xlabel + (f"  ({fixed_text} in every set)" if fixed_text else ""))
        ax.set_ylabel(criterion)
        ax.tick_params(labelsize=8)
    fig.axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _marks(ax, x, y, chosen, degenerate, size: float = 12) -> None:
    """Circle the chosen parameter set, cross the degenerate ones; a legend below the axes
    when there is either."""
    if chosen.any():
        ax.plot(x[chosen], y[chosen], "o", ms=size, mfc="none", mec="C3", mew=1.5,
                label="chosen")
    if degenerate.any():
        ax.plot(x[degenerate], y[degenerate], "x", ms=size * 0.7, color="C3", mew=1.2,
                label="degenerate ((near-)constant), never chosen")
    if chosen.any() or degenerate.any():
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
                  frameon=False)


def _heatmap(rows, criterion: str, names: list[str], is_chosen, degenerate,
             higher_is_better: bool) -> Figure:
    """Heatmap of a two-parameter sweep: the parameter with more values on x; bright is
    good, degenerate (and missing) parameter sets are grey."""
    axis_values = {n: _sortable(list({r["parameters"][n] for r in rows})) for n in names}
    xname, yname = sorted(names, key=lambda n: -len(axis_values[n]))
    xv, yv = axis_values[xname], axis_values[yname]
    grid = np.full((len(yv), len(xv)), np.nan)
    cells = [(yv.index(r["parameters"][yname]), xv.index(r["parameters"][xname])) for r in rows]
    for (i, j), r, bad in zip(cells, rows, degenerate):
        grid[i, j] = np.nan if bad else r["value"]  # degenerate and missing cells: grey
    fig, ax = _plt().subplots(figsize=(max(5.0, 0.6 * len(xv) + 2.5), max(3.2, 0.45 * len(yv) + 2)))
    cmap = matplotlib.colormaps["viridis" if higher_is_better else "viridis_r"].with_extremes(
        bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap)
    fig.colorbar(image, ax=ax).set_label(criterion)
    if grid.size <= 60:
        for (i, j), r in zip(cells, rows):
            ax.text(j, i - 0.28, f"{r['value']:.3g}", ha="center", va="center", fontsize=6,
                    color="w", bbox={"fc": "0.2", "alpha": 0.5, "pad": 0.5, "lw": 0})
    ys, xs = (np.asarray([c[k] for c in cells]) for k in (0, 1))
    _marks(ax, xs, ys, np.asarray(is_chosen), np.asarray(degenerate), size=10)
    _thin_ticks(ax.xaxis, [str(v) for v in xv])
    _thin_ticks(ax.yaxis, [str(v) for v in yv])
    ax.set_xlabel(xname)
    ax.set_ylabel(yname)
    ax.tick_params(labelsize=8)
    return fig


def plot_sweeps(run_dir: RunDir, limit: int = 3) -> list[Path]:
    rows = run_dir.validation_scores()
    best = run_dir.load_best()
    if not best:
        return []
    task = run_dir.load_config().task_config.build()
    scores = task.evaluation_scores
    main = main_criterion(task)  # the one that chooses: always drawn, first
    paths = []
    for c in ([main] if main in best else []) + [c for c in main_criteria(list(best), limit)
                                                 if c != main][:limit - 1]:
        b = best[c]
        sel = dataset_means([r for r in rows if r["iteration"] == b["iteration"]], c)
        if not sel:
            continue
        names = sorted({d for r in sel for d in r["datasets"]})
        where = names[0] if len(names) == 1 else f"mean over {len(names)} datasets"
        fig = sweep_figure(sel, c, b["parameters"],
                           f"{run_dir.path.name}: {c} over the sweep at iteration "
                           f"{b['iteration']} ({where})", scores.higher_is_better(c))
        safe = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in c)
        paths.append(_save(fig, run_dir.plots / f"sweep_{safe}.png", 90))
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
