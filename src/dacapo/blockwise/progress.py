"""Progress of a blockwise job for machines: a log line every N finished blocks.

On a terminal a job shows a bar (daisy's, or the prediction loop's tqdm). Off a terminal
(nohup, sbatch, a redirect) a bar is a flood of carriage returns, so `watch` logs one line
per `report_interval` blocks instead — blocks done of the job's total, blocks per second,
time left — counted from the job's done-markers, whoever writes them (this process, local
workers or cluster jobs). The lines are INFO records, notices (shown by ``dacapo`` at its
default verbosity) when ``notices``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

#: ``extra`` of a log record that ``dacapo`` shows at default verbosity (it shows warnings
#: and these; ``-v`` every INFO record)
NOTICE = {"notice": True}


def report_interval(total: int, lines: int = 20) -> int:
    """Steps (iterations, blocks) between two progress lines: about ``total / lines``,
    rounded down to 1, 2 or 5 × 10^k."""
    target = max(1, total // lines)
    step = 1
    while step * 10 <= target:
        step *= 10
    return max(m * step for m in (1, 2, 5) if m * step <= target)


def format_duration(seconds: float) -> str:
    """``42 s``, ``12 min`` or ``1.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class BlockProgress:
    """Lines for job ``task_id`` of ``total`` blocks, ``done_before`` of them done before
    this run: one at every multiple of `report_interval` (of the blocks to do) and at the
    end."""

    def __init__(self, task_id: str, total: int, done_before: int, notices: bool,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.task_id = task_id
        self.total = total
        self.done_before = done_before
        self.every = report_interval(max(1, total - done_before))
        self.extra = NOTICE if notices else None
        self.clock = clock
        self._started = clock()
        self._reported = done_before

    def update(self, done: int) -> None:
        """``done`` blocks of the job are finished (done-markers, this run's and before)."""
        new, last = done - self.done_before, self._reported - self.done_before
        if done <= self._reported:
            return
        if done < self.total and new // self.every == last // self.every:
            return  # no multiple of `every` crossed, not the end
        self._reported = done
        seconds = self.clock() - self._started
        rate = new / seconds if seconds > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else None
        speed = f"{rate:.3g} blocks/s" + (f", {format_duration(left)} left"
                                          if left else "")
        logger.info("%s: %d/%d blocks done, %s", self.task_id, done, self.total, speed,
                    extra=self.extra)


@contextmanager
def watch(task_id: str, total: int, count_done: Callable[[], int], notices: bool,
          poll: float = 1.0) -> Iterator[BlockProgress]:
    """Log `BlockProgress` lines while the body runs: a thread polls ``count_done()`` (the
    number of done blocks) every ``poll`` seconds, and once more at the end."""
    progress = BlockProgress(task_id, total, count_done(), notices)
    stop = threading.Event()

    def poll_loop() -> None:
        while not stop.wait(poll):
            progress.update(count_done())

    thread = threading.Thread(target=poll_loop, name=f"progress-{task_id}", daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join()
        progress.update(count_done())
