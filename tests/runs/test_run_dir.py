"""`dacapo.runs.run_dir`: the training-stats CSV survives a cut line, temp files of a killed
writer are removed, checkpoints and validation scores are replaced atomically."""

from __future__ import annotations

from dacapo.runs.run_dir import RunDir


def test_run_dir_csv_truncation_and_atomic_files(tmp_path):
    run = RunDir(tmp_path / "run").create()
    run.append_training_stats([{"iteration": i, "loss": 1.0 / i, "time": i} for i in range(1, 6)])
    with open(run.training_stats_file, "a") as f:
        f.write("6,0.1")  # a line cut by a kill
    assert [r["iteration"] for r in run.training_stats()] == [1, 2, 3, 4, 5]
    run.truncate_training_stats(3)
    assert [r["iteration"] for r in run.training_stats()] == [1, 2, 3]
    (run.checkpoints / ".00000009.pt.123.tmp").write_bytes(b"half")
    run.create()  # a re-run removes temp files a killed writer left
    assert not list(run.checkpoints.iterdir())
    run.save_checkpoint(3, {"model": {}})
    assert run.checkpoint_iterations() == [3] and run.load_checkpoint()["iteration"] == 3
    run.replace_validation_scores(3, [{"iteration": 3, "dataset": "v", "parameters": {"a": 1},
                                       "criterion": "dice", "value": 0.5}])
    run.replace_validation_scores(3, [{"iteration": 3, "dataset": "v", "parameters": {"a": 1},
                                       "criterion": "dice", "value": 0.7}])
    assert [r["value"] for r in run.validation_scores()] == [0.7]
