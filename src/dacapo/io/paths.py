"""The one check of an output location, made everywhere an output is created.

An output is refused when it **is, contains or lies inside** an input (inputs are never
written: an array written inside the raw's OME-NGFF group would change the input), when
it cannot be created (a file in the way, a read-only or non-writable folder), or when the
disk lacks the space it needs. Each refusal is an `InputError` naming the output.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from dacapo.errors import InputError


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(os.fspath(path))).resolve()


def check_not_input(output: str | Path, inputs: Mapping[str, str | Path | None],
                    name: str = "output") -> None:
    """Raise if ``output`` is, contains or lies inside one of the ``inputs`` paths."""
    out = _resolved(output)
    for in_name, path in inputs.items():
        if path is None:
            continue
        p = _resolved(path)
        if out == p:
            how = f"is the {in_name} array"
        elif p in out.parents:
            how = f"lies inside the {in_name} array {str(path)!r}"
        elif out in p.parents:
            how = f"contains the {in_name} array {str(path)!r}"
        else:
            continue
        raise InputError(f"{name} {str(output)!r} {how} (an output never overlaps an input: "
                         "inputs are never written); choose another output path")


def _check_writable(path: str | Path, needed_bytes: int | None, name: str) -> None:
    """Raise unless ``path`` can be created: its nearest existing ancestor is a writable
    directory (not a file, not on a read-only file system) with at least ``needed_bytes``
    free. Leaves nothing behind (a probe folder is created and removed at once)."""
    p = Path(os.path.abspath(os.fspath(path)))
    existing = p
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != p and not existing.is_dir():
        raise InputError(f"{name}: cannot create {str(path)!r}: {str(existing)!r} is a file")
    if existing == p and not p.is_dir():
        raise InputError(f"{name}: {str(path)!r} exists and is a file, not a zarr array folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        try:
            ro = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except OSError:
            ro = False
        why = "is on a read-only file system" if ro else "is not writable"
        raise InputError(f"{name}: cannot write {str(path)!r}: {str(existing)!r} {why}")
    try:  # the definitive test (root ignores modes; immutable dirs, ACLs, sysfs...)
        os.rmdir(tempfile.mkdtemp(prefix=".dacapo-write-probe-", dir=existing))
    except OSError as e:
        raise InputError(
            f"{name}: cannot write {str(path)!r}: {str(existing)!r}: {e.strerror}"
        ) from None
    if needed_bytes:
        free = shutil.disk_usage(existing).free
        if free < needed_bytes:
            raise InputError(
                f"{name}: not enough space for {str(path)!r}: {free / 1e9:.3g} GB free at "
                f"{str(existing)!r}, the output needs up to {needed_bytes / 1e9:.3g} GB "
                f"({os.strerror(errno.ENOSPC)})"
            )


def check_output(path: str | Path, inputs: Mapping[str, str | Path | None] | None = None,
                 needed_bytes: int | None = None, name: str = "output") -> None:
    """Raise unless ``path`` may be written: not overlapping any of ``inputs``
    (`check_not_input`), creatable, and with ``needed_bytes`` free."""
    check_not_input(path, inputs or {}, name)
    _check_writable(path, needed_bytes, name)
