"""The picture of one validation: ``plots/validation_<iteration>_<dataset>.png``.

Four panels side by side on the middle section (across the first spatial axis, z) of the
scored ROI, only that section read from each array:

- **raw**: grey, contrast from the section's 1st to 99th percentile (first channel of a
  multi-channel raw);
- **ground truth** and **segmentation**: instance ids (tasks scored as instances) in a
  colour per id (`dacapo.ops.label_colours`: random-looking, deterministic, 0 black);
  classes and masks (semantic tasks) in the class palette (`CLASS_COLOURS`, 0 black; a
  multi-channel mask shows each voxel in the colour of its first channel set), named in a
  legend;
- **prediction**: a distance or an embedding as its first channel with a colour bar (a
  signed distance in [-1, 1], blue inside, red outside); affinities as the first three
  channels in red, green, blue; class probabilities as the mix of the class colours they
  weight. The panel title says which.

The segmentation is the one the task's main criterion chooses among the sweep of this
validation (`dacapo.runs.scores.choose_parameters` on the mean over the validation
datasets, as `apply` takes it; degenerate ones passed over). Axes are in
world units (the arrays' unit, nm unless said; µm when the section spans more than 10 µm).
The title names run, dataset and iteration, the chosen parameters and the main criteria
(`dacapo.runs.scores.main_criteria`) at them.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dacapo.experiments.datasplits import as_dataset_name
from dacapo.experiments.tasks.evaluators import BinaryInstanceEvaluator, InstanceEvaluator
from dacapo.io.arrays import open_array, read_array
from dacapo.ops.label_colours import label_rgb
from dacapo.runs.plots import _plt, _save
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import choose_parameters, main_criteria, main_criterion, parameters_label

logger = logging.getLogger(__name__)

#: colours of class ids 1, 2, ... (0 is black); matplotlib's tab10 without its grey
CLASS_COLOURS = np.array([
    (0.122, 0.467, 0.706), (1.0, 0.498, 0.055), (0.173, 0.627, 0.173), (0.839, 0.153, 0.157),
    (0.580, 0.404, 0.741), (0.549, 0.337, 0.294), (0.890, 0.467, 0.761), (0.737, 0.741, 0.133),
    (0.090, 0.745, 0.812),
])
#: short names of OME units
_UNITS = {"nanometer": "nm", "micrometer": "µm", "um": "µm", "millimeter": "mm"}


def section_roi(roi: Roi, voxel_size: Coordinate) -> Roi:
    """The middle section of ``roi`` across its first axis, one voxel of ``voxel_size`` thick
    (the whole ``roi`` in 2D)."""
    if roi.dims < 3:
        return roi
    middle = roi.begin[0] + (roi.shape[0] // 2) // voxel_size[0] * voxel_size[0]
    return Roi((middle, *roi.begin[1:]), (voxel_size[0], *roi.shape[1:]))


def read_section(array: Array, section: Roi) -> tuple[np.ndarray, tuple[float, ...]]:
    """(data of ``section`` in ``array`` as channels × y × x, the extent (x0, x1, y1, y0) in
    world units); the section is grown to ``array``'s voxel grid."""
    vs = array.voxel_size
    roi = section.snap_to_grid(vs, mode="grow")
    if roi.dims == 3:  # one voxel of this array across the section axis
        roi = Roi(roi.begin, (vs[0], *roi.shape[1:]))
    data = read_array(array, roi)
    data = data.reshape(-1, *data.shape[-2:])  # channels first, the section axis dropped
    b, e = roi.begin[-2:], roi.end[-2:]
    return data, (b[1], e[1], e[0], b[0])


def class_image(data: np.ndarray, probability: bool) -> np.ndarray:
    """Class ids of a section (channels × y × x): one channel is class ids; several are
    masks, a voxel's id the index of its first channel set, plus 1 for mask tasks (0: none
    set); for class ``probability`` tasks the channel index is the class id itself."""
    if len(data) == 1:
        return (data[0] != 0).astype(np.int64) if not probability else data[0].astype(np.int64)
    on = data != 0
    first = on.argmax(0) + (0 if probability else 1)
    return np.where(on.any(0), first, 0)


def class_rgb(ids: np.ndarray) -> np.ndarray:
    palette = np.vstack([np.zeros(3), CLASS_COLOURS])
    return palette[np.where(ids > 0, (ids - 1) % len(CLASS_COLOURS) + 1, 0)]


def _unit(arrays: list[Array], span: float) -> tuple[str, float]:
    """(unit name, scale) of the axes: µm beyond 10 µm of nm."""
    units = [u for a in arrays for u in (a.units or []) if u]
    unit = _UNITS.get(units[-1], units[-1]) if units else "nm"
    return ("µm", 1e-3) if unit == "nm" and span > 10_000 else (unit, 1.0)


def _show_labels(ax, data: np.ndarray, extent, instances: bool, probability: bool,
                 names: list[str]) -> None:
    if instances:
        ax.imshow(label_rgb(data[0]), extent=extent, interpolation="nearest")
        n = len(np.unique(data[0][data[0] != 0]))
        ax.text(0.01, 0.99, f"{n} ids", transform=ax.transAxes, va="top", color="w", fontsize=7)
        return
    ids = class_image(data, probability)
    ax.imshow(class_rgb(ids), extent=extent, interpolation="nearest")
    shift = 0 if probability else 1
    shown = [int(i) for i in np.unique(ids) if i > 0]
    labels = [(i, names[i - shift] if i - shift < len(names) else str(i)) for i in shown]
    if labels:
        ax.legend(handles=[Patch(color=class_rgb(np.array(i)), label=n) for i, n in labels[:8]],
                  fontsize=6, loc="lower right", framealpha=0.6)


def _show_prediction(fig, ax, data: np.ndarray, extent, kind: str, names: list[str]) -> str:
    """Draw the prediction; returns the panel title."""
    if kind == "affinities" and len(data) >= 2:
        rgb = np.zeros((*data.shape[1:], 3))
        rgb[..., : min(3, len(data))] = np.moveaxis(np.clip(data[:3], 0, 1), 0, -1)
        ax.imshow(rgb, extent=extent, interpolation="nearest")
        return f"prediction: {', '.join(names[:3])} as R, G, B"
    if kind == "probability" and len(data) >= 2:
        colours = class_rgb(np.arange(len(data)))
        rgb = np.clip(np.tensordot(np.clip(data, 0, 1), colours, axes=(0, 0)), 0, 1)
        ax.imshow(rgb, extent=extent, interpolation="nearest")
        return "prediction: class probabilities, in the class colours"
    signed = kind == "distance"
    image = ax.imshow(data[0], extent=extent, interpolation="nearest",
                      cmap="RdBu" if signed else "viridis",
                      **({"vmin": -1, "vmax": 1} if signed else {}))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    which = f"channel 0 ({names[0]}) of {len(data)}" if len(data) > 1 else (names or ["?"])[0]
    return f"prediction: {kind} {which}"


def validation_figure(title: str, raw: Array, gt: Array, prediction: Array,
                      segmentation: Array | None, roi: Roi, task, names: list[str]) -> Figure:
    """The four panels (module docstring) on the middle section of ``roi``."""
    section = section_roi(roi, gt.voxel_size)
    kind = task.predictor.output_array_type.kind
    instances = isinstance(task.evaluator, (InstanceEvaluator, BinaryInstanceEvaluator))
    unit, scale = _unit([gt, raw], max(roi.shape[-2:]))
    fig, axes = _plt().subplots(1, 4, figsize=(16, 4.8), sharex=True, sharey=True,
                                layout="constrained")  # room for every label and the title
    panels = [("raw", raw), ("ground truth", gt), ("prediction", prediction),
              ("segmentation", segmentation)]
    for ax, (name, array) in zip(axes, panels):
        ax.set_xlabel(f"x ({unit})", fontsize=7)
        ax.tick_params(labelsize=6)
        if array is None:
            ax.set_title(f"{name}: none", fontsize=8)
            continue
        data, extent = read_section(array, section)
        extent = tuple(v * scale for v in extent)
        if name == "raw":
            lo, hi = np.percentile(data[0], (1, 99)) if data[0].size else (0, 1)
            ax.imshow(data[0], extent=extent, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6),
                      interpolation="nearest")
        elif name == "prediction":
            name = _show_prediction(fig, ax, data, extent, kind, names)
        else:
            _show_labels(ax, data, extent, instances, kind == "probability", names)
        ax.set_title(name, fontsize=8)
    axes[0].set_ylabel(f"y ({unit})", fontsize=7)
    where = f"z = {section.begin[0] * scale:g} {unit}, " if section.dims == 3 else ""
    # wrapped to the figure's width (per-class parameters make long titles)
    wrapped = "\n".join(textwrap.wrap(title, width=int(fig.get_figwidth() * 15)))
    fig.suptitle(f"{wrapped}\n{where}section of the scored ROI", fontsize=9)
    return fig


def validation_title(run: str, dataset: str, iteration: int, task,
                     rows: list[dict], chosen: dict | None = None) -> tuple[str, dict | None]:
    """(title, parameters of the segmentation to show) of one dataset's ``rows`` of a
    validation: ``chosen`` (parameters chosen on all the validation's datasets) or else
    those the task's main criterion chooses among ``rows``, the main criteria at them."""
    main = main_criterion(task)
    if chosen is None:
        top = choose_parameters(rows, main, task.evaluation_scores.higher_is_better(main))
        chosen = None if top is None else top["parameters"]
    title = f"{run}: {dataset}, iteration {iteration}"
    if chosen is None or not any(r["parameters"] == chosen for r in rows):
        return title + " (no scores)", None
    params = chosen
    at = {r["criterion"]: r["value"] for r in rows if r["parameters"] == params}
    shown = ([main] if main in at else []) + [c for c in main_criteria(list(at), 4) if c != main]
    values = ", ".join(f"{c} {at[c]:.3f}" for c in shown[:4])
    return f"{title} — segmentation at {parameters_label(params)}: {values}", params


def plot_validation(run_dir: RunDir, task, dataset, iteration: int, prediction: Array,
                    folder: Path, roi: Roi, rows: list[dict],
                    chosen: dict | None = None) -> Path:
    """``plots/validation_<iteration:08d>_<dataset>.png`` of one validated dataset:
    ``prediction`` and the segmentation ``folder/segmentation_<id>`` that
    `validation_title` chooses (``chosen``, else among those scored in ``rows``)."""
    title, params = validation_title(run_dir.path.name, dataset.name, iteration, task, rows,
                                     chosen)
    segmentation = None if params is None else open_array(
        folder / f"segmentation_{params['id']}", "segmentation")
    names = list(task.predictor.output_array_type.channels)
    fig = validation_figure(title, dataset.raw, dataset.gt, prediction, segmentation, roi,
                            task, names)
    run_dir.plots.mkdir(parents=True, exist_ok=True)
    return _save(fig, run_dir.plots / plot_file_name(dataset.name, iteration), 80)


def plot_file_name(name: str, iteration: int) -> str:
    """``validation_<iteration:08d>_<name>.png``: a valid dataset name as it is (distinct
    names, distinct files: `DataSplitConfig.problems`), another as `as_dataset_name`
    makes it one."""
    return f"validation_{iteration:08d}_{as_dataset_name(name) or '_'}.png"


def safe_plot_validation(*args, **kwargs) -> Path | None:
    """`plot_validation`, logging instead of raising: a picture never fails a validation."""
    try:
        return plot_validation(*args, **kwargs)
    except Exception:  # noqa: BLE001
        logger.exception("the validation picture failed")
        return None
