"""`dacapo.blockwise.progress`: a log line every N finished blocks when there is no bar —
on a given clock, and from a real blockwise job's done-markers (in this process and on two
daisy workers)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Coordinate
from funlib.persistence import prepare_ds

from dacapo.blockwise import BlockwiseOptions, run_blockwise
from dacapo.blockwise.progress import BlockProgress
from dacapo.io.arrays import prepare_zarr

from .test_runner import box_mean

BLOCK = Coordinate(16, 40, 40)  # 4 x 10 x 10 voxels: 4 x 4 x 4 blocks
LINE = re.compile(r"(\S+): (\d+)/(\d+) blocks done, [\d.e+-]+ blocks/s(, .+ left)?")


@pytest.fixture
def records(log_records) -> list[logging.LogRecord]:
    """The records of the blockwise progress logger (`log_records`)."""
    return log_records("dacapo.blockwise.progress")


def test_a_line_per_interval_of_blocks_on_a_given_clock(records):
    """100 blocks, 10 done before, one block per second: 90 to do -> a line every 2
    blocks (report_interval(90) = 2) after each multiple, and one at the end; jumps of
    several blocks give one line; no line twice for the same count."""
    clock = [0.0]
    progress = BlockProgress("job", 100, 10, notices=True, clock=lambda: clock[0])
    assert progress.every == 2
    for done in [11, 12, 13, 13, 17, 18, 100]:
        clock[0] += 1.0
        progress.update(done)
    progress.update(100)
    lines = [r.getMessage() for r in records]
    assert lines == [
        "job: 12/100 blocks done, 1 blocks/s, 88 s left",  # 2 in 2 s, 88 to go
        "job: 17/100 blocks done, 1.4 blocks/s, 59 s left",  # 7 in 5 s, 83 left
        "job: 18/100 blocks done, 1.33 blocks/s, 62 s left",  # 8 in 6 s
        "job: 100/100 blocks done, 12.9 blocks/s",  # 90 in 7 s
    ]
    assert all(r.notice for r in records)
    quiet = BlockProgress("job", 4, 0, notices=False, clock=lambda: 1.0)
    quiet.update(4)
    assert records[-1].getMessage().startswith("job: 4/4 blocks done")
    assert not hasattr(records[-1], "notice")  # an INFO record, not a notice


def _volume(tmp_path: Path):
    raw = np.arange(16 * 40 * 40, dtype=np.float32).reshape(16, 40, 40)
    src = prepare_ds(str(tmp_path / "in.zarr" / "raw"), raw.shape, offset=(0, 0, 0),
                     voxel_size=(4, 4, 4), dtype=np.float32, chunk_shape=(4, 10, 10), mode="w")
    src[src.roi] = raw
    out = tmp_path / "out.zarr" / "y"
    prepare_zarr(out, src.roi, Coordinate(4, 4, 4), np.float32, write_size=BLOCK)
    return {"raw": str(tmp_path / "in.zarr" / "raw")}, out


@pytest.mark.parametrize("workers", [0, 2])
def test_a_job_without_a_bar_logs_lines_from_its_markers(tmp_path, records, workers):
    """A job of 4 x 4 x 4 = 64 blocks without a bar: notices with the done-markers' count
    as the poll (every second) sees it, strictly increasing, the last one 64/64; a re-run
    with nothing to do says nothing."""
    inputs, out = _volume(tmp_path)
    options = BlockwiseOptions(num_workers=workers, progress=False, task_id="box")
    run_blockwise(box_mean, inputs, out, BLOCK,
                  Coordinate(4, 4, 4), options)
    lines = [r for r in records if r.getMessage().startswith("box:")]
    counts = [int(LINE.fullmatch(r.getMessage()).group(2)) for r in lines]
    assert counts[-1] == 64 and all(b > a for a, b in zip(counts, counts[1:]))
    assert all(r.notice for r in lines)
    # a re-run has nothing to do: no line
    records.clear()
    run_blockwise(box_mean, inputs, out, BLOCK,
                  Coordinate(4, 4, 4), BlockwiseOptions(num_workers=workers, progress=False,
                                                        task_id="box", lines=False))
    assert [r.getMessage() for r in records if r.getMessage().startswith("box:")] == []
