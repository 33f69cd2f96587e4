"""bioimage.io export (`dacapo export`) and import (PretrainedTaskConfig with a package).

Two small demo runs (Distance on the foreground mask, validated; Affinities + LSDs on the
instance labels) are exported; `bioimageio.core.test_model` must pass for both weight
formats, which re-runs the packaged model (the shipped plain-torch source or the
TorchScript file, with the package's own preprocessing) on the test input and compares
with the test output, dacapo's prediction, and runs it at three parameterized sizes.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import attr
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from funlib.persistence import open_ds

from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.tasks import AffinitiesTaskConfig, PretrainedTaskConfig
from dacapo.runs.run_dir import RunDir
from dacapo.runs.verify import run_problems
from dacapo.training.loop import train_run

bioimageio_core = pytest.importorskip(
    "bioimageio.core", reason="bioimageio.core is not installed (pip install 'bioimageio.core==0.11.*')"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_data, tiny_run, tiny_unet):
    root = tmp_path_factory.mktemp("export")
    container = tiny_data(root)
    distance = tiny_run(container, name="tiny_distance", num_iterations=4,  # with batch norm
                        checkpoint_interval=2, validation_interval=4,
                        architecture_config=tiny_unet(batch_norm=True))
    split = DataSplitConfig(
        train=[DatasetConfig("train", f"{container}/train/raw", f"{container}/train/labels")],
        validate=[DatasetConfig("validate", f"{container}/validate/raw",
                                f"{container}/validate/labels")],
    )
    affinities = tiny_run(
        container, name="tiny_affinities", num_iterations=2, checkpoint_interval=2,
        validation_interval=0, datasplit_config=split,
        task_config=AffinitiesTaskConfig("affinities", neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 1)],
                                         lsds=True, num_lsd_voxels=2),
    )
    # a network on a 2x coarser in-plane grid (input_pooling): pooling and interpolation
    # exported and run by bioimage.io's engines like the rest
    pooled = tiny_run(container, name="tiny_pooled", num_iterations=2, checkpoint_interval=2,
                      validation_interval=0, architecture_config=attr.evolve(
                          tiny_unet(), input_pooling=(1, 2, 2), input_shape=(8, 56, 56),
                          eval_shape_increase=(0, 8, 8)))
    out = {"root": root, "container": container}
    for rc in (distance, affinities, pooled):
        out[rc.name] = train_run(rc, root / "runs", progress=False, validate=True).path
    return out


def _rdf(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


def _exported(runs, name: str, *args: str) -> Path:
    out = runs["root"] / f"{name}.zip"
    if not out.exists() or args:
        from dacapo.cli.main import cli

        result = CliRunner().invoke(cli, ["export", str(runs[name]), str(out), *args])
        assert result.exit_code == 0, result.output
        assert f"wrote {out}" in result.output
    return out


@pytest.mark.parametrize("name", ["tiny_distance", "tiny_affinities", "tiny_pooled"])
def test_export_passes_bioimageio_test_model(runs, name):
    from bioimageio.core import test_model

    from dacapo.experiments.packages import standalone_kwargs
    from dacapo.ops.unet_sizes import unet_axes_grid

    package = _exported(runs, name)
    for weight_format in ("pytorch_state_dict", "torchscript"):
        summary = test_model(package, weight_format=weight_format)
        failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status != "passed"]
        assert summary.status == "passed", failed

    rdf = _rdf(package)
    rc = RunDir(runs[name]).load_config()
    task = rc.task_config.build()
    model = task.create_model(rc.architecture_config)
    (raw_in,) = rdf["inputs"]
    (pred,) = rdf["outputs"]
    # axes: batch, channel, z y x with the voxel size as scale
    assert [a["type"] for a in raw_in["axes"]] == ["batch", "channel", "space", "space", "space"]
    assert [a["id"] for a in raw_in["axes"][2:]] == ["z", "y", "x"]
    assert [a["scale"] for a in raw_in["axes"][2:]] == [16.0, 8.0, 8.0]
    assert {a["unit"] for a in raw_in["axes"][2:] + pred["axes"][2:]} == {"nanometer"}
    assert pred["axes"][1]["channel_names"] == list(task.predictor.output_array_type.channels)
    # sizes: min + n*step; output = input - (input - output) of the real model
    grids = unet_axes_grid(standalone_kwargs(model))
    assert [(a["size"]["min"], a["size"]["step"]) for a in raw_in["axes"][2:]] == [g[:2] for g in grids]
    shape = rc.architecture_config.input_shape  # (8, 28, 28) -> (4, 12, 12)
    _, out_shape = model.compute_output_shape(shape)
    assert [a["size"]["offset"] for a in pred["axes"][2:]] == [o - i for i, o in zip(shape, out_shape)]
    # preprocessing: uint8 divided by 255, as normalize_raw in training
    assert raw_in["data"]["type"] == "uint8"
    scale = [p for p in raw_in["preprocessing"] if p["id"] == "scale_linear"]
    assert scale[0]["kwargs"]["gain"] == pytest.approx(1 / 255) and scale[0]["kwargs"]["offset"] == 0
    # the test input is the centred crop of the validation raw
    with zipfile.ZipFile(package) as z:
        test_in = np.load(io.BytesIO(z.read(raw_in["test_tensor"]["source"])))
    raw = open_ds(str(runs["container"] / "validate" / "raw"), mode="r")[:]
    size = test_in.shape[2:]
    begin = [(r - s) // 2 for r, s in zip(raw.shape, size)]
    np.testing.assert_array_equal(test_in[0, 0], raw[tuple(slice(b, b + s) for b, s in zip(begin, size))])
    # the architecture entry is the shipped standalone file
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    assert arch["callable"] == "DacapoUNet" and arch["source"] == "dacapo_unet.py"
    assert rdf["weights"]["torchscript"]["parent"] == "pytorch_state_dict"
    assert rdf["config"]["dacapo"]["run"] == name


@pytest.mark.parametrize("name", ["tiny_distance", "tiny_affinities", "tiny_pooled"])  # with / without batch norm
def test_package_runs_with_torch_alone(runs, tmp_path, name):
    """The shipped architecture file with `dacapo` unimportable: builds from the rdf
    kwargs, loads weights.pt strictly and reproduces the test output."""
    package = _exported(runs, name)
    with zipfile.ZipFile(package) as z:
        z.extractall(tmp_path)
    script = """
import sys, importlib.util, yaml, numpy as np, torch
sys.modules['dacapo'] = None  # any dacapo import fails
rdf = yaml.safe_load(open('rdf.yaml'))
w = rdf['weights']['pytorch_state_dict']
spec = importlib.util.spec_from_file_location('m', w['architecture']['source'])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
net = getattr(m, w['architecture']['callable'])(**w['architecture']['kwargs']).eval()
net.load_state_dict(torch.load(w['source'], weights_only=True), strict=True)
gain = [p for p in rdf['inputs'][0]['preprocessing'] if p['id'] == 'scale_linear'][0]['kwargs']['gain']
x = np.load(rdf['inputs'][0]['test_tensor']['source']).astype(np.float32) * np.float32(gain)
y = net(torch.from_numpy(x)).detach().numpy()
ref = np.load(rdf['outputs'][0]['test_tensor']['source'])
print('maxdiff', float(np.abs(y - ref).max()), y.shape == ref.shape)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    diff, same_shape = out.stdout.split()[1:]
    assert same_shape == "True" and float(diff) < 1e-5
    import ast

    tree = ast.parse((tmp_path / "dacapo_unet.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "collections", "typing", "torch"} and "torch" in imported


def test_documentation_and_metadata(runs, monkeypatch):
    from dacapo.cli.main import cli

    monkeypatch.chdir(runs["root"])  # a relative output path, in a folder not there yet
    result = CliRunner().invoke(cli, [
        "export", str(runs["tiny_distance"]), "shared/model.zip", "--author", "Ada Lovelace",
        "--author", "Alan Turing", "--license", "MIT", "--cite", "A paper|10.1234/abc.5"])
    assert result.exit_code == 0, result.output
    package = runs["root"] / "shared" / "model.zip"
    assert sorted(p.name for p in package.parent.iterdir()) == ["model.zip"]  # no temp left
    rdf = _rdf(package)
    assert [a["name"] for a in rdf["authors"]] == ["Ada Lovelace", "Alan Turing"]
    assert rdf["license"] == "MIT"
    assert rdf["cite"] == [{"text": "A paper", "doi": "10.1234/abc.5"}]
    best = json.loads((runs["tiny_distance"] / "best.json").read_text())
    with zipfile.ZipFile(package) as z:
        doc = z.read(rdf["documentation"]["source"]).decode()
    assert "## Validation" in doc and "DistanceTaskConfig" in doc and "## Post-processing" in doc
    for crit in ("cell__dice", "cell__jaccard", "cell__voi"):
        assert f"| {crit} | {best[crit]['value']:.4g} | {best[crit]['iteration']} |" in doc
    threshold = best["cell__dice"]["parameters"]["threshold"]
    assert f"parameters to use (best `cell__dice`): threshold={threshold:.4g}" in doc
    assert "in-plane flips" not in doc  # validated without test_time_flips: not said
    # defaults: the U-Net paper (and the LSD paper for LSD models) by DOI, never a placeholder
    default = _rdf(_exported(runs, "tiny_affinities"))
    assert [c["doi"] for c in default["cite"]] == ["10.1007/978-3-319-24574-4_28",
                                                   "10.1038/s41592-022-01711-z"]
    assert default["license"] == "CC-BY-4.0" and len(default["authors"]) == 1


def test_export_bad_arguments(runs, tmp_path):
    from dacapo.cli.main import cli

    def run(*args):
        return CliRunner().invoke(cli, ["export", *args])

    r = run(str(runs["tiny_distance"]), str(tmp_path / "m.zip"), "--iteration", "2", "--criterion", "dice")
    assert r.exit_code == 2 and "not both" in r.output
    r = run(str(runs["tiny_distance"]), str(tmp_path / "m.zip"), "--iteration", "3")
    assert r.exit_code == 2 and "no checkpoint for iteration 3" in r.output
    r = run(str(runs["tiny_distance"]), str(tmp_path / "m.tar"))
    assert r.exit_code == 2 and "must end in .zip" in r.output
    r = run(str(runs["tiny_distance"]), str(tmp_path / "m.zip"), "--cite", "no reference")
    assert r.exit_code == 2 and "--cite" in r.output
    # a value bioimage.io refuses: the option and the problem, one line (not "3 validation
    # errors for ModelDescr")
    r = run(str(runs["tiny_distance"]), str(tmp_path / "m.zip"), "--license", "MIT-ish")
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        "error: export: --license: 'MIT-ish': not allowed; expected a SPDX license identifier "
        "(https://spdx.org/licenses/) or a custom license file"]
    r = run(str(runs["tiny_distance"]), str(tmp_path / "m.zip"), "--cite", "A paper|nodoi")
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        "error: export: --cite: 'nodoi': String should match pattern '^10\\.[0-9]{4}.+$'"]
    r = run(str(tmp_path / "runs" / "nuclei"), str(tmp_path / "m.zip"))
    assert r.exit_code == 2 and r.output.strip() == \
        f"error: run directory {str(tmp_path / 'runs' / 'nuclei')!r} does not exist"
    assert sorted(tmp_path.iterdir()) == []
    assert "a file ending in .zip" in " ".join(run("--help").output.split())


def test_export_over_a_package_says_so(runs, tmp_path, log_records):
    from dacapo.cli.main import cli

    records = log_records("dacapo.tools.export.bioimageio")
    out = tmp_path / "model.zip"
    out.write_bytes(b"an older package")
    result = CliRunner().invoke(cli, ["export", str(runs["tiny_distance"]), str(out)])
    assert result.exit_code == 0, result.output
    assert f"overwriting {out}" in [r.getMessage() for r in records]
    assert zipfile.is_zipfile(out)


def test_import_package_and_fine_tune(runs):
    import torch

    package = _exported(runs, "tiny_distance")
    rc = RunDir(runs["tiny_distance"]).load_config()
    pretrained = PretrainedTaskConfig("finetune", sub_task_config=rc.task_config, weights=package)
    ft = attr.evolve(rc, name="finetuned", task_config=pretrained, num_iterations=10,
                     checkpoint_interval=10, validation_interval=0)
    assert run_problems(ft, check_data=False) == []
    model = pretrained.build().create_model(ft.architecture_config)
    with zipfile.ZipFile(package) as z:
        weights = torch.load(io.BytesIO(z.read("weights.pt")), weights_only=True)
    state = model.state_dict()
    assert state.keys() == weights.keys() and all(torch.equal(state[k], weights[k]) for k in state)
    run_dir = train_run(ft, runs["root"] / "runs", progress=False, validate=False)
    stats = run_dir.training_stats()
    assert [int(r["iteration"]) for r in stats] == list(range(1, 11))
    assert all(np.isfinite(r["loss"]) for r in stats)


def test_import_mismatch_is_one_line(runs, tiny_unet):
    package = _exported(runs, "tiny_distance")
    rc = RunDir(runs["tiny_distance"]).load_config()
    wider = attr.evolve(tiny_unet(), num_fmaps=6, fmaps_out=6)
    task = PretrainedTaskConfig("ft", sub_task_config=rc.task_config, weights=package).build()
    with pytest.raises(ValueError) as e:
        task.create_model(wider)
    message = str(e.value)
    assert "\n" not in message and "does not match this run" in message
    assert "architecture fmaps_out 4 (package) vs 6 (run)" in message
    assert "architecture num_fmaps 4 (package) vs 6 (run)" in message
    other = attr.evolve(rc.task_config, channels=["nucleus"])
    task = PretrainedTaskConfig("ft", sub_task_config=other, weights=package).build()
    with pytest.raises(ValueError, match=r"channels \['cell'\] \(package\) vs \['nucleus'\] \(run\)"):
        task.create_model(rc.architecture_config)
    # through the CLI: `dacapo verify` lists it as a model problem on one line
    ft = attr.evolve(rc, name="ft", architecture_config=wider,
                     task_config=PretrainedTaskConfig("ft", sub_task_config=rc.task_config,
                                                      weights=package))
    problems = run_problems(ft, check_data=False)
    assert len(problems) == 1 and "num_fmaps 4 (package) vs 6 (run)" in problems[0]


def test_a_run_normalising_each_array_exports_a_per_sample_step(runs, tiny_run):
    """``normalization.statistics: each_array``: the package normalises each sample by its own
    percentiles (bioimage.io ``scale_range`` over channel and space), the test input with
    them as dacapo does, and ``bioimageio.core.test_model`` passes for both weight formats."""
    from bioimageio.core import test_model

    from dacapo.experiments.normalization import NormalizationConfig

    rc = tiny_run(runs["container"], name="tiny_per_array", num_iterations=2,
                  checkpoint_interval=2, validation_interval=0,
                  normalization=NormalizationConfig(statistics="each_array"))
    runs["tiny_per_array"] = train_run(rc, runs["root"] / "runs", progress=False).path
    package = _exported(runs, "tiny_per_array")
    for weight_format in ("pytorch_state_dict", "torchscript"):
        summary = test_model(package, weight_format=weight_format)
        failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status != "passed"]
        assert summary.status == "passed", failed
    (raw_in,) = _rdf(package)["inputs"]
    steps = {p["id"]: p.get("kwargs", {}) for p in raw_in["preprocessing"]}
    assert "scale_linear" not in steps
    assert steps["scale_range"]["axes"] == ["channel", "z", "y", "x"]
    assert (steps["scale_range"]["min_percentile"], steps["scale_range"]["max_percentile"]) \
        == (0.5, 99.5)
    with zipfile.ZipFile(package) as z:
        readme = z.read("README.md").decode()
    assert "each image by its own statistics: its own 0.5 / 99.5 percentiles" in readme
