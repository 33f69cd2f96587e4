"""TensorBoard event files of a run, read back with TensorBoard's own reader and compared
with ``training_stats.csv`` and ``validation_scores.csv`` (the ``tracked_run`` fixture: 4
iterations validated at 4, checkpoint 4 removed as if killed after logging step 4,
resumed from 2 to 6, validating 4 again)."""

from __future__ import annotations

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dacapo.runs.scores import choose_parameters, main_criterion
from dacapo.runs.tensorboard_log import MAX_SIDE


def _events(run_dir, folder: str) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir.path / "tensorboard" / folder),
                           size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    return acc.Reload()


def test_training_scalars_are_the_csv_rows_once(tracked_run):
    run_dir = tracked_run.run_dir
    stats = run_dir.training_stats()
    assert len(list((run_dir.path / "tensorboard" / "train").iterdir())) == 2  # two processes
    acc = _events(run_dir, "train")
    loss = acc.Scalars("loss")
    # the first process's steps 3 and 4 are purged: each step once, the csv's rows
    assert [e.step for e in loss] == [1, 2, 3, 4, 5, 6] == [int(r["iteration"]) for r in stats]
    np.testing.assert_allclose([e.value for e in loss], [r["loss"] for r in stats], rtol=1e-5)
    lr = [e.value for e in acc.Scalars("learning_rate")]
    expected_lr = [tracked_run.learning_rate * i / tracked_run.warmup for i in range(1, 7)]
    np.testing.assert_allclose(lr, expected_lr, rtol=1e-6)
    # seconds per iteration: differences of the csv's times within a process (the first
    # started at 1, the resumed one at 3)
    times = {int(r["iteration"]): r["time"] for r in stats}
    expected = [times[i] - (0 if i in (1, 3) else times[i - 1]) for i in range(1, 7)]
    seconds = [e.value for e in acc.Scalars("seconds_per_iteration")]
    np.testing.assert_allclose(seconds, expected, atol=2e-3)


def _chosen(run_dir, iteration: int) -> list[dict]:
    """The rows of ``iteration`` at the parameters the main criterion chooses."""
    rows = [r for r in run_dir.validation_scores() if r["iteration"] == iteration]
    task = run_dir.load_config().task_config.build()
    main = main_criterion(task)
    chosen = choose_parameters(rows, main, task.evaluation_scores.higher_is_better(main))
    return [r for r in rows if r["parameters"] == chosen["parameters"]]


def test_validation_scalars_are_the_chosen_rows(tracked_run):
    run_dir = tracked_run.run_dir
    at = _chosen(run_dir, 4)
    acc = _events(run_dir, "validation")
    tags = acc.Tags()
    assert sorted(tags["scalars"]) == sorted(f"validate/{r['criterion']}" for r in at)
    assert "validate/parameters/text_summary" in tags["tensors"]
    for r in at:
        events = acc.Scalars(f"validate/{r['criterion']}")
        # validated twice at 4 (before and after the resume): the second purges the first
        assert [e.step for e in events] == [4]
        np.testing.assert_allclose(events[0].value, r["value"], rtol=1e-6, equal_nan=True)


def test_validation_images_are_sections(tracked_run):
    acc = _events(tracked_run.run_dir, "validation")
    names = sorted(t.split("/")[1] for t in acc.Tags()["images"])
    assert names == ["gt", "prediction", "raw", "segmentation"]
    for name in names:
        (image,) = acc.Images(f"validate/{name}")
        assert image.step == 4 and 0 < image.width <= MAX_SIDE and 0 < image.height <= MAX_SIDE
