"""One-hot predictor: class ids -> one-hot targets, class-balanced weights, softmax output.

GT: one channel (``(*spatial)`` or ``(1, *spatial)``) of class ids ``0..C-1`` (integers; a
float GT must hold integral values; anything else, NaN or ids outside the range is a
ValueError naming ``gt``). Target: ``(C, *spatial)`` float32 one-hot.

Weight: per voxel ``1 / (C · f_k)`` for its class ``k`` within the mask
(`dacapo.ops.balance.balance_weights` with ``num_classes = C`` on the single class map,
``moving_class_counts`` shape ``(1, C)``), repeated on all C channels (the loss reads it at
the true class); with ``balance=False`` the weight is the mask (1 within it, plain
cross-entropy; the class counts are still accumulated). Mask: ``(*spatial)`` or ``(1, *spatial)``, nonzero = labelled.

Model: head with C outputs (``kernel_size``, default 1); softmax over channels in eval mode
(training sees logits). No padding.

Partial annotations (`PartialOneHotPredictor`, from ``for_crop``; see `Annotation`); the GT
is class ids or the stack ``(C, *spatial)`` of one binary array per class (a voxel in
several arrays is of the first of them: the classes are exclusive). A voxel
of an annotated class k has target one-hot k; a voxel of no annotated class (another id,
``unknown_label``, or in no class array) may be any unannotated class U, and its target is
the indicator of U (several ones), which `WeightedCrossEntropyLoss` turns into the marginal
likelihood ``-log Σ_{c∈U} p_c``. With one unannotated class the unknown voxels are that
class (as if annotated); with none they are ignored (target and weight 0).

Balancing with unknown voxels: once a crop of the stream had unknown voxels, the moving
counts gain a last column ``n_?`` (shape ``(1, C + 1)``), and every fraction is taken over
all counted voxels, known or not: ``f_k = n_k / (Σ_j n_j + n_?)`` for a known voxel of class
``k`` and ``f_? = n_? / (Σ_j n_j + n_?)`` for an unknown one, each weighing
``1 / (C · clip(f))``; the unknown voxels weigh as one class, the union U. (Fractions among
the known voxels alone would inflate the annotated classes' frequencies and make the unknown
voxels dominate the loss where most of a crop is unannotated.) Streams without unknown voxels
keep ``(1, C)`` counts and the plain weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from funlib.persistence import Array
from torch import nn

from dacapo.experiments.array_types import ArrayType
from dacapo.experiments.model import create_model
from dacapo.ops.balance import balance_weights, class_counts

from .distance_predictor import mask_channels
from .inner_distance_predictor import integer_labels
from .predictor import Annotation, PartialPredictor, Predictor, channel_data, like, spatial_data


def one_hot(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """Bool ``(num_classes, *spatial)``: channel ``c`` is ``ids == c``."""
    return ids[None] == np.arange(num_classes).reshape((-1,) + (1,) * ids.ndim)


class OneHotPredictor(Predictor):
    """Predicts one probability per class."""

    def __init__(self, classes: list[str], kernel_size: int | None = None,
                 balance: bool = True, clipmin: float = 0.05, clipmax: float = 0.95) -> None:
        self.classes = list(classes)
        self.kernel_size = kernel_size
        self.balance = balance
        self.clipmin = clipmin
        self.clipmax = clipmax

    @property
    def channels(self) -> list[str]:
        return list(self.classes)

    @property
    def output_array_type(self) -> ArrayType:
        return ArrayType("probability", tuple(self.classes))

    def create_model(self, architecture):
        return create_model(
            architecture,
            len(self.classes),
            kernel_size=self.kernel_size,
            eval_activation=nn.Softmax(dim=1),
        )

    def class_ids(self, gt: Array) -> np.ndarray:
        """Validated class ids ``(*spatial)`` (int64)."""
        data = spatial_data(gt, "gt")
        if data.dtype.kind == "f" and np.isnan(data).any():
            raise ValueError("gt: contains NaN")
        ids = integer_labels(data, "gt").astype(np.int64, copy=False)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.classes)):
            raise ValueError(
                f"gt: class ids must lie in 0..{len(self.classes) - 1} for classes "
                f"{self.classes}, got range {ids.min()}..{ids.max()}"
            )
        return ids

    def create_target(self, gt: Array) -> Array:
        return like(gt, one_hot(self.class_ids(gt), len(self.classes)).astype(np.float32))

    def create_weight(
        self,
        gt: Array,
        target: Array,
        mask: Array | None = None,
        moving_class_counts: Any = None,
    ) -> tuple[Array, Any]:
        mask_np = mask_channels(mask, gt, 1)
        weight, counts = self.class_weight(
            self.class_ids(gt), None if mask_np is None else mask_np[0], moving_class_counts
        )
        return like(gt, np.repeat(weight, len(self.classes), axis=0)), counts

    def class_weight(
        self, ids: np.ndarray, labelled: np.ndarray | None, moving_class_counts: Any = None,
        unknown: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The weight ``(1, *spatial)`` of the class ids ``ids`` within the bool mask
        ``labelled`` (None: everywhere) and of the bool ``unknown`` voxels (of unknown class,
        outside ``labelled``): class-balanced, or the masks with ``balance=False``; and the
        updated class counts, ``(1, C)`` or ``(1, C + 1)`` once unknown voxels were counted
        (see the module docstring)."""
        num = len(self.classes)
        moving = None if moving_class_counts is None else np.asarray(moving_class_counts)
        seen_unknown = moving is not None and moving.shape == (1, num + 1)
        if seen_unknown or (unknown is not None and unknown.any()):
            # fractions over known and unknown voxels (module docstring)
            counts = class_counts(ids[None], None if labelled is None else labelled[None], num)
            if moving is not None:
                counts = counts + moving[:, :num].astype(np.int64)
            n_unknown = (int(moving[0, num]) if seen_unknown else 0) + int(
                np.count_nonzero(unknown) if unknown is not None else 0)
            counts = np.concatenate([counts, [[n_unknown]]], axis=1)
            frac = np.clip(counts[0] / max(1, counts.sum()), self.clipmin, self.clipmax)
            class_weight = (1.0 / (num * frac)).astype(np.float32)
            inside = np.ones(ids.shape, bool) if labelled is None else labelled
            weight = np.where(inside, class_weight[:num][ids], np.float32(0))[None]
            if unknown is not None:
                weight[0][unknown] = class_weight[num]
            weight = weight.astype(np.float32)
        else:
            weight, counts = balance_weights(
                ids[None], None if labelled is None else labelled[None], num_classes=num,
                clipmin=self.clipmin, clipmax=self.clipmax, moving_counts=moving)
        if not self.balance:
            weight = (np.ones((1,) + ids.shape, np.float32) if labelled is None
                      else labelled.astype(np.float32)[None])
            if unknown is not None:
                weight = np.maximum(weight, unknown.astype(np.float32)[None])
        return weight, counts

    def for_annotation(self, annotation: Annotation) -> Predictor:
        """This predictor for a crop annotated as ``annotation`` (see the module docstring);
        ValueError when ``unknown_label`` is the id of an annotated class."""
        u = annotation.unknown_label
        if annotation.class_arrays and u is not None:
            raise ValueError("unknown_label: only for a class-id gt, not one array per class")
        if u is not None and 0 <= u < len(self.classes) and annotation.annotated[u]:
            raise ValueError(f"unknown_label {u} is the id of the annotated class "
                             f"{self.classes[u]!r}")
        if annotation.complete and not annotation.class_arrays:
            return self
        return PartialOneHotPredictor(self, annotation)


class PartialOneHotPredictor(PartialPredictor):
    """A `OneHotPredictor` for a partially annotated crop (see the module docstring)."""

    full: OneHotPredictor

    def known_ids(self, gt: Array) -> np.ndarray:
        """Class ids ``(*spatial)`` (int64) where known, -1 where the class is unknown (one
        unannotated class: its id there)."""
        ann = self.annotation
        if ann.class_arrays:
            arrays = channel_data(gt, len(self.full.classes), "gt") != 0
            ids = np.where(arrays.any(axis=0), np.argmax(arrays, axis=0), -1).astype(np.int64)
        else:
            gt, unknown = ann.without_unknown(gt)
            ids = self.full.class_ids(gt).copy()
            ids[~np.asarray(ann.annotated)[ids]] = -1
            if unknown is not None:
                ids[unknown] = -1
        if len(ann.unannotated) == 1:
            ids[ids < 0] = ann.unannotated[0]
        return ids

    def create_target(self, gt: Array) -> Array:
        ids = self.known_ids(gt)
        target = one_hot(ids, len(self.full.classes))
        target[self.annotation.unannotated] |= ids < 0
        return like(gt, target.astype(np.float32))

    def create_weight(
        self,
        gt: Array,
        target: Array,
        mask: Array | None = None,
        moving_class_counts: Any = None,
    ) -> tuple[Array, Any]:
        full, ann = self.full, self.annotation
        ids = self.known_ids(gt)
        known = ids >= 0
        mask_np = mask_channels(mask, gt, 1)
        inside = np.ones(ids.shape, bool) if mask_np is None else mask_np[0]
        unknown = (~known & inside) if ann.unannotated else None
        weight, counts = full.class_weight(
            np.where(known, ids, 0), known & inside, moving_class_counts, unknown
        )
        weight = np.repeat(weight, len(full.classes), axis=0)
        return like(gt, weight), counts
