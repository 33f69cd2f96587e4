"""The repository names no absolute path of any machine.

Every file git tracks (``git ls-files``: code, docs, tests, examples, the Makefile; read
from the working tree, so uncommitted edits count) is searched for an absolute path that
starts at one of the top-level folders where machines keep people's and projects' files:
home folders (home, Users, root), mounts (mnt, media, Volumes), site trees (work, shared,
scratch, nrs, groups, srv, opt, usr/local), temporary folders (tmp, var, private) and
Windows drives (a capital letter, a colon, a slash or backslash). The repository refers
to its own files relatively, to the real volumes through ``$DACAPO_DATA`` or
``../shared/data`` beside it, to the peer's interpreter through ``$DACAPO_PEER_PYTHON``,
and to temporary space through ``tempfile`` (code) or pytest's ``tmp_path`` (tests).

Decisions:

- a temporary folder is still one machine's folder: docs and examples use relative paths
  (``runs/``, ``out.zarr``), not a temporary one;
- operating-system interfaces name no one's files and are fine: shebangs
  (``/usr/bin/env``), ``/dev/null``, ``/proc``, ``/sys``, system ``bin`` and ``lib``
  folders;
- a path only counts at a path boundary: ``../shared/data`` or ``<root>/data`` (relative,
  or a placeholder) and a URL's path (``https://host/home/...``) do not;
- ``.gitignore`` patterns start with a slash to mean the repository's root, not the
  machine's: not searched;
- files that are not text (images) are skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the top-level folders of machine locations (see the module docstring)
ROOTS = ("home", "Users", "root", "mnt", "media", "Volumes", "work", "shared", "scratch",
         "nrs", "groups", "srv", "opt", "usr/local", "tmp", "var", "private")
#: a path boundary before the leading slash: not after a name, a dot, a placeholder's end
#: or another slash (relative paths, ``<root>/...``, ``${x}/...``, URLs)
_BOUNDARY = r"(?<![\w.~/\\>})\]$%*-])"
MACHINE_PATH = re.compile(
    _BOUNDARY + r"/(?:" + "|".join(map(re.escape, ROOTS)) + r")(?:/|\b)"
    + r"|(?<![\w:/\\])[A-Z]:[\\/]+\w"
)
NOT_SEARCHED = {".gitignore"}


def machine_paths(text: str) -> list[str]:
    """The lines of ``text`` that name an absolute machine path, as ``line: text``."""
    return [f"{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), 1)
            if MACHINE_PATH.search(line)]


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [ROOT / name for name in out.stdout.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # deleted in the working tree, not yet in the index
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_no_tracked_file_names_a_machine_path():
    hits = []
    for path in tracked_files():
        if path.name in NOT_SEARCHED:
            continue
        text = _text(path)
        if text is not None:
            hits += [f"{path.relative_to(ROOT)}:{hit}" for hit in machine_paths(text)]
    assert not hits, "absolute paths of a machine in the repository:\n" + "\n".join(hits)


# the planted paths are built from parts, so that this file does not name them itself
_S = "/"


@pytest.mark.parametrize("line", [
    f'DATA = "{_S}work{_S}shared{_S}data"',
    f"see `{_S}home{_S}someone{_S}peer-venv{_S}bin{_S}python`",
    f"--dir {_S}tmp{_S}dacapo_load",
    f"data at {_S}Users{_S}me{_S}data.zarr",
    f"({_S}nrs{_S}cellmap{_S}x.n5)",
    f"path = 'C:{chr(92)}Users{chr(92)}me'",
    f"root: D:{_S}runs",
    f"'{_S}usr{_S}local{_S}cuda'",
    f"{_S}mnt{_S}data",
])
def test_a_planted_machine_path_is_found(line):
    assert machine_paths(f"first line\n{line}\n") == [f"2: {line}"]


@pytest.mark.parametrize("line", [
    "#!/usr/bin/env bash",
    "command > /dev/null 2>&1",
    'open("/proc/self/status")',
    "the real volumes in ../shared/data or $DACAPO_DATA",
    "``<root>/data/demo.zarr/train``",
    f"https://github.com{_S}home{_S}x and https://example.org{_S}tmp{_S}y",
    "a/b/tmp/c and shared/data/fibsem_neurons",
    f"${{TMPDIR}}{_S}work{_S}x",  # a variable-rooted path (built here so this file names none)
    "ratio 3/4 and/or x[:, 1:/2]",
    "f'{x:/>10}'",
])
def test_relative_paths_urls_and_system_interfaces_are_fine(line):
    assert machine_paths(line) == []
