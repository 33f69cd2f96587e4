"""`dacapo.runs.plots`: the figures say what their axes are (issue 21 item 9).

criteria.png had no axis labels and a legend on the first panel only, and a run validated
once showed barely visible single points; sweep_*.png had one rotated tick label per
parameter set (36 for a 9 x 4 mutex-watershed sweep) and no x title."""

from __future__ import annotations

import matplotlib
import pytest

from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.runs.plots import (
    MAX_TICKS,
    ONE_VALIDATION,
    best_per_iteration,
    criteria_figure,
    plot_run,
    sweep_figure,
)
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import parameters_dict, update_best

matplotlib.use("Agg")

BIASES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
SIZES = [0, 50, 100, 200]


def _affinities_run(tmp_path, tiny_run, iterations=(10,), datasets=("a",)) -> RunDir:
    """A run directory of a 9 x 4 mutex-watershed sweep with scores (no training): voi is
    lowest at bias 0.5; biases 0.1 and 0.9 give degenerate segmentations."""
    task_config = AffinitiesTaskConfig("affs", neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 1)],
                                       mws_biases=BIASES, min_fragment_sizes=SIZES)
    run_dir = RunDir(tmp_path / "run").create()
    run_dir.save_config(tiny_run(tmp_path / "data.zarr", name="run", task_config=task_config))
    task = task_config.build()
    assert len(task.parameters) == 36
    for iteration in iterations:
        rows = []
        for ds in datasets:
            for p in task.parameters:
                d = parameters_dict(p)
                bad = d["bias"] in (0.1, 0.9)
                voi = 0.1 if bad else 1 + abs(d["bias"] - 0.5) + d["min_size"] / 1000 - iteration / 100
                rows += [{"iteration": iteration, "dataset": ds, "parameters": d,
                          "criterion": c, "value": v, "degenerate": int(bad)}
                         for c, v in (("voi", voi), ("voi_split", voi / 2),
                                      ("adapted_rand_error", voi / 3))]
        run_dir.replace_validation_scores(iteration, rows)
    update_best(run_dir, task)
    return run_dir


def _visible_ticks(axis) -> list:
    return [t for t in axis.get_ticklabels() if t.get_text()]


def test_criteria_panels_have_axis_labels_and_one_legend(tmp_path, tiny_run):
    run_dir = _affinities_run(tmp_path, tiny_run, iterations=(10,), datasets=("a", "b"))
    fig = criteria_figure(run_dir)
    used = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_ylabel() for ax in used] == ["voi", "voi_split", "adapted_rand_error"]
    assert all(ax.get_xlabel() == "iteration" for ax in used)
    # tick labels are the values: no "1e-5+9.997e-1" offset over a nearly flat criterion
    assert all(not ax.yaxis.get_major_formatter().get_useOffset() for ax in used)
    assert all(ax.get_legend() is None for ax in used)  # not on the first panel only
    assert len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]
    # one validation: single points, drawn as markers, and said so
    for ax in used:
        for line in ax.get_lines():
            assert len(line.get_xdata()) == 1 and line.get_marker() == "o"
            assert line.get_markersize() >= 5
    assert ONE_VALIDATION in fig._suptitle.get_text()


def test_criteria_best_passes_over_degenerate_sets(tmp_path, tiny_run):
    run_dir = _affinities_run(tmp_path, tiny_run, iterations=(10, 20))
    rows = run_dir.validation_scores()
    # degenerate sets score 0.1; the best real one (bias 0.5, min_size 0) 1 - it/100
    assert best_per_iteration(rows, "voi", "a", False) == ([10, 20], [0.9, 0.8])
    fig = criteria_figure(run_dir)
    assert ONE_VALIDATION not in fig._suptitle.get_text()
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [0.9, 0.8]


def test_two_parameter_sweep_is_a_labelled_heatmap(tmp_path, tiny_run):
    run_dir = _affinities_run(tmp_path, tiny_run)
    rows = [r for r in run_dir.validation_scores() if r["criterion"] == "voi"]
    best = run_dir.load_best()["voi"]
    assert best["parameters"]["bias"] == 0.5 and best["parameters"]["min_size"] == 0
    fig = sweep_figure(rows, "voi", best["parameters"], "title", higher_is_better=False)
    ax, colorbar = fig.axes
    assert ax.images and colorbar.get_ylabel() == "voi"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("bias", "min_size")  # 9 values on x
    assert [t.get_text() for t in _visible_ticks(ax.xaxis)] == [str(b) for b in BIASES]
    assert [t.get_text() for t in _visible_ticks(ax.yaxis)] == [str(s) for s in SIZES]
    assert all(t.get_rotation() == 0 for t in _visible_ticks(ax.xaxis))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "chosen" and legend[1].startswith("degenerate")


def test_one_parameter_sweep_plots_over_its_values():
    rows = [{"parameters": {"type": "T", "id": i, "threshold": t}, "value": v, "degenerate": 0}
            for i, (t, v) in enumerate(((0.5, 0.2), (-0.5, 0.6), (0.0, 0.7)))]
    fig = sweep_figure(rows, "cell__dice", rows[2]["parameters"], "title")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("threshold", "cell__dice")
    assert [t.get_text() for t in _visible_ticks(ax.xaxis)] == ["-0.5", "0.0", "0.5"]
    assert list(ax.get_lines()[0].get_ydata()) == [0.6, 0.7, 0.2]  # in threshold order


@pytest.mark.parametrize("count", [3, 40])
def test_sweep_of_more_parameters_thins_its_labels(count):
    rows = [{"parameters": {"type": "T", "id": i, "a": i, "b": i % 3, "c": i % 2},
             "value": float(i), "degenerate": 0} for i in range(count)]
    fig = sweep_figure(rows, "voi", rows[0]["parameters"], "title")
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("parameter set id")
    ticks = _visible_ticks(ax.xaxis)
    assert 0 < len(ticks) <= MAX_TICKS and all(t.get_rotation() == 0 for t in ticks)


def test_plot_run_writes_every_figure(tmp_path, tiny_run):
    run_dir = _affinities_run(tmp_path, tiny_run, iterations=(10, 20))
    names = sorted(p.name for p in plot_run(run_dir))
    assert names == ["criteria.png", "sweep_adapted_rand_error.png", "sweep_voi.png",
                     "sweep_voi_split.png"]
