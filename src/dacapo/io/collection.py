"""A collection: unrelated images (2D or 3D, of any sizes) in one container, one group each.

Layout (docs/formats.md#collections; written by ``dacapo convert --collection``)::

    <container>.zarr/<image>/raw      OME-NGFF image: the image's intensities
    <container>.zarr/<image>/labels   (optional) OME-NGFF label image on the same grid

Each image is an array of its own, so a network's input (a training crop, a prediction
block) never holds voxels of two images. The container's attribute ``dacapo_collection``
lists the image names; a hand-made container without it is read from its folders (every
sub-folder holding a ``raw`` image, sorted by name).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from dacapo.errors import InputError

__all__ = ["ATTRIBUTE", "LABELS", "RAW", "CollectionImage", "collection_images", "is_collection"]

#: the arrays of one image of a collection
RAW, LABELS = "raw", "labels"
#: the container attribute listing the images (``{"images": [names]}``)
ATTRIBUTE = "dacapo_collection"


class CollectionImage(NamedTuple):
    """One image of a collection: its name and array paths (``labels`` None if unlabelled)."""

    name: str
    raw: str
    labels: str | None


def _attributes(path: Path) -> dict:
    for meta, key in (("zarr.json", "attributes"), (".zattrs", None)):
        file = path / meta
        if file.is_file():
            data = json.loads(file.read_text())
            return data.get(key, {}) if key else data
    return {}


def _is_image(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in ("zarr.json", ".zattrs", ".zarray"))


def is_collection(path: str | Path) -> bool:
    """Whether ``path`` is a container of images (see the module docstring)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if ATTRIBUTE in _attributes(path):
        return True
    return not _is_image(path / "s0") and any(_is_image(p / RAW) for p in path.iterdir())


def collection_images(path: str | Path) -> list[CollectionImage]:
    """The images of the collection at ``path`` in its listed order (else sorted by name);
    InputError naming the path when it holds none or a listed image has no ``raw``."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"collection {str(path)!r}: no such folder")
    listed = _attributes(root).get(ATTRIBUTE, {}).get("images")
    names = list(listed) if listed is not None else sorted(
        p.name for p in root.iterdir() if _is_image(p / RAW))
    if not names:
        raise InputError(f"collection {str(path)!r}: no image (a sub-folder with a '{RAW}' "
                         "array) in it; write one with 'dacapo convert FOLDER OUT.zarr "
                         "--collection'")
    images = []
    for name in names:
        if not _is_image(root / name / RAW):
            raise InputError(f"collection {str(path)!r}: image {name!r} has no '{RAW}' array")
        labels = root / name / LABELS
        images.append(CollectionImage(name, str(root / name / RAW),
                                      str(labels) if _is_image(labels) else None))
    return images
