"""Writing an existing output anew: a new identity, and no level left from the old content.

The rule: *re-creating an output removes or rewrites every level and metadata entry of the
old one*, and done-markers never describe content that another job has overwritten since.

- Every array `dacapo.io.arrays.prepare_zarr`, `dacapo.io.ome_write.prepare_ome` and
  `dacapo.tools.pyramid.create_level` create carries an `OUTPUT_ID`. A blockwise job
  records it beside its done-markers (`dacapo.blockwise.grid`) and drops the markers when
  the id has changed since.
- Whoever writes an existing array anew — anything but the resume of its own blockwise job
  — calls `renew_output` first: the array gets a new id (so every other job's markers on
  it are dropped) and, when it is a level of an OME-NGFF image, the levels after it (the
  pyramid, derived from it) are removed with their metadata entries. Those writers: a
  blockwise job starting without done-markers of its own (`dacapo.blockwise.grid`), a
  post-processor writing an in-memory result, a prediction in this process without
  done-markers.
- A pyramid level records the id of the level it was computed from (`SOURCE_ID`);
  `dacapo.tools.pyramid` re-creates a level whose source has another id since.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import zarr

from dacapo.io.ome_read import OUTPUT_ID, level_paths, new_output_id

__all__ = ["SOURCE_ID", "remove_levels_after", "renew_output"]

#: attribute of a pyramid level: the `OUTPUT_ID` of the level it was computed from
SOURCE_ID = "dacapo_source_id"

_LEVEL_NAME = re.compile(r"^s\d+$")


def _image_level(path: Path) -> tuple[Path | None, str | None]:
    """(the OME-NGFF image, the level) that ``path`` writes: an image (its first level) or
    a listed level opened by its own path; (None, None) for any other array."""
    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Group):
        levels = level_paths(path)
        return path, levels[0]
    try:
        levels = level_paths(path.parent)
    except (ValueError, FileNotFoundError):
        return None, None
    return (path.parent, path.name) if path.name in levels else (None, None)


def remove_levels_after(image: str | Path, level: str) -> None:
    """Remove every level of the OME-NGFF ``image`` listed after ``level`` (and any array
    named like a level, ``s<k>``, that is not listed before it), metadata entry first."""
    image = Path(image)
    group = zarr.open_group(str(image), mode="r+")
    attrs = dict(group.attrs)
    holder = attrs["ome"] if "ome" in attrs else attrs
    meta = holder["multiscales"][0]
    paths = [str(d["path"]) for d in meta["datasets"]]
    keep = paths[: paths.index(level) + 1] if level in paths else paths
    if len(keep) < len(paths):
        meta["datasets"] = [d for d in meta["datasets"] if str(d["path"]) in keep]
        group.attrs.update({"ome": holder} if "ome" in attrs else holder)
    for name, _ in list(group.arrays()):
        if name not in keep and (name in paths or _LEVEL_NAME.match(name)) and name != level:
            shutil.rmtree(image / name, ignore_errors=True)


def renew_output(path: str | Path) -> str:
    """Mark the array at ``path`` (a zarr array, an OME-NGFF image: its first level, or a
    level by its own path) as written anew: a new `OUTPUT_ID` (returned), and the levels
    after it removed (`remove_levels_after`)."""
    path = Path(path)
    image, level = _image_level(path)
    array_path = path if image is None else image / level
    new_id = new_output_id()
    zarr.open_array(str(array_path), mode="r+").attrs[OUTPUT_ID] = new_id
    if image is not None:
        remove_levels_after(image, level)
    return new_id
