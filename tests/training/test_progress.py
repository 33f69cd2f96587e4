"""`dacapo.training.progress`: the progress lines of a log (no bar), on a given clock."""

from __future__ import annotations

import re

from dacapo.training import progress
from dacapo.training.progress import Progress, report_interval


def test_lines_every_interval_and_a_pause_left_out_of_the_time_left(monkeypatch, log_records):
    """Steps of 1 s; a 100 s pause (a validation) after iteration 10, then `refresh`: the
    next line says 1 s/iteration, 9 s left (it said 101 s/iteration, 15 min left before
    the pause was left out)."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    records = log_records("dacapo.training.progress")
    bar = Progress("run", 0, 20, bar=False, notices=True)
    assert report_interval(20) == 1 and report_interval(1000) == 50
    for i in range(1, 21):
        clock[0] += 1.0
        bar.step(i, 0.5)
        if i == 10:
            clock[0] += 100.0
            bar.clear()
            bar.refresh()
    bar.close()
    lines = [r.getMessage() for r in records]
    assert len(lines) == 20 and all(r.notice for r in records)
    assert lines[0] == "run: iteration 1/20, loss 0.5, first step 1 s"
    assert lines[10] == "run: iteration 11/20, loss 0.5, 1 s/iteration, 9 s left"
    assert lines[19] == "run: iteration 20/20, loss 0.5, 1 s/iteration"
    assert all(re.fullmatch(r"run: iteration \d+/20, loss 0\.5, .*", s) for s in lines)
