"""The options of a blockwise job, each with one meaning: `BlockwiseOptions`, and the one
place ``num_workers`` is resolved: `resolve_workers`.

``num_workers`` means the same for prediction, validation, application, post-processing,
evaluation and the runner: **0** = in this process (no worker start-up), **N ≥ 1** = N
local worker processes, or N jobs of the ``worker_command`` when one is given, **None** =
the run config's ``num_workers`` (0, the run config's default, where no run is involved).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import attr

from dacapo.errors import InputError

#: the meaning of ``--workers``, said once for every command that has it
WORKERS_HELP = ("Blockwise workers: 0 = in this process, N >= 1 = N local worker processes "
                "(or N jobs of --worker-command). Default: the run's num_workers.")

#: a run config's default ``num_workers`` (`dacapo.experiments.RunConfig`): in this process
DEFAULT_WORKERS = 0


def resolve_workers(num_workers: int | None, run_workers: int | None = None,
                    worker_command: str | None = None) -> int:
    """The number of worker processes ``num_workers`` stands for (module docstring): itself,
    or ``run_workers`` (the run config's value; `DEFAULT_WORKERS` when None) for None.
    A ``worker_command`` starts that many jobs, so it needs at least one."""
    n = num_workers if num_workers is not None else run_workers
    n = DEFAULT_WORKERS if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"num_workers: must be an integer >= 0 (0 = in this process), got {n!r}")
    if n == 0 and worker_command is not None:
        raise InputError("num_workers: a worker command starts N >= 1 worker jobs; 0 means in "
                         f"this process (worker command {worker_command!r})")
    return n


_Options = TypeVar("_Options", bound="BlockwiseOptions")


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


@attr.s(frozen=True, kw_only=True)
class BlockwiseOptions:
    """How a blockwise job runs (not what it computes).

    ``num_workers``: see the module docstring. ``worker_command``: a shell template
    containing ``{command}`` (the worker command as shell words, e.g. ``"srun --ntasks=1
    --cpus-per-task=1 {command}"``) or ``{quoted_command}`` (the same as one quoted word). ``log_dir``: where
    the done-markers and the workers' logs go, in ``log_dir/<task_id>`` (None: the job's
    default). ``task_id``: the job's folder name there (None: the job's own name, e.g.
    ``predict``, ``evaluate``). ``progress``: a progress bar. ``lines``: without a bar, a
    line every N blocks shown as a notice (`dacapo.blockwise.progress`; the lines are INFO
    log records either way).
    """

    num_workers: int | None = attr.ib(default=None)
    worker_command: str | None = attr.ib(default=None)
    log_dir: Path | None = attr.ib(default=None, converter=_path)
    task_id: str | None = attr.ib(default=None)
    progress: bool = attr.ib(default=True)
    lines: bool = attr.ib(default=True)

    @property
    def notices(self) -> bool:
        """Progress lines shown as notices: wanted and no bar."""
        return self.lines and not self.progress

    @property
    def workers(self) -> int:
        """``num_workers`` resolved (`resolve_workers`; None: `DEFAULT_WORKERS`)."""
        return resolve_workers(self.num_workers, None, self.worker_command)

    def resolved(self: _Options, run_workers: int | None) -> _Options:
        """These options with ``num_workers`` resolved against the run config's value."""
        return attr.evolve(self, num_workers=resolve_workers(self.num_workers, run_workers,
                                                             self.worker_command))

    def job(self: _Options, task_id: str, log_dir: str | Path | None) -> _Options:
        """These options for one pass of a job of several passes (a post-processor's):
        its own task id and log folder, no progress bar and no notices."""
        return attr.evolve(self, task_id=task_id, log_dir=log_dir, progress=False, lines=False)
