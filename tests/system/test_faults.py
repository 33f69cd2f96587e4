"""Faults: killed jobs resume from intact state; a failing block is retried and reported.

- blockwise job killed (SIGKILL to the driver and its workers) 10 times at random points,
  with a torn write simulated in an unfinished block after each kill: the re-run skips the
  finished blocks and the output equals an uninterrupted run's;
- a block that raises once is retried and reported (`BlockwiseResult.retried`, a warning);
  a block that always raises makes the job fail naming that block and its error;
- training killed 10 times at random points, half of them inside the checkpoint write
  (partial temp file, full temp file before the rename, right after the rename): every
  resume loads an intact checkpoint and the final weights, optimiser state and loss curve
  equal an uninterrupted run's;
- ``dacapo apply`` killed 10 times at random points of its blockwise prediction (144
  blocks) and finished by the real command line: finished blocks are skipped (their done-markers are
  untouched), prediction and segmentation equal an uninterrupted apply's.

The random kill points come from ``DACAPO_FAULT_SEED`` (default 0); the seed is in every
assertion message.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import open_ds, prepare_ds

from dacapo.blockwise import BlockInfo, BlockwiseError, BlockwiseOptions, run_blockwise
from dacapo.io.arrays import open_array, prepare_zarr

SEED = int(os.environ.get("DACAPO_FAULT_SEED", "0"))
TESTS = Path(__file__).resolve().parent
PYTHON = sys.executable

VOXEL = Coordinate(4, 2, 2)
SHAPE = (24, 40, 40)
BLOCK = Coordinate(24, 20, 20)  # (6, 10, 10) voxels -> 4 x 4 x 4 = 64 blocks


# --- process functions (module level: daisy workers import them) -----------------


def _box(a: np.ndarray) -> np.ndarray:
    """3^n box sum over a block read with 1 voxel of context, valid part only."""
    a = a.astype(np.float32)
    out = np.zeros(tuple(s - 2 for s in a.shape), np.float32)
    for shift in np.ndindex(*(3,) * a.ndim):
        out += a[tuple(slice(k, k + s - 2) for k, s in zip(shift, a.shape))]
    return out


def slow_box(raw: np.ndarray, block: BlockInfo, delay: float = 0.0) -> np.ndarray:
    """Box sum, after sleeping ``delay`` seconds (so a kill lands mid-job)."""
    time.sleep(delay)
    return _box(raw)


def fail_once(raw: np.ndarray, block: BlockInfo, state_dir: str, bad_begin: tuple) -> np.ndarray:
    """Raises on the first attempt at the block starting at ``bad_begin``."""
    if tuple(block.write_roi.begin) == tuple(bad_begin):
        flag = Path(state_dir) / f"attempt_{block.block_id}"
        if not flag.exists():
            flag.touch()
            raise RuntimeError(f"transient failure in block {block.block_id}")
    return _box(raw)


def always_fail(raw: np.ndarray, block: BlockInfo, bad_begin: tuple) -> np.ndarray:
    """Raises on every attempt at the block starting at ``bad_begin``."""
    if tuple(block.write_roi.begin) == tuple(bad_begin):
        raise RuntimeError(f"corrupt input in block {block.block_id}")
    return _box(raw)


# --- helpers -----------------------------------------------------------------------


def _reference(data: np.ndarray) -> np.ndarray:
    return _box(np.pad(data, 1))


def _make_raw(path: Path) -> tuple[str, np.ndarray]:
    data = np.random.default_rng(1).integers(0, 255, SHAPE, dtype=np.uint8)
    arr = prepare_ds(str(path), SHAPE, offset=(0, 0, 0), voxel_size=VOXEL, dtype=np.uint8,
                     chunk_shape=(12, 20, 20), mode="w")
    arr[arr.roi] = data
    return str(path), data


def _prepare(out: Path, roi: Roi) -> None:
    prepare_zarr(out, roi, VOXEL, np.float32, write_size=BLOCK)


_CTX = None


def _fork_context():
    """A forkserver that has imported the heavy modules once: children start in ms.

    (Forking the test process itself is unsafe once torch has started threads.)
    """
    global _CTX
    if _CTX is None:
        _CTX = multiprocessing.get_context("forkserver")
        _CTX.set_forkserver_preload(
            ["numpy", "funlib.persistence", "daisy.v2", "dacapo.blockwise.runner", "dacapo.training.loop",
             "dacapo.pipeline.apply", "torch._dynamo", "test_faults"]
        )
    return _CTX


def _blockwise_child(raw: str, out: str, log: str, workers: int, delay: float) -> None:
    """A blockwise job in its own process group (so the kill reaches its workers)."""
    os.setsid()
    logging.disable(logging.CRITICAL)
    run_blockwise(functools.partial(slow_box, delay=delay), {"raw": raw}, out, BLOCK,
                  context=VOXEL,
                  options=BlockwiseOptions(num_workers=workers, log_dir=log, progress=False))


def _start(target, *args):
    proc = _fork_context().Process(target=target, args=args, daemon=False)
    proc.start()
    return proc


def _done(log: Path) -> set[str]:
    d = log / "dacapo" / "done"
    return {p.name for p in d.iterdir() if p.name.isdigit()} if d.is_dir() else set()


def _kill_group(proc) -> None:
    """SIGKILL the process and everything it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.kill()
    proc.join()


# --- blockwise: kill, resume ---------------------------------------------------------


def test_blockwise_job_killed_ten_times_resumes_to_identical_output(tmp_path):
    rng = np.random.default_rng(SEED)
    raw, data = _make_raw(tmp_path / "in.zarr" / "raw")
    roi = open_ds(raw).roi
    out, log = tmp_path / "out.zarr" / "killed", tmp_path / "logs"
    _prepare(out, roi)
    blocks = _block_ids(roi)
    total = len(blocks)
    assert total == 64
    kills = 0
    history = []
    while kills < 10:
        before = _done(log)
        if len(before) >= total - 1:
            break
        workers = 2 if rng.random() < 0.3 else 1
        # kill once between 1 and 6 more blocks are done, after a random extra delay
        wait_for = len(before) + int(rng.integers(1, 7))
        extra = float(rng.uniform(0.0, 0.05))
        t0 = time.monotonic()
        proc = _start(_blockwise_child, raw, str(out), str(log), workers, 0.03)
        deadline = time.monotonic() + 60
        while len(_done(log)) < min(wait_for, total) and proc.is_alive():
            assert time.monotonic() < deadline, f"seed {SEED}: driver made no progress"
            time.sleep(0.005)
        time.sleep(extra)
        finished = not proc.is_alive()
        _kill_group(proc)
        assert not finished, f"seed {SEED}: the job ended before the kill ({proc.exitcode})"
        after = _done(log)
        history.append((workers, len(before), len(after), round(time.monotonic() - t0, 2)))
        kills += 1
        # a torn write: garbage in a block that is not marked done
        undone = [roi_ for i, roi_ in blocks.items() if str(i) not in after]
        if undone:
            victim = undone[int(rng.integers(len(undone)))]
            arr = open_ds(str(out), mode="r+")
            arr[victim] = np.full(tuple(BLOCK / VOXEL), -1e9, np.float32)
    assert kills == 10, f"seed {SEED}: only {kills} kills ({history})"

    # final re-run in-process: finishes only the remaining blocks
    done_before = len(_done(log))
    result = run_blockwise(functools.partial(slow_box, delay=0.0), {"raw": raw}, out, BLOCK,
                           context=VOXEL,
                           options=BlockwiseOptions(num_workers=2, log_dir=log, progress=False))
    assert result.skipped == done_before, (SEED, history)
    assert result.processed == total - done_before
    assert result.failed == []
    killed = open_ds(str(out))[roi]

    # uninterrupted run
    ref_out = tmp_path / "out.zarr" / "clean"
    _prepare(ref_out, roi)
    run_blockwise(functools.partial(slow_box, delay=0.0), {"raw": raw}, ref_out, BLOCK,
                  context=VOXEL, options=BlockwiseOptions(num_workers=1, progress=False,
                                                          log_dir=tmp_path / "logs_clean"))
    clean = open_ds(str(ref_out))[roi]
    np.testing.assert_array_equal(clean, _reference(data))
    np.testing.assert_array_equal(killed, clean, err_msg=f"seed {SEED}, kills {history}")


def _block_ids(total_roi: Roi) -> dict[int, Roi]:
    """{block id: write ROI} as the runner (daisy) numbers the blocks."""
    import daisy.v2 as daisy

    graph = daisy.BlockwiseDependencyGraph(
        "dacapo", Roi((0, 0, 0), BLOCK + VOXEL * 2), Roi(VOXEL, BLOCK), False, "valid",
        total_read_roi=total_roi.grow(VOXEL, VOXEL),
    )
    return {b.block_id[1]: b.write_roi for b, _ in graph.enumerate_all_dependencies()}


# --- blockwise: a failing block is retried and reported -------------------------------


def test_block_failing_once_is_retried_and_reported(tmp_path, caplog):
    raw, data = _make_raw(tmp_path / "in.zarr" / "raw")
    roi = open_ds(raw).roi
    out = tmp_path / "out.zarr" / "x"
    _prepare(out, roi)
    bad = (24, 20, 0)
    state = tmp_path / "state"
    state.mkdir()
    with caplog.at_level(logging.WARNING, logger="dacapo.blockwise"):
        result = run_blockwise(
            functools.partial(fail_once, state_dir=str(state), bad_begin=bad), {"raw": raw},
            out, BLOCK, context=VOXEL,
            options=BlockwiseOptions(num_workers=2, log_dir=tmp_path / "logs", progress=False),
        )
    assert (result.processed, result.failed) == (64, [])
    assert [tuple(b.write_roi.begin) for b in result.retried] == [bad]
    assert "transient failure in block" in result.retried[0].error
    assert len(list(state.iterdir())) == 1  # exactly one failed attempt
    block_id = result.retried[0].block_id
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"block {block_id} (write ROI" in w and "succeeded on a retry" in w
               for w in warnings), warnings
    np.testing.assert_array_equal(open_ds(str(out))[roi], _reference(data))


def test_block_always_failing_names_the_block_and_rerun_does_only_it(tmp_path):
    raw, data = _make_raw(tmp_path / "in.zarr" / "raw")
    roi = open_ds(raw).roi
    out = tmp_path / "out.zarr" / "x"
    _prepare(out, roi)
    bad = (48, 0, 20)
    log = tmp_path / "logs"
    with pytest.raises(BlockwiseError) as info:
        run_blockwise(functools.partial(always_fail, bad_begin=bad), {"raw": raw}, out, BLOCK,
                      context=VOXEL, max_retries=2,
                      options=BlockwiseOptions(num_workers=2, log_dir=log, progress=False))
    err = info.value
    assert [tuple(b.write_roi.begin) for b in err.failed] == [bad]
    b = err.failed[0]
    msg = str(err)
    assert "1 of 64 blocks failed (after 2 retries)" in msg
    assert f"block {b.block_id} (write ROI {b.write_roi})" in msg
    assert f"corrupt input in block {b.block_id}" in msg
    assert err.result.processed == 63
    # fixed input: the re-run processes that block only
    result = run_blockwise(functools.partial(slow_box, delay=0.0), {"raw": raw}, out, BLOCK,
                           context=VOXEL,
                           options=BlockwiseOptions(num_workers=1, log_dir=log, progress=False))
    assert (result.processed, result.skipped, result.failed) == (1, 63, [])
    np.testing.assert_array_equal(open_ds(str(out))[roi], _reference(data))


# --- training: kill, resume ------------------------------------------------------------

N_ITERATIONS = 48
CHECKPOINT_EVERY = 4


def _train_config(tmp_path: Path):
    from dacapo.experiments.architectures import DummyArchitectureConfig
    from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
    from dacapo.experiments.run_config import RunConfig
    from dacapo.experiments.tasks import DummyTaskConfig
    from dacapo.experiments.trainer_config import TrainerConfig

    rng = np.random.default_rng(3)
    labels = np.zeros((16, 32, 32), np.uint32)
    labels[3:12, 4:20, 6:26] = 1
    raw = (labels * 120 + rng.integers(0, 100, labels.shape)).astype(np.uint8)
    for name, data in (("raw", raw), ("gt", labels)):
        a = prepare_ds(str(tmp_path / "data.zarr" / name), data.shape, offset=(0, 0, 0),
                       voxel_size=(8, 4, 4), dtype=data.dtype, mode="w")
        a[a.roi] = data
    ds = DatasetConfig("d", str(tmp_path / "data.zarr" / "raw"), str(tmp_path / "data.zarr" / "gt"))
    return RunConfig(
        "killme",
        DummyTaskConfig("dummy", embedding_dims=2, detection_threshold=0.5),
        DummyArchitectureConfig("arch", num_in_channels=1, num_out_channels=2,
                                input_shape=(8, 16, 16)),
        DataSplitConfig([ds], []),
        TrainerConfig(num_data_workers=0, learning_rate=1e-2),
        num_iterations=N_ITERATIONS,
        validation_interval=0,
        checkpoint_interval=CHECKPOINT_EVERY,
    )


def _train_child(run_config, root: str, kill_in_checkpoint) -> None:
    """Train (resuming); with ``kill_in_checkpoint = (iteration, phase, fraction)`` SIGKILL
    this process while checkpoint ``iteration`` is written: ``partial`` (part of the temp
    file written), ``before_rename`` (temp file complete) or ``after_rename``."""
    os.setsid()
    logging.disable(logging.CRITICAL)
    import torch

    import dacapo.runs.checkpoint_files as run_dir_module
    from dacapo.training.loop import train_run

    torch.set_num_threads(1)
    if kill_in_checkpoint is not None:
        iteration, phase, fraction = kill_in_checkpoint
        real_write = run_dir_module.atomic_write_bytes

        def write(path: Path, data: bytes) -> None:
            if path.name == f"{iteration:08d}.pt":
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                if phase == "partial":
                    tmp.write_bytes(data[: int(len(data) * fraction)])
                elif phase == "before_rename":
                    tmp.write_bytes(data)
                else:
                    real_write(path, data)
                os.kill(os.getpid(), signal.SIGKILL)
            real_write(path, data)

        run_dir_module.atomic_write_bytes = write
    train_run(run_config, root, progress=False, validate=False)


def _stats_rows(run_path: Path) -> int:
    f = run_path / "training_stats.csv"
    return max(0, len(f.read_text().splitlines()) - 1) if f.is_file() else 0


def test_training_killed_ten_times_resumes_to_identical_weights(tmp_path):
    import torch

    from dacapo.runs.run_dir import RunDir

    rng = np.random.default_rng(SEED)
    rc = _train_config(tmp_path)
    root = tmp_path / "runs"
    run = RunDir(root / rc.name)
    history = []
    for k in range(10):
        latest = run.latest_checkpoint() or 0
        if k % 2 == 0:  # inside a checkpoint write
            target = latest + CHECKPOINT_EVERY  # the next checkpoint
            phase = ["partial", "before_rename", "after_rename"][int(rng.integers(3))]
            spec = (target, phase, float(rng.uniform(0.05, 0.95)))
            proc = _start(_train_child, rc, str(root), spec)
            proc.join(120)
            assert proc.exitcode == -signal.SIGKILL, (SEED, history, proc.exitcode)
            history.append(("checkpoint", *spec))
        else:  # at a random moment
            target = latest + int(rng.integers(1, 5))  # 1..4 iterations after the resume
            stats = run.path / "training_stats.csv"
            old_inode = stats.stat().st_ino if stats.is_file() else None
            proc = _start(_train_child, rc, str(root), None)
            deadline = time.monotonic() + 120
            # (the resume rewrites the stats file: wait for the new one, then for the rows)
            while proc.is_alive() and (
                not stats.is_file() or stats.stat().st_ino == old_inode
                or _stats_rows(run.path) < target
            ):
                assert time.monotonic() < deadline, (SEED, history)
                time.sleep(0.002)
            time.sleep(float(rng.uniform(0, 0.02)))
            assert proc.is_alive(), f"seed {SEED}: training ended before the kill {history}"
            _kill_group(proc)
            history.append(("time", target))
        # whatever was cut, the latest checkpoint is intact and is what a resume loads
        latest_now = run.latest_checkpoint()
        state = run.load_checkpoint(latest_now)
        assert state["iteration"] == latest_now, (SEED, history)
        assert set(state) >= {"model", "optimizer"}
        if history[-1][0] == "checkpoint":
            expected = target if history[-1][2] == "after_rename" else target - CHECKPOINT_EVERY
            assert latest_now == expected, (SEED, history, latest_now)
    assert (run.latest_checkpoint() or 0) < N_ITERATIONS, (SEED, history)  # 10 kills <= 40 its

    # finish, and compare with an uninterrupted run of the same config
    proc = _start(_train_child, rc, str(root), None)
    proc.join(300)
    assert proc.exitcode == 0, (SEED, history)
    clean_root = tmp_path / "clean"
    proc = _start(_train_child, rc, str(clean_root), None)
    proc.join(300)
    assert proc.exitcode == 0
    clean = RunDir(clean_root / rc.name)
    a, b = run.load_checkpoint(N_ITERATIONS), clean.load_checkpoint(N_ITERATIONS)
    for name, tensor in b["model"].items():
        assert torch.equal(a["model"][name], tensor), (name, SEED, history)
    for key, st in b["optimizer"]["state"].items():
        for name, value in st.items():
            assert torch.equal(torch.as_tensor(a["optimizer"]["state"][key][name]),
                               torch.as_tensor(value)), (key, name, SEED, history)
    killed_losses = [(r["iteration"], r["loss"]) for r in run.training_stats()]
    clean_losses = [(r["iteration"], r["loss"]) for r in clean.training_stats()]
    assert [i for i, _ in killed_losses] == list(range(1, N_ITERATIONS + 1))
    assert killed_losses == clean_losses, (SEED, history)


# --- dacapo apply: kill, re-run ------------------------------------------------------------


def _apply_child(run: str, raw: str, out: str, workers: int) -> None:
    os.setsid()
    logging.disable(logging.CRITICAL)
    from dacapo.pipeline.apply import apply_run
    from dacapo.pipeline.predict_options import PredictOptions

    apply_run(run, raw, out, PredictOptions(num_workers=workers, progress=False), iteration=1)


def _markers(folder: Path) -> dict[str, int]:
    """{done-marker path: mtime} of every blockwise task under ``folder``."""
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("done/*") if p.name.isdigit()}


def test_apply_killed_ten_times_then_cli_rerun_skips_done_blocks(tmp_path, dacapo_cli):
    from dacapo.pipeline.apply import apply_run
    from dacapo.pipeline.predict_options import PredictOptions
    from dacapo.runs.run_dir import RunDir
    from dacapo.training.loop import train_run

    rng = np.random.default_rng(SEED + 1)
    rc = _train_config(tmp_path)
    rc = type(rc)(**{**rc.__dict__, "num_iterations": 1, "checkpoint_interval": 1})
    train_run(rc, tmp_path / "runs", progress=False, validate=False)
    run = RunDir(tmp_path / "runs" / rc.name)
    big = np.random.default_rng(5).integers(0, 255, (32, 96, 96), dtype=np.uint8)
    raw_arr = prepare_ds(str(tmp_path / "big.zarr" / "raw"), big.shape, offset=(0, 0, 0),
                         voxel_size=(8, 4, 4), axis_names=["z", "y", "x"], dtype=np.uint8,
                         mode="w")
    raw_arr[raw_arr.roi] = big
    raw = str(tmp_path / "big.zarr" / "raw")
    out = tmp_path / "out.zarr" / "seg"
    logs = run.logs / "apply"
    history = []
    for _ in range(10):  # 10 randomised kills; 10 x at most 12 blocks < the 144 to predict
        target = len(_markers(logs)) + int(rng.integers(1, 13))
        workers = int(rng.integers(0, 3))  # 0: in this process, 1-2: worker processes
        proc = _start(_apply_child, str(run.path), raw, str(out), workers)
        deadline = time.monotonic() + 120
        while len(_markers(logs)) < target and proc.is_alive():
            assert time.monotonic() < deadline, (SEED, history)
            time.sleep(0.002)
        assert proc.is_alive(), f"seed {SEED}: apply ended before the kill {history}"
        _kill_group(proc)
        history.append((workers, target, len(_markers(logs))))
    done_before = _markers(logs)
    assert done_before, history

    # the real command line finishes the job
    res = dacapo_cli("apply", str(run.path), "--input", raw, "--output", str(out),
                     "--iteration", "1", "--workers", "2", "--quiet")
    assert res.returncode == 0, res.stderr
    done_after = _markers(logs)
    assert all(done_after[p] == t for p, t in done_before.items()), "a finished block was redone"
    assert len(done_after) > len(done_before)

    clean = tmp_path / "clean.zarr" / "seg"
    apply_run(str(run.path), raw, str(clean), PredictOptions(num_workers=0, progress=False),
              iteration=1)
    for suffix in ("", "_prediction"):
        a = open_array(str(out) + suffix)  # outputs are OME-NGFF images
        b = open_array(str(clean) + suffix)
        assert a.roi == b.roi
        np.testing.assert_array_equal(a[a.roi], b[b.roi], err_msg=f"{suffix} {SEED} {history}")
