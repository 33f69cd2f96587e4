"""A shared package works for its receiver: `dacapo export` of a tiny trained run, checked
with ``bioimageio test`` in a separate Python environment without dacapo, installed with
exactly the receiver's install line of docs/formats.md (RECEIVER_PINS).

The environment is a venv cached outside the repository (``~/.cache/dacapo-tests``, or
``$DACAPO_TESTS_CACHE``), keyed by the pins and the Python version, built once under a file
lock. Building it needs the package registry; when the registry cannot be reached the test
is skipped with pip's reason. Any other install failure fails: the documented line broke.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dacapo.cli.main import cli
from dacapo.training.loop import train_run

# The receiver's install line (docs/formats.md, "bioimage.io model packages"). bioimageio.core
# 0.11.0 pins bioimageio.spec 0.5.12.0, whose serializer fails under pydantic 2.14
# ("'index_key' is expected to be an integer or a string"); pydantic 2.12 and 2.13 work.
RECEIVER_PINS = ("torch==2.13.0", "bioimageio.core==0.11.0", "pydantic<2.14")
NETWORK_ERRORS = (
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "Network is unreachable", "No route to host", "ConnectTimeoutError",
    "ReadTimeoutError", "ProxyError", "Connection refused", "Max retries exceeded",
)
PROBE = """
import importlib.util, json
from importlib.metadata import version
print(json.dumps({"dacapo": importlib.util.find_spec("dacapo") is not None,
                  **{p: version(p) for p in ("bioimageio.core", "bioimageio.spec", "pydantic", "torch")}}))
"""


def _receiver_env(venv: Path) -> dict[str, str]:
    """The receiver's environment: the venv first on the path, nothing pointing into this
    repository or its venv; bytecode written (the install skips compiling it)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV")}
    return {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _is_ready(venv: Path) -> bool:
    marker = venv / "dacapo-receiver-ready"
    if not marker.is_file() or marker.read_text() != "\n".join(RECEIVER_PINS):
        return False
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import bioimageio.core"],
                           env=_receiver_env(venv), capture_output=True, timeout=120)
    return probe.returncode == 0


def _build(venv: Path) -> None:
    """A fresh venv (from the base interpreter, no system site-packages) with the pins;
    skips when the package registry cannot be reached."""
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    try:
        pip = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile",
             "--retries", "2", "--timeout", "30", *RECEIVER_PINS],
            env=_receiver_env(venv), capture_output=True, text=True, timeout=900,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"the receiver venv was not installed within 900 s: {' '.join(RECEIVER_PINS)}")
    if pip.returncode != 0:
        lines = [ln for ln in pip.stderr.splitlines() if "is ignored" not in ln]
        reason = "\n".join(lines[-4:])
        if any(e in pip.stderr for e in NETWORK_ERRORS):
            pytest.skip(f"the package registry cannot be reached to build the receiver venv: {reason}")
        pytest.fail(f"pip install {' '.join(RECEIVER_PINS)} failed:\n{pip.stderr[-3000:]}")
    (venv / "dacapo-receiver-ready").write_text("\n".join(RECEIVER_PINS))


@pytest.fixture(scope="session")
def receiver_venv() -> Path:
    """The cached receiver venv, built when missing or stale (one builder at a time)."""
    root = Path(os.environ.get("DACAPO_TESTS_CACHE") or Path.home() / ".cache" / "dacapo-tests")
    key = hashlib.sha256(f"{sys.version_info[:2]} {RECEIVER_PINS}".encode()).hexdigest()[:12]
    venv = root / f"receiver-venv-{key}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"receiver-venv-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_ready(venv):
            _build(venv)
    return venv


@pytest.fixture(scope="module")
def package(tmp_path_factory, tiny_data, tiny_run) -> Path:
    """A tiny Distance run (2 iterations, validated) exported to ``model.zip``."""
    root = tmp_path_factory.mktemp("receiver")
    rc = tiny_run(tiny_data(root), name="tiny_receiver", num_iterations=2, checkpoint_interval=2,
                  validation_interval=2)
    run = train_run(rc, root / "runs", progress=False, validate=True).path
    out = root / "model.zip"
    result = CliRunner().invoke(cli, ["export", str(run), str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_exported_package_passes_bioimageio_test_without_dacapo(receiver_venv, package, tmp_path):
    env = _receiver_env(receiver_venv)
    python = str(receiver_venv / "bin" / "python")
    probe = subprocess.run([python, "-c", PROBE], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    versions = json.loads(probe.stdout)
    assert versions.pop("dacapo") is False, "dacapo is importable in the receiver's environment"
    assert versions["bioimageio.core"] == "0.11.0" and versions["torch"].startswith("2.13.0")
    assert tuple(int(v) for v in versions["pydantic"].split(".")[:2]) < (2, 14), versions

    summary = tmp_path / "summary.json"  # the documented check: bioimageio test model.zip
    check = subprocess.run(
        [str(receiver_venv / "bin" / "bioimageio"), "test", str(package), "--summary", str(summary)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert summary.is_file(), check.stderr[-3000:]
    report = json.loads(summary.read_text())
    failed = [f"{d['name']}: {[e['msg'] for e in d.get('errors', [])]}"
              for d in report["details"] if d["status"] != "passed"]
    assert check.returncode == 0 and report["status"] == "passed", (
        f"bioimageio test failed with {versions}:\n" + "\n".join(failed))
    with zipfile.ZipFile(package) as z:
        formats = set(yaml.safe_load(z.read("rdf.yaml"))["weights"])
    assert formats == {"pytorch_state_dict", "torchscript"}
    passed = {d["name"] for d in report["details"] if d["status"] == "passed"}
    for weight_format in formats:  # each weight format reproduced the test output
        assert f"Reproduce test outputs from test inputs ({weight_format})" in passed, passed
