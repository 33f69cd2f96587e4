"""Datasets (raw, gt, optional mask as zarr array paths) and train/validate splits.

An array path is ``<container>.zarr/<array>`` (e.g. ``data.zarr/raw``), opened read-only
with funlib.persistence: voxel size, offset, axis names and units come from the array's
attributes (``voxel_size``, ``offset``, ``axis_names``, ``units``). A path that points at an
OME-NGFF multiscale group (``multiscales`` in its attributes, v0.4 or v0.5) opens its
level 0 with the scale/translation of that level. Relative paths are taken relative to
the current directory unless a config file resolves them (see ``resolve``).

Checks (each a one-line error naming dataset and array): the array exists and opens; raw
and gt have the same number of spatial dimensions and voxel size; the ROIs of raw, gt and
mask overlap; a mask has the voxel size of the gt.
"""

from __future__ import annotations

import math
from pathlib import Path

import attr
import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.checks import check_not_empty, check_voxel_sizes_divide


def _ome_level0(group, path: str) -> tuple[str, dict]:
    """(sub-path of level 0, open_ds overrides) of an OME-NGFF multiscale group."""
    from dacapo.store.ome import ome_level

    return ome_level(group, path, 0)


def open_array(path: str | Path, what: str = "array") -> Array:
    """Open a zarr array (or OME-NGFF multiscale level 0) read-only.

    Errors: `FileNotFoundError` / `ValueError` with one line naming ``what`` and the path.
    """
    import zarr
    from funlib.persistence import open_ds

    path = str(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"{what}: no array at {path!r}")
    try:
        node = zarr.open(path, mode="r")
    except Exception as e:  # noqa: BLE001 - zarr raises many kinds; report them in one line
        raise ValueError(f"{what}: cannot open {path!r} as zarr ({type(e).__name__}: {e})") from e
    overrides: dict = {}
    if isinstance(node, zarr.Group):
        try:
            sub, overrides = _ome_level0(node, path)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from e
        path = str(Path(path) / sub)
    try:
        if overrides:
            array = open_ds(path, mode="r", **overrides)
        else:  # a plain array, or a level of a multiscale image opened by its own path
            from dacapo.store.ome import open_ds as open_level

            array = open_level(path, mode="r")
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{what}: cannot open {path!r} ({type(e).__name__}: {e})") from e
    if array.voxel_size.dims not in (2, 3):
        raise ValueError(
            f"{what}: {path!r} has {array.voxel_size.dims} spatial dims (shape "
            f"{tuple(array.shape)}); expected 2 or 3"
        )
    return array


def normalize_raw(data: np.ndarray) -> np.ndarray:
    """Raw intensities as float32: integers scaled by their dtype maximum to [0, 1]."""
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        return data.astype(np.float32) / float(info.max)
    if data.dtype == bool:
        return data.astype(np.float32)
    return data.astype(np.float32, copy=False)


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
            mvs = self.mask.voxel_size
            if mvs != gvs:
                raise ValueError(
                    f"{prefix}: voxel size mismatch: mask {tuple(mvs)} vs gt {tuple(gvs)}"
                )
            if self.mask.roi.intersect(self.gt.roi).empty:
                raise ValueError(
                    f"{prefix}: mask ROI {self.mask.roi} and gt ROI {self.gt.roi} do not overlap"
                )
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
        """Where ground truth and raw both exist (and the mask, if any)."""
        roi = self.raw.roi.intersect(self.gt.roi)
        if self.mask is not None:
            roi = roi.intersect(self.mask.roi)
        return roi


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

    def problems(self, gt_voxel_size_for=None) -> list[str]:
        """Reasons the split is unusable (empty, duplicate names, arrays that don't open or
        don't fit). ``gt_voxel_size_for(raw_voxel_size)`` gives the expected GT voxel size."""
        problems = []
        if not self.train:
            problems.append("datasplit.train: must list at least one dataset")
        for field, datasets in (("train", self.train), ("validate", self.validate)):
            names = [d.name for d in datasets]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                problems.append(f"datasplit.{field}: duplicate dataset names {dup}")
        for d in list(self.train) + list(self.validate):
            try:
                ds = d.open()
                if gt_voxel_size_for is not None:
                    ds.check(gt_voxel_size_for(ds.raw.voxel_size))
            except (ValueError, FileNotFoundError, TypeError) as e:
                problems.append(str(e))
        return problems


def world_roi_snap(roi: Roi, voxel_size: Coordinate) -> Roi:
    """``roi`` shrunk to the voxel grid (begin rounded up, end rounded down)."""
    begin = Coordinate(math.ceil(b / v) * v for b, v in zip(roi.begin, voxel_size))
    end = Coordinate(math.floor(e / v) * v for e, v in zip(roi.end, voxel_size))
    return Roi(begin, end - begin)
