"""Base class of predictors: GT -> training target and weight, and the model head;
`Annotation`, what a partially annotated training crop labels, and `PartialPredictor`, the
base of the predictors of such a crop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import attr
import numpy as np
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.experiments.array_types import ArrayType
from dacapo.io.arrays import in_memory
from dacapo.ops.balance import balance_weights


class Predictor(ABC):
    """Turns ground truth into targets and weights and builds the model head.

    ``create_target(gt)`` and ``create_weight(gt, target, mask, moving_class_counts)``
    take and give funlib `Array`s; the spatial part of the returned arrays equals the
    spatial ROI of ``gt`` (targets are computed on the GT crop; the trainer crops them to
    the model output ROI).
    """

    @property
    @abstractmethod
    def channels(self) -> list[str]:
        """Names of the semantic channels (what post-processing / evaluation see)."""

    @property
    def num_output_channels(self) -> int:
        """Channels the model head outputs (may differ from ``len(channels)``)."""
        return len(self.channels)

    @property
    @abstractmethod
    def output_array_type(self) -> ArrayType:
        """Kind of the model output in eval mode."""

    @abstractmethod
    def create_model(self, architecture):
        """The architecture plus a head with ``num_output_channels`` outputs."""

    @abstractmethod
    def create_target(self, gt: Array) -> Array:
        """Training target for ground truth ``gt``."""

    @abstractmethod
    def create_weight(
        self,
        gt: Array,
        target: Array,
        mask: Array | None = None,
        moving_class_counts: Any = None,
    ) -> tuple[Array, Any]:
        """Per-voxel loss weights (same shape as the target) and updated class counts."""

    def padding(self, gt_voxel_size: Coordinate) -> Coordinate:
        """Extra GT context (world units, each side) needed around the output ROI."""
        return Coordinate((0,) * len(gt_voxel_size))

    def for_crop(self, annotated: Sequence[str] | None = None, unknown_label: int | None = None,
                 class_arrays: bool = False) -> Predictor:
        """The predictor for a training crop that labels only the classes ``annotated``
        (names of ``channels``; None: all), with ``unknown_label`` in a class-id GT, or
        whose GT is one array per class (``class_arrays``, see `Annotation`); ``self`` for
        a fully annotated crop. ValueError (one line) for a class not in ``channels``, none
        annotated, or a task that cannot learn from partial annotations."""
        if annotated is None and unknown_label is None and not class_arrays:
            return self
        return self.for_annotation(
            Annotation.of(self.channels, annotated, unknown_label, class_arrays)
        )

    def for_annotation(self, annotation: Annotation) -> Predictor:
        """See `for_crop`. Tasks without one channel per class learn from complete
        annotations only."""
        if annotation.complete and not annotation.class_arrays:
            return self
        raise ValueError(
            f"partial annotations (annotated, unknown_label or one gt array per class) need a "
            f"task with one channel per class (one-hot, distance, hot distance), not "
            f"{type(self).__name__}"
        )

    def gt_region_for_roi(self, target_roi: Roi, voxel_size: Coordinate) -> Roi:
        """The GT ROI needed to compute the target (and weight) in ``target_roi``."""
        pad = self.padding(voxel_size)
        return target_roi.grow(pad, pad)


class PartialPredictor(Predictor):
    """The predictor of a task (``full``) for a training crop annotated as ``annotation``:
    the channels, output type, model head and padding of ``full``; subclasses give the
    crop's targets and weights."""

    def __init__(self, full: Predictor, annotation: Annotation) -> None:
        if len(annotation.annotated) != len(full.channels):
            raise ValueError(f"annotation: {len(annotation.annotated)} flags for "
                             f"{len(full.channels)} channels")
        self.full = full
        self.annotation = annotation

    @property
    def channels(self) -> list[str]:
        return self.full.channels

    @property
    def num_output_channels(self) -> int:
        return self.full.num_output_channels

    @property
    def output_array_type(self) -> ArrayType:
        return self.full.output_array_type

    def create_model(self, architecture):
        return self.full.create_model(architecture)

    def padding(self, gt_voxel_size: Coordinate) -> Coordinate:
        return self.full.padding(gt_voxel_size)


def binary_balanced_weight(
    inside: np.ndarray,
    mask: np.ndarray | None,
    clipmin: float,
    clipmax: float,
    moving_class_counts: Any = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weights balancing the two classes of bool ``inside`` ``(C, *spatial)`` (True /
    False) per channel within ``mask``, and the counts ``(C, 2)``
    (`dacapo.ops.balance.balance_weights`)."""
    return balance_weights(
        inside,
        mask,
        num_classes=2,
        clipmin=clipmin,
        clipmax=clipmax,
        moving_counts=moving_class_counts,
        out=out,
    )


def numpy_data(array: Array) -> np.ndarray:
    """The data of ``array`` as numpy, without a copy when it is held in memory: a numpy
    array given to `Array`, or a one-chunk dask array wrapping one (`in_memory`, and
    funlib's own wrapping of numpy data); otherwise computed. Treat the result as read-only.

    (Computing a one-chunk dask array copies it: 15 ms for a 16-channel 1 Mvoxel target.)
    """
    if not getattr(array, "lazy_ops", None):
        source = getattr(array, "_source_data", None)
        if isinstance(source, np.ndarray):
            return source
        held = _single_chunk(source)
        if held is not None:
            return held
    return np.asarray(array.data)


def _single_chunk(data) -> np.ndarray | None:
    """The numpy array a one-chunk ``dask.array.from_array`` holds, or None."""
    graph = getattr(data, "dask", None)
    if graph is None or getattr(data, "npartitions", 0) != 1:
        return None
    try:
        layers = graph.layers
    except AttributeError:
        return None
    if len(layers) != 1:
        return None
    (layer,) = layers.values()
    values = list(dict(layer).values())
    if len(values) == 1 and isinstance(values[0], np.ndarray):
        held = values[0]
        if held.shape == data.shape and held.dtype == data.dtype:
            return held
    return None


def spatial_data(array: Array, name: str = "gt") -> np.ndarray:
    """The array's data without a channel axis; a single channel axis is squeezed.

    Raises a ValueError naming ``name`` for a multi-channel array.
    """
    data = numpy_data(array)
    n_channel = data.ndim - array.voxel_size.dims
    if n_channel == 0:
        return data
    if n_channel == 1 and data.shape[0] == 1:
        return data[0]
    raise ValueError(
        f"{name}: expected a single-channel array, got shape {data.shape} with "
        f"{array.voxel_size.dims} spatial dims"
    )


def channel_data(array: Array, num_channels: int, name: str = "gt") -> np.ndarray:
    """The array's data with a leading channel axis of length ``num_channels``.

    An array without channel axis is accepted when ``num_channels == 1``.
    """
    data = numpy_data(array)
    dims = array.voxel_size.dims
    if data.ndim == dims:
        data = data[None]
    if data.ndim != dims + 1 or data.shape[0] != num_channels:
        raise ValueError(
            f"{name}: expected {num_channels} channel(s) over {dims} spatial dims, got shape "
            f"{data.shape}"
        )
    return data


def like(array: Array, data: np.ndarray) -> Array:
    """A new Array with ``data`` (leading channel axis ``c^`` if it has one more dim) placed
    at ``array``'s spatial offset and voxel size (`in_memory`: the data are not hashed)."""
    dims = array.voxel_size.dims
    spatial_names = [n for n in array.axis_names if not n.endswith("^")][-dims:]
    axis_names = spatial_names if data.ndim == dims else ["c^"] + spatial_names
    units = list(array.units) if array.units else None
    return Array(in_memory(data), offset=array.offset, voxel_size=array.voxel_size,
                 axis_names=axis_names, units=units)


@attr.s(frozen=True)
class Annotation:
    """What one training crop labels, per task class (channel ``c``).

    ``annotated[c]``: the crop labels class ``c`` completely (every voxel of it carries it);
    the voxels of no annotated class (other class ids, ``unknown_label``) belong to one of
    the unannotated classes, which one is unknown. ``class_arrays``: the GT is one binary
    array per class stacked ``(C, *spatial)``, zeros for the unannotated ones (CellMap's
    layout). With every class annotated, ``unknown_label`` voxels are ignored.
    """

    annotated: tuple[bool, ...] = attr.ib(converter=tuple)
    unknown_label: int | None = attr.ib(default=None)
    class_arrays: bool = attr.ib(default=False)

    @classmethod
    def of(cls, channels: Sequence[str], annotated: Sequence[str] | None = None,
           unknown_label: int | None = None, class_arrays: bool = False) -> Annotation:
        """From class names; ValueError naming a class not in ``channels``, or none."""
        channels = list(channels)
        names = channels if annotated is None else list(annotated)
        unknown = [n for n in names if n not in channels]
        if unknown:
            raise ValueError(f"annotated: class {unknown[0]!r} is not a class of the task "
                             f"{channels}")
        if not names:
            raise ValueError("annotated: no class is annotated (nothing to learn)")
        return cls(tuple(c in names for c in channels), unknown_label, class_arrays)

    @property
    def complete(self) -> bool:
        """Every class annotated and no unknown label."""
        return all(self.annotated) and self.unknown_label is None

    @property
    def unannotated(self) -> list[int]:
        """Indices of the classes this crop does not label."""
        return [c for c, a in enumerate(self.annotated) if not a]

    def without_unknown(self, gt: Array) -> tuple[Array, np.ndarray | None]:
        """``gt`` with ``unknown_label`` voxels set to 0, and where they are (None without
        an unknown label); ValueError for a multi-channel GT with an unknown label."""
        if self.unknown_label is None:
            return gt, None
        data = spatial_data(gt, "gt (with unknown_label: a single class-id array)")
        unknown = data == self.unknown_label
        return like(gt, np.where(unknown, np.zeros((), data.dtype), data)), unknown
