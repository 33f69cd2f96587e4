"""Training progress: a tqdm bar on a terminal; a log line every `report_interval` iterations.

The lines (iteration, loss, seconds per iteration, time left) always go to the run's
``logs/train.log``. Without a bar (stderr not a terminal: nohup, sbatch, a redirect) they
are notices as well: log records with ``extra=NOTICE``, which ``dacapo`` shows at its
default verbosity, one line each (no carriage returns).
"""

from __future__ import annotations

import logging
import time

from tqdm import tqdm

from dacapo.blockwise.progress import NOTICE, format_duration, report_interval

__all__ = ["NOTICE", "Progress", "format_duration", "report_interval"]

logger = logging.getLogger(__name__)

class Progress:
    """Progress of run ``name`` from iteration ``start`` to ``total``: a bar when ``bar``;
    log lines at the first iteration, every `report_interval` and the last, notices when
    there is no bar and ``notices``."""

    def __init__(self, name: str, start: int, total: int, bar: bool, notices: bool) -> None:
        self.name = name
        self.total = total
        self.every = report_interval(total)
        self.extra = NOTICE if notices and not bar else None
        self.bar = tqdm(total=total, initial=start, desc=f"train {name}", disable=not bar,
                        dynamic_ncols=True)
        self._started = time.perf_counter()
        self._last = (start, self._started)
        self._first = start + 1
        self._done = start

    def elapsed(self) -> float:
        """Seconds since the first step of this process began."""
        return time.perf_counter() - self._started

    def step(self, iteration: int, loss: float) -> None:
        """Iteration ``iteration`` is done with ``loss``."""
        self._done = iteration
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4g}")
        if iteration in (self._first, self.total) or iteration % self.every == 0:
            last_iteration, last_time = self._last
            now = time.perf_counter()
            per_step = (now - last_time) / max(1, iteration - last_iteration)
            self._last = (iteration, now)
            if iteration == self._first:  # start-up included: no estimate yet
                speed = f"first step {per_step:.3g} s"
            else:
                left = per_step * (self.total - iteration)
                speed = f"{per_step:.3g} s/iteration" + (f", {format_duration(left)} left" if left else "")
            logger.info("%s: iteration %d/%d, loss %.4g, %s", self.name, iteration, self.total,
                        loss, speed, extra=self.extra)

    def clear(self) -> None:
        self.bar.clear()

    def refresh(self) -> None:
        """Redraw the bar after a pause (a validation), which the next line's seconds per
        iteration and time left leave out."""
        self._last = (self._done, time.perf_counter())
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
