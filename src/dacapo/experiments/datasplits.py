"""Datasets (raw, gt, optional mask as zarr array paths) and train/validate splits.

Array paths are opened read-only with `dacapo.io.arrays.open_array` (funlib-style
attributes or OME-NGFF). Relative paths are taken relative to the current directory
unless a config file resolves them (see ``resolve``).

Checks of an opened dataset (each a one-line error naming dataset and array): raw and gt
have the same number of spatial dimensions and voxel size and overlap; a mask has the
voxel size and ROI of the gt (`dacapo.io.array_checks.check_mask`, the one mask rule).
"""

from __future__ import annotations

from pathlib import Path

import attr
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.io.array_checks import check_mask, check_not_empty, check_voxel_sizes_divide
from dacapo.io.arrays import open_array
from dacapo.io.config_yaml import register


@attr.s
class DatasetConfig:
    """One volume: raw intensities, ground truth and an optional mask (1 = labelled)."""

    name: str = attr.ib(metadata={"help_text": "Dataset name (used in score tables)."})
    raw: str = attr.ib(
        converter=str, metadata={"help_text": "Zarr array path of the raw data, e.g. data.zarr/raw."}
    )
    gt: str = attr.ib(
        converter=str, metadata={"help_text": "Zarr array path of the ground truth."}
    )
    mask: str | None = attr.ib(
        default=None,
        converter=attr.converters.optional(str),
        metadata={"help_text": "Optional zarr array path: non-zero where the GT is valid."},
    )

    def resolve(self, base: str | Path) -> DatasetConfig:
        """A copy with relative array paths taken relative to ``base``."""

        def res(p: str | None) -> str | None:
            if p is None or Path(p).is_absolute():
                return p
            return str(Path(base) / p)

        return DatasetConfig(self.name, res(self.raw), res(self.gt), res(self.mask))

    def open(self) -> Dataset:
        """Open and check the arrays (read-only)."""
        raw = open_array(self.raw, f"dataset {self.name!r}: raw")
        gt = open_array(self.gt, f"dataset {self.name!r}: gt")
        mask = None if self.mask is None else open_array(self.mask, f"dataset {self.name!r}: mask")
        ds = Dataset(self.name, raw, gt, mask)
        ds.check()
        return ds


@attr.s
class Dataset:
    """Opened arrays of a `DatasetConfig`."""

    name: str = attr.ib()
    raw: Array = attr.ib()
    gt: Array = attr.ib()
    mask: Array | None = attr.ib(default=None)

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
        """Reasons the split is unusable as written (no training data, duplicate names);
        `dacapo.runs.verify` opens the arrays."""
        problems = []
        if not self.train:
            problems.append("datasplit.train: must list at least one dataset")
        for field, datasets in (("train", self.train), ("validate", self.validate)):
            names = [d.name for d in datasets]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                problems.append(f"datasplit.{field}: duplicate dataset names {dup}")
        return problems


for _cls in (DatasetConfig, DataSplitConfig):
    register(_cls)
