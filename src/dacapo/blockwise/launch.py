"""Running a planned job: in this process, on local daisy workers, or on workers started
through a shell command template (a cluster scheduler).

daisy 2.0 spawns ``python -m daisy._subprocess_worker`` per local worker (nothing is
forked). With ``worker_command`` each worker is started through a template, e.g.
``"srun --ntasks=1 --cpus-per-task=1 {command}"`` (docs/cli.md: inside a Slurm job), running ``python -m dacapo.blockwise <spec>``.

A worker that exits uncleanly (killed, pre-empted, or a command that cannot start) is
started again up to ``worker_restarts(num_workers)`` times in all before daisy abandons
the job; the blocks not done are then reported, and a re-run does only them.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import daisy.v2 as daisy
from daisy import logging as daisy_logging

from dacapo.blockwise.grid import BlockPlan
from dacapo.blockwise.options import BlockwiseOptions
from dacapo.blockwise.worker import DoneMarkers, Spec, close_arrays, run_block, save_spec

logger = logging.getLogger(__name__)

_SPEC_FILE = "worker_spec.pkl"


def _is_done(markers: DoneMarkers, block) -> bool:
    """daisy check function: the block's done-marker exists."""
    return markers.is_done(block.block_id[1])


def _worker_command_line(spec_path: str, daisy_context: str | None) -> list[str]:
    argv = [sys.executable, "-m", "dacapo.blockwise", spec_path]
    if daisy_context is not None:
        argv += ["--daisy-context", daisy_context]
    return argv


def _launch_command_worker(*, spec_path: str, template: str, context=None) -> None:
    """daisy worker function: start one worker through the shell template."""
    daisy_context = None if context is None else context.to_env()
    argv = _worker_command_line(spec_path, daisy_context)
    command = template.format(
        command=shlex.join(argv), quoted_command=shlex.quote(shlex.join(argv))
    )
    env = dict(os.environ)
    if daisy_context is not None:
        env["DAISY_CONTEXT"] = daisy_context
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    logger.info("starting worker: %s", command)
    ret = subprocess.run(command, shell=True, env=env, check=False)
    if ret.returncode != 0:
        raise RuntimeError(f"worker command {command!r} exited with code {ret.returncode}")


def run_in_process(spec: Spec, plan: BlockPlan, todo: set[int]) -> None:
    """Process the blocks ``todo`` one after the other here (no worker start-up); a
    failed block is recorded like a worker's and the others still run."""
    try:
        for block_id in sorted(todo):
            run_block(spec, plan.blocks[block_id])
    finally:
        close_arrays()


def worker_restarts(num_workers: int) -> int:
    """How many unclean worker exits a job survives: two per worker (daisy's default is
    10 whatever the count, so a command that cannot start was launched 11 times)."""
    return 2 * max(1, num_workers)


def run_on_workers(spec: Spec, plan: BlockPlan, num_workers: int, options: BlockwiseOptions,
                   max_retries: int, block_timeout: float | None) -> str | None:
    """Run the job's unfinished blocks on ``num_workers`` daisy workers (local processes, or
    jobs of ``options.worker_command``); the reason daisy abandoned the task, if it did."""
    worker_command = options.worker_command
    if worker_command is None:
        process_function = functools.partial(run_block, spec)
        host = "127.0.0.1"
    else:
        if "{command}" not in worker_command and "{quoted_command}" not in worker_command:
            raise ValueError(
                "worker_command must contain '{command}' or '{quoted_command}', got "
                f"{worker_command!r}"
            )
        spec_path = plan.task_dir / _SPEC_FILE
        save_spec(spec, spec_path)
        process_function = functools.partial(
            _launch_command_worker, spec_path=str(spec_path), template=worker_command
        )
        host = None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Task\(check_function", category=UserWarning)
        task = daisy.Task(
            plan.task_id, plan.total_read_roi, plan.block_read_roi, plan.block_write_roi,
            process_function=process_function,
            check_function=functools.partial(_is_done, plan.markers),
            read_write_conflict=False, fit=plan.fit, max_workers=num_workers,
            max_retries=max_retries, timeout=block_timeout, tracking_path=False,
            max_worker_restarts=worker_restarts(num_workers),
        )
    previous_log_dir = daisy_logging.get_log_basedir()
    daisy_logging.set_log_basedir(plan.task_dir.parent)
    try:
        states = daisy.run_blockwise(task, progress=options.progress, return_states=True,
                                     summary=False, host=host)
        state = states[plan.task_id]
        return (state.abandon_reason or state.last_worker_error) if state.abandoned else None
    except RuntimeError as e:  # daisy raises when it abandons a task
        return str(e)
    finally:
        daisy_logging.set_log_basedir(previous_log_dir)
