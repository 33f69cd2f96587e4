"""A dataset folder of the real volumes, read: its files, voxel size, classes and held-out part.

The quality benchmarks run on a data folder (``--data``; `_harness.data_dir`) that holds a
folder per dataset: TIFF stacks (axes z, y, x; 2D images y, x) and a ``meta.json``. Our six
volumes are one such folder; volumes of the same kinds in the same layout are read the same
way. For one dataset folder this module finds (reading only: headers of the TIFFs and
``meta.json``; nothing is converted or trained):

- the files (`volume`): ``raw.tif`` + ``labels.tif`` (or ``classes.tif``), or one
  ``<stem>_raw.tif`` + ``<stem>_labels.tif`` (or ``<stem>_classes.tif``) pair; for a 2D
  collection (`collection`) every ``<name>_raw.tif`` + ``<name>_labels.tif`` pair. ``.tiff``
  too; the labels must have the raw's shape;
- the voxel size in nm (z, y, x; 2D: y, x) from ``meta.json``: a key
  ``voxel_size_<unit>[_<axes>]`` or ``pixel_size_<unit>[_<axes>]`` (unit ``nm`` or ``um``;
  e.g. ``voxel_size_nm_zyx``, ``voxel_size_um_zyx``, ``pixel_size_um``) whose value is a list,
  or a dict of lists keyed by file stem (``{"1135": [...]}`` for ``1135_raw.tif``); µm become
  nm rounded to whole nm. Else a sentence ``voxel_size`` naming ``A x B x C nm`` (or µm) is
  read; when it hedges ("not stated", "about", ...) the size counts as assumed. Where
  ``meta.json`` states none, the caller's default for the dataset's kind is taken, also as
  assumed. An assumed size comes with a note (`Volume.notes`) that the scripts print and log;
- the class names: ``classes`` (``{"1": "membrane", ...}``: label value -> name), where
  present;
- the held-out part: `fraction_count` (the last slices, as a fraction of the volume);
  `Collection.last` (the last frames by sorted name);
- the roles of the classes in the organelles' partial-annotation experiment
  (`instance_class`, `partial_roles`), by their names.

A bad folder raises `DataError`, whose text is one line naming the path and the problem;
the scripts' ``main`` (wrapped by `exit_2`) print it and exit 2, without a traceback.
`is_prepared` / `mark_prepared` tie a converted copy to the files it was made from.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIFF_EXTENSIONS = (".tif", ".tiff")
#: names (or ``_<name>`` endings) of a volume's raw and of its labels
RAW_NAME = "raw"
LABEL_NAMES = ("labels", "classes")
#: words of a ``voxel_size`` sentence that make the size an assumption, not a statement
HEDGES = ("not stated", "unknown", "about", "approx", "assum", "estimat", "roughly", "≈", "~")


class DataError(Exception):
    """A bad dataset folder: the text is one line, ``<path>: <problem>``."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


def exit_2(main: Callable[..., int]) -> Callable[..., int]:
    """``main`` printing a `DataError` as one line on stderr and returning 2."""

    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs)
        except DataError as e:
            module = sys.modules.get(main.__module__)
            script = Path(getattr(module, "__file__", None) or "benchmark").stem
            print(f"{script}: {e}", file=sys.stderr, flush=True)
            return 2

    return wrapped


# --------------------------------------------------------------------------
# meta.json
# --------------------------------------------------------------------------


def read_meta(folder: Path) -> dict:
    """``folder/meta.json`` as a dict; `DataError` when absent, unreadable or no object."""
    path = Path(folder) / "meta.json"
    if not path.is_file():
        raise DataError(path, "missing: each dataset folder needs a meta.json (its voxel size, "
                              "e.g. \"voxel_size_nm_zyx\": [z, y, x])")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(path, f"unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise DataError(path, f"must hold a JSON object, holds a {type(meta).__name__}")
    return meta


_SIZE_KEY = re.compile(r"^(?:voxel|pixel)_size_(nm|um|µm|μm)(?:_([zyx]+))?$")
_NUMBER = r"(\d+(?:\.\d+)?)"
_TIMES = r"\s*(?:x|×|\*|,)\s*"
_SENTENCE = re.compile(_NUMBER + _TIMES + _NUMBER + f"(?:{_TIMES}{_NUMBER})?" +
                       r"\s*(nm|um|µm|μm|micron)", re.IGNORECASE)


def _nm(value: float, unit: str) -> float:
    """``value`` in ``unit`` as nm: µm rounded to whole nm, nm as stated (an integral value
    as an int)."""
    if unit.lower() != "nm":
        return int(round(value * 1000))
    return int(value) if float(value).is_integer() else float(value)


def _numbers(value: Any, ndim: int, where: Path, key: str) -> list[float]:
    if (not isinstance(value, list) or len(value) != ndim
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       and math.isfinite(v) and v > 0 for v in value)):
        raise DataError(where, f"{key} must be {ndim} positive numbers ({'z, y, x' if ndim == 3 else 'y, x'}) "
                               f"for these {ndim}D images, is {json.dumps(value)}")
    return value


def voxel_size(meta: dict, ndim: int, stems: Sequence[str], where: Path
               ) -> tuple[tuple[float, ...], str | None] | None:
    """(voxel size in nm, None) as ``meta`` states it; (size, why it is assumed) from a
    hedging ``voxel_size`` sentence; None when it states none. ``stems``: the file stems
    a per-file dict may be keyed by (all must agree)."""
    keys = [k for k in meta if _SIZE_KEY.match(k.lower())]
    if len(keys) > 1:
        raise DataError(where, f"states the voxel size {len(keys)} times ({', '.join(keys)}): "
                               "keep one")
    if keys:
        key = keys[0]
        unit, axes = _SIZE_KEY.match(key.lower()).groups()
        if axes is not None and axes not in ("zyx", "yx"):
            raise DataError(where, f"{key}: give the axes in the order z, y, x (…_zyx / …_yx)")
        value = meta[key]
        if isinstance(value, dict):
            wanted = [s for s in stems if s in value]
            if wanted:
                found = {json.dumps(value[s]) for s in stems if s in value}
                missing = [s for s in stems if s not in value]
                if len(found) > 1 or missing:
                    raise DataError(where, f"{key}: the images need one voxel size, "
                                           f"found {len(found)} sizes"
                                    + (f" and none for {', '.join(missing)}" if missing else ""))
                value = value[wanted[0]]
            elif len(value) == 1:
                value = next(iter(value.values()))
            else:
                raise DataError(where, f"{key} has no entry for {', '.join(stems) or 'the raw'} "
                                       f"(entries: {', '.join(value)})")
        values = _numbers(value, ndim, where, key)
        return tuple(_nm(v, unit) for v in values), None
    sentence = meta.get("voxel_size", meta.get("pixel_size"))
    if sentence is None:
        return None
    if not isinstance(sentence, str):
        raise DataError(where, f"voxel_size {json.dumps(sentence)} has no unit: write "
                               "\"voxel_size_nm_zyx\" or \"voxel_size_um_zyx\"")
    match = _SENTENCE.search(sentence)
    if match is None:
        return None
    values = [float(v) for v in match.groups()[:3] if v is not None]
    if len(values) != ndim:
        raise DataError(where, f"voxel_size {sentence!r} names {len(values)} sizes for "
                               f"these {ndim}D images")
    unit = match.group(4)
    size = tuple(_nm(v, "nm" if unit.lower() == "nm" else "um") for v in values)
    hedged = any(h in sentence.lower() for h in HEDGES)
    return size, (f"meta.json's voxel_size: {sentence!r}" if hedged else None)


def class_names(meta: dict, where: Path) -> dict[int, str] | None:
    """``meta``'s ``classes`` as {label value: name}, sorted by value; None if absent."""
    classes = meta.get("classes")
    if classes is None:
        return None
    problem = "classes must map label values to names, e.g. {\"1\": \"membrane\"}"
    if not isinstance(classes, dict) or not classes:
        raise DataError(where, problem)
    out: dict[int, str] = {}
    for key, name in classes.items():
        try:
            value = int(key)
        except ValueError:
            raise DataError(where, f"{problem}; {key!r} is no label value") from None
        if not isinstance(name, str) or not name.strip() or value < 0:
            raise DataError(where, f"{problem}; got {key!r}: {json.dumps(name)}")
        out[value] = name.strip()
    if len(set(out.values())) < len(out):
        raise DataError(where, "classes: two label values have the same name")
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------
# the files
# --------------------------------------------------------------------------


def _tiffs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in TIFF_EXTENSIONS)


def _base(path: Path, ending: str) -> str | None:
    """The stem of ``path`` less ``_<ending>`` ("" for the bare name ``<ending>``), or None."""
    stem = path.stem
    if stem.lower() == ending:
        return ""
    if stem.lower().endswith("_" + ending) and len(stem) > len(ending) + 1:
        return stem[: -len(ending) - 1]
    return None


def tiff_shape(path: Path) -> tuple[int, ...]:
    """The shape of the TIFF's first series, from its header."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tuple(int(s) for s in tif.series[0].shape)
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
        raise DataError(path, f"not a readable TIFF ({type(e).__name__}: {e})") from None


def _folder(folder: Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such dataset folder (the data folder: a script's --data, "
                                "else $DACAPO_DATA, else ../shared/data beside the repository)")
    return folder


def _size(meta: dict, ndim: int, stems: Sequence[str], folder: Path,
          default: Sequence[float] | None) -> tuple[tuple[float, ...], str | None]:
    where = folder / "meta.json"
    found = voxel_size(meta, ndim, stems, where)
    if found is not None:
        return found
    if default is None or len(default) != ndim:
        raise DataError(where, "states no voxel size: add \"voxel_size_nm_zyx\": [z, y, x] "
                               "(or \"voxel_size_um_zyx\"; 2D: \"pixel_size_um\": [y, x])")
    return tuple(default), "meta.json states none; this kind's default"


def _format(size: Sequence[float]) -> str:
    return " × ".join(f"{v:g}" for v in size)


@dataclass(frozen=True)
class Volume:
    """One 3D volume with labels: its files, shape, voxel size (nm, z y x) and classes."""

    folder: Path
    raw: Path
    labels: Path
    shape: tuple[int, ...]
    voxel_size: tuple[float, ...]
    #: why the voxel size is assumed; None when meta.json states it
    voxel_assumed: str | None
    classes: dict[int, str] | None

    @property
    def grid_voxel(self) -> tuple[int, ...]:
        """The voxel size of the converted arrays' grid: whole nm, as
        ``funlib.geometry.Coordinate`` makes it (a fraction of a nm is cut off)."""
        return tuple(int(v) for v in self.voxel_size)

    @property
    def notes(self) -> list[str]:
        """What the scripts print and log about the voxel size: assumed, or not whole nm."""
        out = []
        if self.voxel_assumed:
            out.append(f"voxel size assumed {_format(self.voxel_size)} nm "
                       f"({self.voxel_assumed})")
        if self.grid_voxel != tuple(self.voxel_size):
            out.append(f"voxel size {_format(self.voxel_size)} nm is not whole nm: the "
                       f"converted arrays use {_format(self.grid_voxel)} nm")
        return out

    def stamp(self) -> dict:
        """What a converted copy depends on: the files (size, time) and the voxel size."""
        return {"files": [_file_stamp(p) for p in (self.raw, self.labels)],
                "voxel_size": list(self.voxel_size)}


def volume(folder: Path, default_voxel: Sequence[float] | None = None) -> Volume:
    """The 3D volume of dataset folder ``folder`` (see the module docstring);
    ``default_voxel``: this kind's voxel size (nm), taken only when meta.json states none."""
    folder = _folder(folder)
    meta = read_meta(folder)
    tiffs = _tiffs(folder)
    raws = [p for p in tiffs if _base(p, RAW_NAME) is not None]
    if not raws:
        raise DataError(folder, "no raw TIFF (raw.tif, or <stem>_raw.tif beside "
                                "<stem>_labels.tif)")
    if len(raws) > 1:
        raise DataError(folder, f"{len(raws)} raw TIFFs ({', '.join(p.name for p in raws)}): "
                                "a volume's folder holds one")
    raw = raws[0]
    stem = _base(raw, RAW_NAME)
    labels = [p for p in tiffs if any(_base(p, n) == stem for n in LABEL_NAMES)]
    prefix = f"{stem}_" if stem else ""
    if not labels:
        raise DataError(folder / f"{prefix}labels.tif",
                        f"missing: no labels for {raw.name} ({prefix}labels.tif or "
                        f"{prefix}classes.tif)")
    if len(labels) > 1:
        raise DataError(folder, f"{len(labels)} label TIFFs for {raw.name} "
                                f"({', '.join(p.name for p in labels)}): keep one")
    shape = tiff_shape(raw)
    label_shape = tiff_shape(labels[0])
    if len(shape) != 3:
        raise DataError(raw, f"has shape {shape}: a volume is 3D (z, y, x)")
    if label_shape != shape:
        raise DataError(labels[0], f"has shape {label_shape}, the raw {raw.name} {shape}: "
                                   "labels must cover the raw voxel for voxel")
    size, assumed = _size(meta, 3, [stem] if stem else [], folder, default_voxel)
    return Volume(folder, raw, labels[0], shape, size, assumed,
                  class_names(meta, folder / "meta.json"))


@dataclass(frozen=True)
class Collection:
    """A folder of 2D images with labels: {name: (raw, labels)} sorted by name, voxel size."""

    folder: Path
    images: dict[str, tuple[Path, Path]]
    voxel_size: tuple[float, ...]
    voxel_assumed: str | None

    @property
    def names(self) -> list[str]:
        return list(self.images)

    def last(self, count: int) -> list[str]:
        """The last ``count`` images by sorted name (the held-out frames by default)."""
        return self.names[-count:]

    grid_voxel = Volume.grid_voxel
    notes = Volume.notes

    def stamp(self) -> dict:
        return {"files": [_file_stamp(p) for pair in self.images.values() for p in pair],
                "voxel_size": list(self.voxel_size)}


def collection(folder: Path, default_voxel: Sequence[float] | None = None) -> Collection:
    """The 2D images of the collection folder ``folder``: every ``<name>_raw.tif`` (or
    ``<name>.tif``) with its ``<name>_labels.tif``, paired as ``dacapo convert
    --collection`` pairs them (`dacapo.tools.convert_collection.pair_files`);
    ``default_voxel`` as in `volume`."""
    from dacapo.errors import InputError
    from dacapo.tools.convert_collection import pair_files  # the naming rule it converts by

    folder = _folder(folder)
    meta = read_meta(folder)
    try:
        pairs = pair_files(folder)
    except InputError as e:
        raise DataError(folder, str(e)) from None
    raws = {name: raw for name, (raw, _) in pairs.items()}
    labels = {name: lab for name, (_, lab) in pairs.items() if lab is not None}
    for name in raws:
        if name not in labels:
            raise DataError(folder / f"{name}_labels.tif", f"missing: no labels for "
                                                           f"{raws[name].name}")
        shape, label_shape = tiff_shape(raws[name]), tiff_shape(labels[name])
        if len(shape) != 2:
            raise DataError(raws[name], f"has shape {shape}: the images of a 2D collection "
                                        "are 2D (y, x)")
        if label_shape != shape:
            raise DataError(labels[name], f"has shape {label_shape}, its raw {shape}: labels "
                                          "must cover the raw pixel for pixel")
    size, assumed = _size(meta, 2, sorted(raws), folder, default_voxel)
    return Collection(folder, {n: (raws[n], labels[n]) for n in sorted(raws)}, size, assumed)


def _file_stamp(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


# --------------------------------------------------------------------------
# held-out part, prepared copies
# --------------------------------------------------------------------------


def fraction_count(n: int, fraction: float) -> int:
    """``fraction`` of ``n`` slices, rounded half up (0.3 of 50 → 15, 0.25 of 64 → 16)."""
    return int(math.floor(n * fraction + 0.5))


def split(vol: Volume, fraction: float) -> int:
    """The number of last z-slices held out of ``vol``: ``fraction`` of them; `DataError`
    when that leaves no slice to hold out or none to train on."""
    depth = vol.shape[0]
    count = fraction_count(depth, fraction)
    if count < 1 or depth - count < 1:
        raise DataError(vol.raw, f"{depth} z-slices: too few to hold out {100 * fraction:g} % "
                                 "of them and train on the rest")
    return count


def is_prepared(container: Path, stamp: dict) -> bool:
    """Whether ``container`` was prepared (`mark_prepared`) from what ``stamp`` describes."""
    done = Path(container) / ".prepared"
    try:
        return json.loads(done.read_text()) == json.loads(json.dumps(stamp))
    except (OSError, ValueError):
        return False


def mark_prepared(container: Path, stamp: dict) -> None:
    (Path(container) / ".prepared").write_text(json.dumps(stamp, indent=1))


_TOLD: set[str] = set()


def tell(name: str, notes: Sequence[str]) -> None:
    """Print each note of dataset ``name`` once per process."""
    for note in notes:
        line = f"{name}: {note}"
        if line not in _TOLD:
            _TOLD.add(line)
            print(line, flush=True)


# --------------------------------------------------------------------------
# class roles (the organelles' partial annotation)
# --------------------------------------------------------------------------

#: name beginnings of each role: the instance class, the second rare class, the rest
ROLE_NAMES = {
    "instance": ("mito",),
    "rare": ("synap",),
    "other": ("cytoplasm", "cytosol", "background", "other", "rest", "everything"),
}


def _matching(names: Sequence[str], role: str) -> list[str]:
    return [n for n in names if n.lower().startswith(ROLE_NAMES[role])]


def instance_class(names: Sequence[str]) -> str | None:
    """The class segmented as instances: the one named mitochondri* (None: none or two)."""
    found = _matching(names, "instance")
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class PartialRoles:
    """Partial annotation: crop A does not annotate ``rare``, crop B not ``instance``;
    neither annotates ``other`` (the "everything else" an annotator does not paint)."""

    instance: str
    rare: str
    other: str

    def unannotated(self) -> dict[str, str]:
        """crop -> the class it does not annotate (besides ``other``)."""
        return {"a": self.rare, "b": self.instance}


def partial_roles(names: Sequence[str], where: Path) -> PartialRoles:
    """The roles of ``names`` in the partial-annotation experiment, by name: one class
    mitochondri*, one synap*, one cytoplasm / background / other; `DataError` otherwise."""
    roles = {}
    for role in ROLE_NAMES:
        found = _matching(names, role)
        if len(found) != 1:
            raise DataError(where, f"classes {', '.join(names)}: the partial-annotation "
                                   "experiment needs exactly one class named "
                                   + {"instance": "mitochondri*", "rare": "synap*",
                                      "other": "cytoplasm/background/other"}[role]
                                   + f" ({len(found)} here); run --variants full")
        roles[role] = found[0]
    return PartialRoles(**roles)
