"""TensorBoard event files of a run, written by default: ``<run>/tensorboard/``.

``tensorboard --logdir runs`` shows every run under the root; two event folders each:

- ``train/`` (`TensorBoardTracker`, the training loop): ``loss``, ``learning_rate`` and
  ``seconds_per_iteration`` at every iteration, the rows of ``training_stats.csv``
  (seconds per iteration: the difference of two consecutive ``time`` values; the first
  step of a process includes its start-up);
- ``validation/`` (`log_validation`, after every validation, ``dacapo validate``'s too):
  per dataset, every criterion at the parameters the task's main criterion chooses
  (``<dataset>/<criterion>``, the rows of ``validation_scores.csv`` that ``dacapo
  validate`` prints as "value"), those parameters as text, and a middle section (the
  middle of the first axis of a 3D volume) of raw, GT, prediction and that segmentation
  as images (``<dataset>/raw`` ...; at most `MAX_SIDE` pixels a side, strided).

Resume: a process writes a new event file. The training writer starts with a purge at
the iteration after the checkpoint it resumes from (``SummaryWriter(purge_step=)``), so
TensorBoard hides the steps an interrupted process logged after that checkpoint, which
the resumed run logs again, as ``training_stats.csv`` drops them. A validation of the
newest validated iteration purges older events of that iteration likewise; validating an
older iteration again adds a second point at its step.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from funlib.geometry import Roi
from torch.utils.tensorboard import SummaryWriter

from dacapo.io.arrays import open_array, read_array
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import parameters_label
from dacapo.runs.tracking import chosen_rows

logger = logging.getLogger(__name__)

#: longest side of an image, in pixels (larger sections are strided)
MAX_SIDE = 256


def board_dir(run_dir: RunDir) -> Path:
    """``<run>/tensorboard``: the run's event folders."""
    return run_dir.path / "tensorboard"


class TensorBoardTracker:
    """Training scalars in ``tensorboard/train`` (a `dacapo.runs.tracking.Tracker`)."""

    def __init__(self) -> None:
        self.writer: SummaryWriter | None = None

    def start(self, run_config, run_dir: RunDir, start: int) -> None:
        self.writer = SummaryWriter(str(board_dir(run_dir) / "train"), purge_step=start + 1)

    def step(self, iteration: int, loss: float, learning_rate: float, seconds: float) -> None:
        self.writer.add_scalar("loss", loss, iteration)
        self.writer.add_scalar("learning_rate", learning_rate, iteration)
        self.writer.add_scalar("seconds_per_iteration", seconds, iteration)

    def validation(self, iteration: int, rows: list[dict]) -> None:
        """Nothing: `log_validation` writes validations (``dacapo validate``'s too)."""

    def flush(self) -> None:
        self.writer.flush()

    def end(self, status: str) -> None:
        self.writer.close()


def log_validation(run_dir: RunDir, iteration: int, rows: list[dict], run_config, task) -> None:
    """Scalars, parameters and section images of one validation in ``tensorboard/validation``
    (see the module); a failure is a warning, never a failed validation."""
    try:
        newest = max([r["iteration"] for r in run_dir.validation_scores()], default=iteration)
        with SummaryWriter(str(board_dir(run_dir) / "validation"),
                           purge_step=iteration if iteration >= newest else None) as writer:
            datasets = {d.name: d for d in run_config.datasplit_config.validate}
            for dataset, chosen in chosen_rows(rows, task).items():
                for r in chosen:
                    writer.add_scalar(f"{dataset}/{r['criterion']}", r["value"], iteration)
                writer.add_text(f"{dataset}/parameters", parameters_label(chosen[0]["parameters"]),
                                iteration)
                if dataset in datasets:
                    out = run_dir.predictions / f"{iteration:08d}" / f"{dataset}.zarr"
                    for name, image in section_images(datasets[dataset], out,
                                                      chosen[0]["parameters"]).items():
                        writer.add_image(f"{dataset}/{name}", image, iteration,
                                         dataformats="HWC")
    except Exception as e:  # noqa: BLE001 - tracking must not fail a validation
        logger.warning("tensorboard: validation %d not logged (%s: %s)", iteration,
                       type(e).__name__, e)


def section_images(dataset_config, out: Path, parameters: dict) -> dict[str, np.ndarray]:
    """HWC uint8 images of the middle section of the scored ROI (prediction ∩ GT):
    ``raw``, ``gt``, ``prediction`` (channels 1-3 as grey / RGB) and ``segmentation`` (of
    ``parameters``, under ``out``); labels in hashed colours, 0 black."""
    ds = dataset_config.open()
    prediction = open_array(out / "prediction", "prediction")
    segmentation = open_array(out / f"segmentation_{parameters.get('id')}", "segmentation")
    roi = prediction.roi.intersect(ds.gt.roi)
    arrays = {"raw": ds.raw, "gt": ds.gt, "prediction": prediction,
              "segmentation": segmentation}
    sections = {name: _section(array, roi) for name, array in arrays.items()}
    return {"raw": _grey(sections["raw"]), "gt": _colours(sections["gt"]),
            "prediction": _channels(sections["prediction"]),
            "segmentation": _colours(sections["segmentation"])}


def _section(array, roi: Roi) -> np.ndarray:
    """The middle section (first axis) of ``roi`` in ``array`` (2D: all of it), channel
    axes first, strided to at most `MAX_SIDE` a side."""
    vs = array.voxel_size
    roi = roi.snap_to_grid(vs, mode="shrink")
    if vs.dims == 3:
        middle = roi.begin[0] + (roi.shape[0] // vs[0]) // 2 * vs[0]
        roi = Roi((middle, *roi.begin[1:]), (vs[0], *roi.shape[1:]))
    data = read_array(array, roi)
    if vs.dims == 3:
        data = data[..., 0, :, :]
    stride = max(1, math.ceil(max(data.shape[-2:]) / MAX_SIDE))
    return data[..., ::stride, ::stride]


def _scaled(data: np.ndarray, low: float, high: float) -> np.ndarray:
    span = high - low if high > low else 1.0
    return (np.clip((data.astype(np.float64) - low) / span, 0, 1) * 255).astype(np.uint8)


def _grey(data: np.ndarray) -> np.ndarray:
    """Intensities between their 1st and 99th percentile; the first channel if several."""
    data = data.reshape(-1, *data.shape[-2:])[0]
    low, high = np.percentile(data, [1, 99]) if data.size else (0, 1)
    return np.repeat(_scaled(data, low, high)[..., None], 3, axis=-1)


def _channels(data: np.ndarray) -> np.ndarray:
    """Channels 1-3 as RGB (one: grey), each between its minimum and maximum."""
    data = data.reshape(-1, *data.shape[-2:])[:3]
    scaled = [_scaled(c, float(c.min()), float(c.max())) for c in data]
    while len(scaled) < 3:
        scaled.append(scaled[0] if len(data) == 1 else np.zeros_like(scaled[0]))
    return np.stack(scaled, axis=-1)


def _colours(labels: np.ndarray) -> np.ndarray:
    """Labels in hashed colours (0 black); several channels: the channel index + 1 where
    it is set, the last set one winning (a class stack)."""
    if labels.ndim > 2:
        stack = labels.reshape(-1, *labels.shape[-2:])
        labels = np.zeros(stack.shape[1:], np.uint64)
        for i, channel in enumerate(stack):
            labels[channel > 0] = i + 1 if len(stack) > 1 else channel[channel > 0]
    ids = labels.astype(np.uint64)
    rgb = np.stack([(ids * np.uint64(m)) >> np.uint64(s) & np.uint64(255)
                    for m, s in ((2654435761, 7), (40503, 3), (2246822519, 11))], axis=-1)
    rgb = (rgb % 200 + 55).astype(np.uint8)
    rgb[ids == 0] = 0
    return rgb

