"""The Slurm recipes of docs/cli.md against a real scheduler (`slurm_cluster`,
tests/system/conftest.py: one node, this machine's CPUs): ``dacapo apply`` in a batch
job, its blocks run by ``srun`` job steps, equals ``--workers 0``; the job cancelled
mid-way and submitted again resumes; ``torchrun`` in a batch job trains 2 gloo ranks
exactly like one process."""

from __future__ import annotations

import pickle
import re
import shlex
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.io.arrays import open_array
from dacapo.io.config_yaml import to_yaml
from dacapo.pipeline.apply import apply_run
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.runs.run_dir import RunDir
from dacapo.training.loop import train_run

BIN = Path(sys.executable).parent
#: docs/cli.md's apply recipe: a batch job of N one-CPU tasks, one worker step each
APPLY_SCRIPT = """\
#!/bin/bash
#SBATCH --ntasks=2 --cpus-per-task=1
{dacapo} apply {run} --input {raw} --output {out} --iteration 6 --quiet \\
    --workers "$SLURM_NTASKS" --worker-command "srun --ntasks=1 --cpus-per-task=1 {{command}}"
"""
#: docs/cli.md's training recipe, on one node with 2 ranks on the CPU
TRAIN_SCRIPT = """\
#!/bin/bash
#SBATCH --nodes=1 --ntasks-per-node=1 --cpus-per-task=2
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
srun {torchrun} --nnodes=$SLURM_NNODES --nproc-per-node=2 \\
    --rdzv-backend=c10d --rdzv-id=$SLURM_JOB_ID --rdzv-endpoint=$head:{port} \\
    -m dacapo.cli train {config} --root {root} --no-validate --quiet
"""


@pytest.fixture(scope="module")
def volume(tmp_path_factory, tiny_data, tiny_run, write_array):
    """The tiny Distance run (6 iterations), a raw of 8 x 5 x 5 = 200 prediction blocks
    (the tiny validation raw tiled 2 x 2 x 2) and its segmentation in this process."""
    root = tmp_path_factory.mktemp("slurm_apply")
    container = tiny_data(root)
    run_dir = train_run(tiny_run(container), root / "runs", progress=False, validate=False)
    small = open_array(container / "validate" / "raw")
    raw = root / "big.zarr" / "raw"
    write_array(raw, np.tile(small[small.roi], (2, 2, 2)), small.voxel_size)
    here = apply_run(run_dir.path, raw, root / "here.zarr" / "seg",
                     PredictOptions(num_workers=0, progress=False), iteration=6)
    return run_dir, raw, here[here.roi]


def _apply_script(folder: Path, run_dir: RunDir, raw: Path, out: Path) -> Path:
    script = folder / "apply.sbatch"
    script.write_text(APPLY_SCRIPT.format(
        dacapo=shlex.quote(str(BIN / "dacapo")), run=shlex.quote(str(run_dir.path)),
        raw=shlex.quote(str(raw)), out=shlex.quote(str(out))))
    return script


def _job_steps(cluster, job: str) -> list[str]:
    return [s.split(".", 1)[1] for s in cluster.steps() if s.startswith(f"{job}.")]


def _markers(run_dir: RunDir, test_dir: Path) -> dict[Path, int]:
    """{done-marker: mtime} of the prediction blocks of the apply into ``test_dir``."""
    folders = (run_dir.logs / "apply").glob(f"*_{test_dir.name}_*/*/predict/done")
    return {p: p.stat().st_mtime_ns for d in folders for p in d.iterdir() if p.name.isdigit()}


def _assert_segmented(cluster, job: str, script: Path, out: Path, here: np.ndarray) -> None:
    state = cluster.wait(job)
    log = script.with_suffix(".out").read_text()
    assert state == "COMPLETED", log
    assert f"wrote {out}" in log
    result = open_array(out)
    np.testing.assert_array_equal(result[result.roi], here)


def test_apply_blocks_run_as_job_steps(slurm_cluster, volume, tmp_path):
    run_dir, raw, here = volume
    out = tmp_path / "slurm.zarr" / "seg"
    script = _apply_script(tmp_path, run_dir, raw, out)
    job = slurm_cluster.submit(script)
    _assert_segmented(slurm_cluster, job, script, out, here)
    assert len(_markers(run_dir, tmp_path)) == 200
    # the batch script, and the 2 prediction workers as job steps 0 and 1 (srun): each
    # worker's log (srun's output) starts with its step's line from the TaskProlog
    assert sorted(_job_steps(slurm_cluster, job)) == ["0", "1", "batch"]
    task = next(run_dir.logs.glob(f"apply/*_{tmp_path.name}_*/*/predict"))
    logs = [(task / f"worker_{n}.out").read_text() + (task / f"worker_{n}.err").read_text()
            for n in (0, 1)]
    assert sorted(s for log in logs for s in re.findall(r"slurm step (\S+)", log)) == [
        f"{job}.0", f"{job}.1"], logs
    # both steps ran a daisy client; on a loaded machine one step may start after the other
    # has done all 200 blocks: then it finds the server gone and exits (daisy's warning)
    connected = ["worker for task predict connected: True" in log for log in logs]
    assert any(connected), logs
    assert all(c or "has ended" in log for c, log in zip(connected, logs)), logs


def test_cancelled_job_resumes(slurm_cluster, volume, tmp_path):
    run_dir, raw, here = volume
    out = tmp_path / "slurm.zarr" / "seg"
    script = _apply_script(tmp_path, run_dir, raw, out)
    job = slurm_cluster.submit(script)
    deadline = time.monotonic() + 120
    while not _markers(run_dir, tmp_path):  # cancel as soon as the steps have done a block
        assert time.monotonic() < deadline, "no block done in 120 s"
        time.sleep(0.005)
    slurm_cluster.run("scancel", job)
    assert slurm_cluster.wait(job) == "CANCELLED"
    done = _markers(run_dir, tmp_path)
    assert not _processes(tmp_path.name), "a worker outlived the cancelled job"
    assert 0 < len(done) < 200, len(done)
    assert _job_steps(slurm_cluster, job)[-1] in ("0", "1")  # the steps had started

    again = slurm_cluster.submit(script)
    _assert_segmented(slurm_cluster, again, script, out, here)
    after = _markers(run_dir, tmp_path)
    assert len(after) == 200
    assert all(after[p] == t for p, t in done.items()), "a block done before was redone"
    assert f"({len(done)} already done)" in (run_dir.logs / "apply.log").read_text()


def _processes(text: str) -> list[str]:
    """The command lines of the running processes that contain ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_in_a_batch_job_trains_like_one_process(slurm_cluster, tmp_path, tiny_data,
                                                        tiny_run):
    container = tiny_data(tmp_path)
    rc = tiny_run(container, num_iterations=6, checkpoint_interval=3,
                  trainer_config=TrainerConfig(batch_size=2, learning_rate=1e-3,
                                               num_data_workers=0))
    config = tmp_path / "tiny.yaml"
    to_yaml(rc, config)
    script = tmp_path / "train.sbatch"
    script.write_text(TRAIN_SCRIPT.format(
        torchrun=shlex.quote(str(BIN / "torchrun")), port=_free_port(),
        config=shlex.quote(str(config)), root=shlex.quote(str(tmp_path / "runs"))))
    job = slurm_cluster.submit(script, env={"LOGLEVEL": "INFO"})  # torchrun says its world
    one = train_run(rc, tmp_path / "one", progress=False, validate=False)  # meanwhile
    state = slurm_cluster.wait(job)
    log = script.with_suffix(".out").read_text()
    assert state == "COMPLETED", log
    # torchrun ran as job step 0 and started 2 ranks; rank 0 reports
    assert sorted(_job_steps(slurm_cluster, job)) == ["0", "batch"]
    assert "global_world_sizes=[2, 2]" in log and f"slurm step {job}.0" in log, log
    assert log.count("run directory:") == 1
    two = RunDir(tmp_path / "runs" / rc.name)
    assert ([r["loss"] for r in two.training_stats()]
            == pytest.approx([r["loss"] for r in one.training_stats()], rel=1e-5))
    assert two.checkpoint_iterations() == [0, 3, 6]
    a, b = two.load_checkpoint(6), one.load_checkpoint(6)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-4, atol=1e-6)
    counts_a, counts_b = pickle.loads(a["class_counts"]), pickle.loads(b["class_counts"])
    assert counts_a.keys() == counts_b.keys() == {(0, 0), (0, 1)}  # one stream per slot
    for key in counts_a:
        np.testing.assert_array_equal(counts_a[key], counts_b[key])
