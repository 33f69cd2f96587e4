"""`dacapo.runs.validation_plot`: the picture of a validation shows the middle section of
the arrays it names, in world units, in the colours it says, with the scores in its title."""

from __future__ import annotations

import matplotlib
import numpy as np
from funlib.geometry import Roi

from dacapo.experiments.datasplits import Dataset
from dacapo.experiments.tasks import AffinitiesTaskConfig, DistanceTaskConfig
from dacapo.io.arrays import open_array
from dacapo.ops.label_colours import label_rgb
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import parameters_dict
from dacapo.runs.validation_plot import (
    CLASS_COLOURS,
    plot_validation,
    validation_figure,
    validation_title,
)

matplotlib.use("Agg")

VOXEL = (16, 8, 8)
OFFSET = (32, 80, 160)
SHAPE = (6, 10, 12)


def _arrays(tmp_path, write_array, seg: np.ndarray, pred: np.ndarray, gt: np.ndarray):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, SHAPE).astype(np.uint8)
    paths = {}
    for name, data in (("raw", raw), ("gt", gt), ("prediction", pred), ("seg", seg)):
        paths[name] = tmp_path / "d.zarr" / name
        write_array(paths[name], data, VOXEL, OFFSET)
    return raw, {k: open_array(p) for k, p in paths.items()}


def _image(ax) -> np.ndarray:
    return np.asarray(ax.get_images()[0].get_array())


def test_instance_picture_is_the_middle_section_in_label_colours(tmp_path, write_array):
    task = AffinitiesTaskConfig("affs", neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 1)]).build()
    labels = np.arange(np.prod(SHAPE), dtype=np.uint64).reshape(SHAPE) % 7
    prediction = np.random.default_rng(1).random(SHAPE).astype(np.float32)
    raw, a = _arrays(tmp_path, write_array, labels * 3, prediction, labels)
    roi = a["gt"].roi
    fig = validation_figure("run: ds, iteration 5", a["raw"], a["gt"], a["prediction"],
                            a["seg"], roi, task, ["z", "y", "x"])
    axes = fig.axes
    middle = SHAPE[0] // 2  # z = 32 + 3 * 16 = 80 nm
    np.testing.assert_array_equal(_image(axes[0]), raw[middle])
    np.testing.assert_allclose(_image(axes[1]), label_rgb(labels[middle]))
    np.testing.assert_allclose(_image(axes[3]), label_rgb(3 * labels[middle]))
    assert "z = 80 nm" in fig._suptitle.get_text()
    # axes in nm: x from 160 to 160 + 12 * 8, y from 80 to 80 + 10 * 8 (top to bottom)
    assert axes[0].get_images()[0].get_extent() == [160, 256, 160, 80]
    assert axes[0].get_xlabel() == "x (nm)" and axes[0].get_ylabel() == "y (nm)"
    # a single-channel prediction of a non-distance kind: the channel, with a colour bar
    np.testing.assert_allclose(_image(axes[2]), prediction[middle])
    assert len(fig.axes) == 5


def test_semantic_picture_uses_class_colours_and_chosen_segmentation(tmp_path, tiny_run,
                                                                     write_array):
    config = DistanceTaskConfig("distance", channels=["cell"], clip_distance=40,
                                tol_distance=16, scale_factor=20)
    task = config.build()
    gt = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 3 == 0).astype(np.uint8)
    raw, a = _arrays(tmp_path, write_array, gt, np.tanh(gt - 0.5).astype(np.float32), gt)
    run_dir = RunDir(tmp_path / "run").create()
    run_dir.save_config(tiny_run(tmp_path / "data.zarr", name="run", task_config=config))
    # the main criterion (dice) chooses the second parameter set: its segmentation is drawn
    params = [parameters_dict(p) for p in task.parameters[:2]]
    folder = tmp_path / "d.zarr"
    (folder / f"segmentation_{params[1]['id']}").symlink_to(folder / "seg")
    rows = [{"iteration": 7, "dataset": "val", "parameters": p, "criterion": c,
             "value": v, "degenerate": 0}
            for p, dice in zip(params, (0.2, 0.9)) for c, v in (("cell__dice", dice),
                                                                 ("cell__jaccard", dice / 2))]
    dataset = Dataset("val", a["raw"], a["gt"])
    path = plot_validation(run_dir, task, dataset, 7, a["prediction"], folder,
                           Roi(OFFSET, np.multiply(SHAPE, VOXEL)), rows)
    assert path == run_dir.plots / "validation_00000007_val.png" and path.stat().st_size > 0
    fig = validation_figure("t", a["raw"], a["gt"], a["prediction"], a["seg"], a["gt"].roi,
                            task, ["cell"])
    middle = gt[SHAPE[0] // 2]
    expected = np.where(middle[..., None] == 1, CLASS_COLOURS[0], 0.0)
    np.testing.assert_allclose(_image(fig.axes[1]), expected)
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["cell"]
    assert fig.axes[2].get_title() == "prediction: distance cell"
    assert fig.axes[2].get_images()[0].get_clim() == (-1, 1)
    title, chosen = validation_title("run", "val", 7, task, rows)
    assert chosen == params[1]
    assert title.startswith("run: val, iteration 7 — segmentation at threshold=")
    assert title.endswith(": cell__dice 0.900, cell__jaccard 0.450")
    # the parameters chosen on all the validation's datasets, shown at their values here
    title, shown = validation_title("run", "val", 7, task, rows, chosen=params[0])
    assert shown == params[0] and title.endswith(": cell__dice 0.200, cell__jaccard 0.100")

