"""Fixtures of the system tests: a real single-node Slurm cluster on this machine.

``slurm_cluster`` installs Debian's ``slurm-wlm`` and ``munge`` with ``apt-get`` when they
are missing (and it can), then starts munged, slurmctld and slurmd for localhost from a
``slurm.conf`` in a fresh temporary folder (one node, ``localhost``, with this machine's
CPUs and memory, ``select/cons_tres``, ``proctrack/linuxproc``, ``task/none``, no
accounting). Every job task's ``TaskProlog`` appends ``<job id>.<step id> <time>`` to
``steps.txt`` there and prints ``slurm step <job id>.<step id>`` on the task's stdout: the
record of which job steps ran, and of which process ran in which, without ``sacct``
(which needs ``slurmdbd``). The test skips, with the reason printed, when the packages
cannot be installed or the node is not idle within `START_TIMEOUT` seconds; the daemons
are stopped and the folder removed afterwards (and the daemons die with the test process).
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attr
import pytest

#: seconds the daemons get to bring the node up (idle in ``sinfo``)
START_TIMEOUT = 30

_DAEMONS = ("munged", "slurmctld", "slurmd")
_CLIENTS = ("sinfo", "sbatch", "srun", "scancel", "squeue", "scontrol")
_ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"}

_CONF = """\
ClusterName=dacapotest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
PlugStackConfig={root}/plugstack.conf
TaskProlog={root}/task_prolog.sh
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""

_TASK_PROLOG = """\
#!/bin/sh
step="$SLURM_JOB_ID.${{SLURM_STEP_ID:-batch}}"
echo "$step $(date +%s.%N)" >> {root}/steps.txt
echo "print slurm step $step"
"""


@attr.s(frozen=True, auto_attribs=True)
class SlurmCluster:
    """A running single-node cluster: ``root`` holds its config, state and logs; ``env``
    is this process' environment with ``SLURM_CONF`` pointing at its ``slurm.conf``."""

    root: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 60, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """A Slurm command (``sbatch``, ``squeue``, ...) against this cluster (``env``: more
        environment variables)."""
        return subprocess.run(list(args), env={**self.env, **(env or {})}, text=True,
                              capture_output=True, timeout=timeout, check=check)

    def submit(self, script: Path, env: dict[str, str] | None = None) -> str:
        """Submit the batch ``script`` (output in ``<script>.out``, run in its folder; the
        job sees this environment and ``env``); the job id."""
        result = self.run("sbatch", "--parsable", f"--output={script.with_suffix('.out')}",
                          f"--chdir={script.parent}", str(script), check=False, env=env)
        assert result.returncode == 0, f"sbatch {script} failed: {result.stderr}"
        return result.stdout.split(";")[0].strip()

    def state(self, job: str) -> str:
        """The job's state (``PENDING``, ``RUNNING``, ``COMPLETED``, ``CANCELLED``, ...)."""
        out = self.run("scontrol", "show", "job", "--oneliner", job).stdout
        return next(f.split("=", 1)[1] for f in out.split() if f.startswith("JobState="))

    def wait(self, job: str, timeout: float = 300) -> str:
        """Wait until the job has ended and is cleaned up (polling: ``sbatch --wait`` polls
        seconds apart); its final state."""
        deadline = time.monotonic() + timeout
        while (state := self.state(job)) in _ACTIVE:
            assert time.monotonic() < deadline, f"job {job} still {state} after {timeout} s"
            time.sleep(0.2)
        return state

    def steps(self) -> list[str]:
        """``<job id>.<step id>`` of every task launched so far (the TaskProlog's record;
        the batch script's own step is ``<job id>.batch``)."""
        path = self.root / "steps.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line.split()[0] for line in lines]

    def log(self) -> str:
        return "".join((self.root / name).read_text(errors="replace")
                       for name in ("slurmctld.log", "slurmd.log", "munged.log")
                       if (self.root / name).exists())


def _install() -> str | None:
    """Install the Debian packages when a daemon or client is missing; why not, or None."""
    if all(shutil.which(n, path=_sbin_path()) for n in _DAEMONS + _CLIENTS):
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "slurm-wlm/munge are not installed and apt-get cannot install them (not root)"
    try:
        subprocess.run("apt-get update -qq && apt-get install -y -qq "
                       "--no-install-recommends slurm-wlm munge", shell=True,
                       capture_output=True, timeout=600, check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        return f"apt-get install slurm-wlm munge failed: {getattr(e, 'stderr', e)!r}"[:500]
    missing = [n for n in _DAEMONS + _CLIENTS if not shutil.which(n, path=_sbin_path())]
    return f"installed slurm-wlm and munge but {missing} are missing" if missing else None


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    """The machine's memory in MB, as slurmd counts it (``MemTotal``)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 1024


def _write_config(root: Path) -> Path:
    (root / "state").mkdir()
    (root / "spool").mkdir()
    (root / "plugstack.conf").write_text("")
    prolog = root / "task_prolog.sh"
    prolog.write_text(_TASK_PROLOG.format(root=root))
    prolog.chmod(0o755)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = root / "slurm.conf"
    conf.write_text(_CONF.format(
        host=socket.gethostname().split(".")[0], user=pwd.getpwuid(os.geteuid()).pw_name,
        root=root, ctld_port=_free_port(),
        slurmd_port=_free_port(), cpus=len(os.sched_getaffinity(0)), memory=_memory_mb()))
    return conf


def _die_with_parent() -> None:
    """In a daemon before it starts: SIGTERM when the test process dies (even by SIGKILL,
    which skips the fixture's teardown); Linux's ``prctl(PR_SET_PDEATHSIG)``."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _start(root: Path, conf: Path, env: dict[str, str]) -> list[subprocess.Popen]:
    """munged, slurmctld and slurmd in the foreground, each logging in ``root``."""
    sbin = {n: shutil.which(n, path=_sbin_path()) for n in _DAEMONS}
    commands = [
        [sbin["munged"], "--foreground", "--force", f"--socket={root}/munge.socket",
         f"--key-file={root}/munge.key", f"--pid-file={root}/munged.pid",
         f"--seed-file={root}/munged.seed", f"--log-file={root}/munged.log"],
        [sbin["slurmctld"], "-D", "-c", "-i", "-f", str(conf)],
        [sbin["slurmd"], "-D", "-N", "localhost", "-f", str(conf)],
    ]
    daemons = []
    for command in commands:
        with open(root / f"{Path(command[0]).name}.err", "w") as err:
            daemons.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                            stderr=err, start_new_session=True,
                                            preexec_fn=_die_with_parent))
        if command[0] == sbin["munged"]:
            _wait_for(lambda: (root / "munge.socket").exists(), 10)
    return daemons


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _node_idle(env: dict[str, str]) -> bool:
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True,
                         timeout=10)
    return out.returncode == 0 and out.stdout.split() == ["idle"]


def _stop(cluster: SlurmCluster, daemons: list[subprocess.Popen]) -> None:
    """Cancel every job, stop the daemons (slurmd first), remove the folder."""
    subprocess.run(["scancel", "--full", "--user", str(os.geteuid())], env=cluster.env,
                   capture_output=True, timeout=30, check=False)
    for daemon in reversed(daemons):
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
    shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A single-node Slurm cluster on this machine (module docstring); skips with the
    reason printed when it cannot start."""
    reason = _install()
    if reason is not None:
        print(f"Slurm tests skipped: {reason}")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="slurm"))  # short: munge's socket path
    conf = _write_config(root)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = SlurmCluster(root, env)
    daemons = _start(root, conf, env)
    if not _wait_for(lambda: _node_idle(env), START_TIMEOUT):
        log = cluster.log()[-1500:]
        _stop(cluster, daemons)
        reason = f"the Slurm node was not idle within {START_TIMEOUT} s; log:\n{log}"
        print(f"Slurm tests skipped: {reason}")
        pytest.skip(reason)
    yield cluster
    _stop(cluster, daemons)
