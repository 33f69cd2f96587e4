"""Stopping training on SIGTERM or SIGINT (a scheduler's pre-emption, Ctrl-C) at a step
boundary, with a checkpoint.

`GracefulStop` (a context manager; it acts only on the main thread, where Python runs
signal handlers) records the first SIGINT or SIGTERM instead of dying. The training loop
asks after every step, all ranks together (`dacapo.training.distributed.agreed_signal`, so
every rank stops after the same step), writes the checkpoint of that iteration and raises
`TrainingStopped`; ``dacapo train`` prints its one line and exits with ``128 + signal``
(130 for SIGINT, 143 for SIGTERM). A second SIGINT (Ctrl-C twice) stops at once
(KeyboardInterrupt, no checkpoint) unless the stop is already decided (then it
changes nothing); a repeated SIGTERM changes nothing (a scheduler signals
every process and torchrun forwards the signal to its ranks as well). The data workers
ignore both (`dacapo.training.batches`): the training process decides.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(Exception):
    """Training stopped by a signal after ``iteration``, whose checkpoint is written."""

    def __init__(self, signum: int, iteration: int, total: int, checkpoint: Path) -> None:
        self.signum = signum
        self.iteration = iteration
        self.checkpoint = checkpoint
        super().__init__(
            f"stopped by {signal.Signals(signum).name} at iteration {iteration} of {total}; "
            f"checkpoint {checkpoint}; run the same command to resume"
        )

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: 130 (SIGINT), 143 (SIGTERM)."""
        return 128 + self.signum


class GracefulStop:
    """Within the block, SIGINT and SIGTERM set `signum` (the first one received) instead of
    ending the process; a second SIGINT raises KeyboardInterrupt. The previous handlers
    come back at the end. Off the main thread it does nothing."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.decided = False
        self._previous: dict[int, object] = {}

    def decide(self) -> None:
        """The loop acts on the stop (checkpoint written): from now on, within the block,
        a further Ctrl-C changes nothing (``dacapo train`` then ignores the signals until it
        exits, so that the data workers' teardown prints no traceback)."""
        self.decided = True

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame) -> None:
        # no I/O here: a handler that writes to a stream the interrupted code is writing
        # to fails ("reentrant call"); the loop reports the stop
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT and not self.decided:
            raise KeyboardInterrupt
