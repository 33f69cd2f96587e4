"""Applying again into an existing output leaves nothing of the old content (issue 21, 1).

A tiny trained run (checkpoints 3 and 6, which segment differently) is applied with the
``dacapo`` command (``--workers 0``) into one output several times; afterwards every level
of the prediction and of the segmentation, the multiscales metadata and the arrays on disk
equal those of a fresh apply of the last checkpoint into a new output. Before the fix the
pyramid level ``s1`` of the second apply still held the first one's result (and was
listed), and an apply with 6, then 3, then 6 again skipped every block the third time on
the first run's done-markers, leaving checkpoint 3's prediction and segmentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from dacapo.cli.demo_data import VOXEL_SIZE, synthetic_cells
from dacapo.experiments.tasks import DistanceTaskConfig
from dacapo.training.loop import train_run

IMAGES = ("seg", "seg_prediction")


@pytest.fixture(scope="module")
def applied(tmp_path_factory, tiny_data, tiny_run, write_array, dacapo_cli):
    """(apply(iteration, output, *options), fresh applies of checkpoints 3 and 6 with
    ``--pyramid``): the tiny run with a mask threshold inside its predictions' range,
    applied to a raw large enough for a pyramid level (96 voxels in y and x)."""
    root = tmp_path_factory.mktemp("stale")
    task = DistanceTaskConfig("distance", channels=["cell"], clip_distance=40, tol_distance=16,
                              scale_factor=20, thresholds=[-0.026])
    run = train_run(tiny_run(tiny_data(root), task_config=task), root / "runs",
                    progress=False, validate=False)
    raw, _, _ = synthetic_cells((16, 96, 96), VOXEL_SIZE, np.random.default_rng(5))
    write_array(root / "big.zarr" / "raw", raw, VOXEL_SIZE)

    def apply(iteration: int, output: Path, *options: str) -> None:
        result = dacapo_cli("apply", str(run.path), "--input", str(root / "big.zarr" / "raw"),
                            "--output", str(output), "--iteration", str(iteration),
                            "--workers", "0", "--quiet", *options)
        assert result.returncode == 0, result.stderr

    fresh = {it: root / f"fresh{it}.zarr" / "seg" for it in (3, 6)}
    for it, output in fresh.items():
        apply(it, output, "--pyramid")
    three, six = (_image(fresh[it])[2]["s0"] for it in (3, 6))
    assert not np.array_equal(three, six), \
        "the test needs checkpoints that segment differently (see the task's thresholds)"
    return apply, fresh


def _image(path: Path) -> tuple[dict, list[str], dict[str, np.ndarray]]:
    """(ome metadata, arrays on disk, {listed level: data}) of an OME-NGFF image."""
    group = zarr.open_group(str(path), mode="r")
    ome = dict(group.attrs)["ome"]
    listed = [str(d["path"]) for d in ome["multiscales"][0]["datasets"]]
    arrays = sorted(name for name, _ in group.arrays())
    return ome, arrays, {name: group[name][:] for name in listed}


def _assert_same_images(output: Path, reference: Path, levels: list[str]) -> None:
    for name in IMAGES:
        ome, arrays, data = _image(output.with_name(name))
        ref_ome, _, ref_data = _image(reference.with_name(name))
        assert list(data) == levels and arrays == levels, f"{name}: {arrays}, listed {list(data)}"
        if levels == list(ref_data):
            assert ome == ref_ome, name
        for level in levels:
            np.testing.assert_array_equal(data[level], ref_data[level], err_msg=f"{name}/{level}")


def test_applying_again_with_pyramid_leaves_no_stale_level(applied, tmp_path):
    """The issue's steps: apply --pyramid with checkpoint 6, then 3, into one output."""
    apply, fresh = applied
    output = tmp_path / "o.zarr" / "seg"
    apply(6, output, "--pyramid")
    apply(3, output, "--pyramid")
    _assert_same_images(output, fresh[3], ["s0", "s1"])


def test_applying_6_then_3_then_6_equals_a_fresh_apply(applied, tmp_path):
    """The third apply must not skip blocks on the first one's done-markers; the apply
    without --pyramid in between removes the levels of the first one."""
    apply, fresh = applied
    output = tmp_path / "o.zarr" / "seg"
    apply(6, output, "--pyramid")
    apply(3, output)
    _assert_same_images(output, fresh[3], ["s0"])
    apply(6, output)
    _assert_same_images(output, fresh[6], ["s0"])
