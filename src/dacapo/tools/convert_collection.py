"""``dacapo convert FOLDER OUT.zarr --collection``: a folder of unrelated images (2D, or 3D
with a 3D voxel size; sizes may differ) into a collection (`dacapo.io.collection`).

Naming rule: ``<name>_raw.tif`` (or any ``<name>.tif``) is the raw of image ``<name>``,
``<name>_labels.tif`` its labels (``.tiff`` too; case of the suffix ignored). An image
may be unlabelled; labels without a raw, or labels of another shape than their raw, are an
error naming the files. Each image is written with `dacapo.tools.convert.convert_tiff` to
``OUT.zarr/<name>/raw`` and ``OUT.zarr/<name>/labels`` (a label image), the whole
collection under a temporary name renamed when complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import tifffile
import zarr

from dacapo.errors import InputError
from dacapo.io.collection import ATTRIBUTE, LABELS, RAW, CollectionImage, collection_images
from dacapo.tools.convert import convert_tiff

__all__ = ["LABELS_SUFFIX", "RAW_SUFFIX", "convert_collection", "pair_files"]

#: file-name endings (before the extension) of an image's raw and labels
RAW_SUFFIX, LABELS_SUFFIX = "_raw", "_labels"
_EXTENSIONS = (".tif", ".tiff")


def pair_files(folder: str | Path) -> dict[str, tuple[Path, Path | None]]:
    """{image name: (raw file, labels file or None)} of the TIFFs in ``folder``, by the
    naming rule of the module docstring, sorted by name."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _EXTENSIONS)
    if not files:
        raise InputError(f"collection source {str(folder)!r}: no .tif/.tiff files in it")
    raws: dict[str, Path] = {}
    labels: dict[str, Path] = {}
    for f in files:
        stem = f.stem
        kind, name = (labels, stem[: -len(LABELS_SUFFIX)]) if stem.lower().endswith(LABELS_SUFFIX) \
            else (raws, stem[: -len(RAW_SUFFIX)] if stem.lower().endswith(RAW_SUFFIX) else stem)
        if not name or name in kind:
            raise InputError(f"collection source: {f.name!r} names image {name!r}, which "
                             f"another file names too (or none)")
        kind[name] = f
    orphans = sorted(set(labels) - set(raws))
    if orphans:
        raise InputError(f"collection source {str(folder)!r}: labels without a raw image: "
                         + ", ".join(labels[n].name for n in orphans)
                         + f" (expected <name>{RAW_SUFFIX}.tif beside <name>{LABELS_SUFFIX}.tif)")
    return {name: (raws[name], labels.get(name)) for name in sorted(raws)}


def has_labels_files(folder: str | Path) -> bool:
    """Whether ``folder`` holds TIFFs named like labels (``*_labels.tif``)."""
    return any(p.suffix.lower() in _EXTENSIONS and p.stem.lower().endswith(LABELS_SUFFIX)
               for p in Path(folder).iterdir())


def _check_same_shape(raw: Path, labels: Path) -> None:
    shapes = [tuple(tifffile.TiffFile(f).series[0].shape) for f in (raw, labels)]
    if shapes[0] != shapes[1]:
        raise InputError(f"collection source: {labels.name!r} has shape {shapes[1]}, its raw "
                         f"{raw.name!r} {shapes[0]}: labels must cover their image voxel for voxel")


def convert_collection(source, output, voxel_size, units: str = "nm", chunk: int = 256,
                       axis_names=None) -> list[CollectionImage]:
    """Write the images of the folder ``source`` as the collection ``output`` (a new
    ``*.zarr`` folder); ``voxel_size`` (2 or 3 positive integers) holds for every image, each
    of which must have that many dimensions. Returns the collection's images."""
    src, final = Path(source), Path(str(output))
    if not src.exists():
        raise InputError(f"--collection: the source {str(source)!r} does not exist")
    if not src.is_dir():
        raise InputError(f"--collection: the source {str(source)!r} must be a folder of TIFFs")
    if final.suffix not in (".zarr", ".zarr3"):
        raise InputError(f"--collection: the output {str(output)!r} must be a .zarr folder")
    if final.exists():
        raise InputError(f"output {str(output)!r} exists already; choose another path")
    pairs = pair_files(src)
    for raw, labels in pairs.values():
        if labels is not None:
            _check_same_shape(raw, labels)
    tmp = final.with_name(f".{final.stem}.converting.zarr")
    if tmp.exists():  # left by a killed conversion
        shutil.rmtree(tmp)
    zarr.open_group(str(tmp), mode="w", zarr_format=3,
                    attributes={ATTRIBUTE: {"images": list(pairs)}})
    for name, (raw, labels) in pairs.items():
        for file, leaf, label in ((raw, RAW, False), (labels, LABELS, True)):
            if file is None:
                continue
            try:
                convert_tiff(file, tmp / name / leaf, voxel_size, axis_names=axis_names,
                             units=units, chunk=chunk, label=label)
            except ValueError as e:
                raise InputError(f"collection image {name!r} ({file.name}): {e}") from e
    os.replace(tmp, final)
    return collection_images(final)
