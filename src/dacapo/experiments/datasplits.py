"""Datasets (raw, gt, optional mask as zarr array paths) and train/validate splits.

Array paths are opened read-only with `dacapo.io.arrays.open_array` (funlib-style
attributes or OME-NGFF). Relative paths are taken relative to the current directory
unless a config file resolves them (see ``resolve``).

Checks of an opened dataset (each a one-line error naming dataset and array): raw and gt
have the same number of spatial dimensions and voxel size and overlap; a mask has the
voxel size and ROI of the gt (`dacapo.io.array_checks.check_mask`, the one mask rule).

Partial annotations (training datasets only; see `Annotation` for what they mean to the
loss), said in one of two ways:

- a class-id gt with ``annotated: [classes]``: voxels of the other classes are unknown, not
  background; ``unknown_label`` is the value of unlabelled voxels (e.g. 0 or 255);
- CellMap's layout: ``gt`` is a zarr group of one binary array per class, named by the
  task's classes (``gt.zarr/mitochondrion``, an array or an OME-NGFF image); a missing array
  means the class is not annotated in this crop. The dataset's gt is then the stack
  ``(C, *spatial)`` of the task's classes, zeros for the missing ones.

Opening checks them against the task's classes (one line naming the dataset and the class):
a class in ``annotated`` the task does not have, a class array of another voxel size, shape
or offset than the others, no class annotated at all, an ``unknown_label`` outside the gt's
dtype. `DataSplitConfig.problems` checks what needs no data: ``annotated`` is a list of
distinct names. `dacapo.runs.verify` checks that the task has one channel per class.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import attr
import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.experiments.class_arrays import class_group, open_class_arrays
from dacapo.experiments.tasks.predictors.predictor import Annotation
from dacapo.io.array_checks import check_mask, check_not_empty, check_voxel_sizes_divide
from dacapo.io.arrays import open_array
from dacapo.io.config_yaml import register

#: a dataset name, which names files of its validation outputs
#: (``predictions/<iteration>/<name>.zarr``, ``plots/validation_<iteration>_<name>.png``)
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
NAME_RULE = "letters, digits, '_', '-' and '.', not starting with '.'"


def as_dataset_name(text: str) -> str:
    """``text`` with each character a dataset name may not hold (`NAME`) replaced by
    ``_``, a leading ``.`` too: a valid dataset name for any text but the empty one."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text)
    return "_" + name[1:] if name.startswith(".") else name


@attr.s
class DatasetConfig:
    """One volume: raw intensities, ground truth and an optional mask (1 = labelled)."""

    name: str = attr.ib(metadata={"help_text": "Dataset name (used in score tables and as the "
                                  "file name of its validation outputs): " + NAME_RULE + "; "
                                  "unique in its list (train, validate)."})
    raw: str = attr.ib(
        converter=str, metadata={"help_text": "Zarr array path of the raw data, e.g. data.zarr/raw."}
    )
    gt: str = attr.ib(
        converter=str,
        metadata={"help_text": "Zarr array path of the ground truth; or a zarr group of one "
                  "binary array per class, named by class (CellMap's layout: a missing array "
                  "= that class is not annotated in this crop)."},
    )
    mask: str | None = attr.ib(
        default=None,
        converter=attr.converters.optional(str),
        metadata={"help_text": "Optional zarr array path: non-zero where the GT is valid."},
    )
    annotated: list[str] | None = attr.ib(
        default=None,
        metadata={"help_text": "Classes this (training) crop labels completely, by the task's "
                  "class/channel names; voxels of the other classes are unknown, not "
                  "background, and those classes get no loss here. Default: every class "
                  "(with a class-array group: the arrays present)."},
    )
    unknown_label: int | None = attr.ib(
        default=None,
        metadata={"help_text": "Value of unlabelled voxels in a class-id gt (e.g. 0 or 255): "
                  "they are of none of the annotated classes (with every class annotated: "
                  "ignored)."},
    )
    ignore_sections: list[int] | None = attr.ib(
        default=None,
        metadata={"help_text": "Indices along the gt's first axis of sections whose labels do "
                  "not train (weight 0, and every target linking them): e.g. a section "
                  "labelled apart from its neighbours, which `dacapo plan` finds and lists "
                  "here (`dacapo.ops.section_labels`)."},
    )

    def resolve(self, base: str | Path) -> DatasetConfig:
        """A copy with relative array paths taken relative to ``base``."""

        def res(p: str | None) -> str | None:
            if p is None or Path(p).is_absolute():
                return p
            return str(Path(base) / p)

        return attr.evolve(self, raw=res(self.raw), gt=res(self.gt), mask=res(self.mask))

    @property
    def partial(self) -> bool:
        """The config says the crop is partially annotated (a class-array gt is found on
        opening: `Dataset.partial`)."""
        return self.annotated is not None or self.unknown_label is not None

    def open(self, classes: Sequence[str] | None = None) -> Dataset:
        """Open and check the arrays (read-only); ``classes``: the task's class (channel)
        names, to check ``annotated`` and stack a class-array gt (without: the group's
        arrays by name)."""
        prefix = f"dataset {self.name!r}"
        raw = open_array(self.raw, f"{prefix}: raw")
        members = class_group(self.gt)
        if members is None:
            gt = open_array(self.gt, f"{prefix}: gt")
            class_arrays, annotated = None, self.annotated
            if self.unknown_label is not None and np.issubdtype(gt.dtype, np.integer):
                info = np.iinfo(gt.dtype)
                if not info.min <= self.unknown_label <= info.max:
                    raise ValueError(f"{prefix}: unknown_label: {self.unknown_label} is outside "
                                     f"the gt's dtype {gt.dtype} ({info.min}..{info.max}): "
                                     "no voxel can hold it")
        else:
            if self.unknown_label is not None:
                raise ValueError(f"{prefix}: unknown_label: only for a class-id gt, not a "
                                 "group of class arrays")
            gt, class_arrays = open_class_arrays(self.gt, members, classes or sorted(members),
                                                 prefix)
            annotated = list(class_arrays) if self.annotated is None else self.annotated
            missing = [c for c in annotated if c not in class_arrays]
            if missing:
                raise ValueError(f"{prefix}: annotated: class {missing[0]!r} has no array in "
                                 f"the gt group {self.gt!r}")
        if annotated is not None:
            try:
                Annotation.of(classes or annotated, annotated)
            except ValueError as e:
                raise ValueError(f"{prefix}: {e}") from None
        mask = None if self.mask is None else open_array(self.mask, f"{prefix}: mask")
        if self.ignore_sections and gt.voxel_size.dims < 3:
            raise ValueError(f"{prefix}: ignore_sections: the gt is 2D (one section); "
                             "leave a bad image out of the datasplit instead")
        sections = gt.shape[-gt.voxel_size.dims]
        outside = [z for z in self.ignore_sections or () if not 0 <= z < sections]
        if outside:
            raise ValueError(f"{prefix}: ignore_sections: section {outside[0]} is outside the "
                             f"gt's {sections} sections (0..{sections - 1})")
        ds = Dataset(self.name, raw, gt, mask, annotated=None if annotated is None else
                     tuple(annotated), unknown_label=self.unknown_label, class_arrays=class_arrays,
                     ignore_sections=tuple(self.ignore_sections or ()))
        ds.check()
        return ds


@attr.s
class Dataset:
    """Opened arrays of a `DatasetConfig`."""

    name: str = attr.ib()
    raw: Array = attr.ib()
    gt: Array = attr.ib()
    mask: Array | None = attr.ib(default=None)
    #: names of the classes the crop annotates (None: all); see `DatasetConfig`
    annotated: tuple[str, ...] | None = attr.ib(default=None)
    unknown_label: int | None = attr.ib(default=None)
    #: the arrays of a class-array gt (CellMap's layout) by class; ``gt`` is their stack
    class_arrays: dict[str, Array] | None = attr.ib(default=None)
    #: gt sections (first-axis indices) that do not train; see `DatasetConfig`
    ignore_sections: tuple[int, ...] = attr.ib(default=())

    @property
    def partial(self) -> bool:
        """Some classes may be unannotated (or some voxels unlabelled)."""
        return (self.annotated is not None or self.unknown_label is not None
                or self.class_arrays is not None)

    def crop_predictor(self, predictor):
        """The task's predictor for this crop (`Predictor.for_crop`); ValueError naming the
        dataset when the task cannot learn from it."""
        try:
            return predictor.for_crop(self.annotated, self.unknown_label,
                                      self.class_arrays is not None)
        except ValueError as e:
            raise ValueError(f"dataset {self.name!r}: {e}") from None

    def check(self, gt_voxel_size: Coordinate | None = None) -> None:
        """Raise a one-line ValueError if the arrays do not fit together.

        ``gt_voxel_size`` is the voxel size the GT must have (default: the raw's).
        """
        prefix = f"dataset {self.name!r}"
        rvs, gvs = self.raw.voxel_size, self.gt.voxel_size
        if rvs.dims != gvs.dims:
            raise ValueError(
                f"{prefix}: raw has {rvs.dims} spatial dims, gt has {gvs.dims}"
            )
        check_not_empty(self.raw.shape, f"{prefix}: raw")
        check_not_empty(self.gt.shape, f"{prefix}: gt")
        check_voxel_sizes_divide(gvs, rvs, f"{prefix}: gt", "raw")
        expected = rvs if gt_voxel_size is None else Coordinate(gt_voxel_size)
        if gvs != expected:
            raise ValueError(
                f"{prefix}: voxel size mismatch: raw {tuple(rvs)} vs gt {tuple(gvs)}"
            )
        if self.raw.roi.intersect(self.gt.roi).empty:
            raise ValueError(
                f"{prefix}: raw ROI {self.raw.roi} and gt ROI {self.gt.roi} do not overlap"
            )
        if self.mask is not None:
            check_mask(self.mask, self.gt, f"{prefix}: mask", "gt")
        n_raw_channels = len(self.raw.shape) - rvs.dims
        if n_raw_channels > 1:
            raise ValueError(
                f"{prefix}: raw has {n_raw_channels} channel axes (shape {tuple(self.raw.shape)}); "
                "expected at most one"
            )

    @property
    def num_raw_channels(self) -> int:
        """Channels of the raw (1 without a channel axis)."""
        dims = self.raw.voxel_size.dims
        return 1 if len(self.raw.shape) == dims else int(self.raw.shape[0])

    @property
    def training_roi(self) -> Roi:
        """Where ground truth and raw both exist (a mask covers exactly the GT)."""
        return self.raw.roi.intersect(self.gt.roi)


@attr.s
class DataSplitConfig:
    """Datasets to train on and datasets to validate on."""

    train: list[DatasetConfig] = attr.ib(
        metadata={"help_text": "Training datasets (crops are drawn from all of them)."}
    )
    validate: list[DatasetConfig] = attr.ib(
        factory=list,
        metadata={"help_text": "Validation datasets (predicted and scored at every validation)."},
    )

    def resolve(self, base: str | Path) -> DataSplitConfig:
        return DataSplitConfig(
            [d.resolve(base) for d in self.train], [d.resolve(base) for d in self.validate]
        )

    def problems(self) -> list[str]:
        """Reasons the split is unusable as written (no training data, a dataset name that
        is no file name or is taken, a repeated ``annotated`` class, partial annotations on
        a validation dataset); `dacapo.runs.verify` opens the arrays."""
        problems = []
        if not self.train:
            problems.append("datasplit.train: must list at least one dataset")
        for d in self.validate:
            if d.partial:
                problems.append(partial_validation_message(d.name))
        for field, datasets in (("train", self.train), ("validate", self.validate)):
            seen: dict[str, tuple[str, str]] = {}  # per list: a volume may train and validate
            for i, d in enumerate(datasets):
                where = f"datasplit_config.{field}[{i}]"
                problems += _name_problems(d.name, where, seen)
                problems += _annotated_problems(d.annotated, f"{where}.annotated")
        return problems


def _name_problems(name: object, where: str, seen: dict[str, tuple[str, str]]) -> list[str]:
    """``name`` (of the dataset at ``where``) is a file name, distinct from the ``seen``
    ones (case-folded name -> (field, name)) also where file names ignore case (macOS,
    Windows); adds it to ``seen``."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return [f"{where}.name: {name!r} is not a dataset name ({NAME_RULE}; it names the "
                "files of the dataset's validation outputs)"]
    first, first_name = seen.setdefault(name.casefold(), (where, name))
    if first == where:
        return []
    other = "" if first_name == name else f" ({first_name!r}: file names that differ only " \
        "in case are one file on macOS and Windows)"
    return [f"{where}.name: {name!r} is also the name of {first}{other}; dataset names must "
            "be unique in their list"]


def _annotated_problems(annotated: object, where: str) -> list[str]:
    """``annotated`` is a list of distinct class names (the task's classes are checked when
    the dataset opens)."""
    if annotated is None:
        return []
    if not isinstance(annotated, (list, tuple)) or not all(isinstance(c, str)
                                                           for c in annotated):
        return [f"{where}: must be a list of class names, got {annotated!r}"]
    twice = [c for i, c in enumerate(annotated) if c in annotated[:i]]
    if twice:
        return [f"{where}: class {twice[0]!r} is listed twice"]
    return []


def partial_validation_message(name: str) -> str:
    """A validation dataset that is partially annotated."""
    return (f"datasplit.validate: dataset {name!r}: partial annotations (annotated, "
            "unknown_label, a class-array gt) are for training datasets; validation scores "
            "every class")


for _cls in (DatasetConfig, DataSplitConfig):
    register(_cls)
