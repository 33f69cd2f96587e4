"""Class-balancing weights with moving class counts (inverse class frequency, as DaCapo).

Per channel ``c``, among masked-in voxels, with ``n_{c,k}`` the number of voxels of class
``k`` (accumulated over calls in ``moving_counts``):

    f_{c,k} = clip(n_{c,k} / Σ_k n_{c,k}, clipmin, clipmax)
    w(v)    = mask(v) · 1 / (num_classes · f_{c, label(v)})

so with balanced classes every class gets the same total weight within the mask, and a
class's weight never exceeds ``1 / (num_classes · clipmin)``.

``moving_counts`` format: ``np.ndarray`` of int64, shape ``(C, num_classes)``; entry
``[c, k]`` is the number of masked-in voxels of class ``k`` in channel ``c`` seen so far
(this call included). Pass the returned counts to the next call to balance by the running
class frequencies instead of the current batch alone; ``None`` starts from zero.
A channel without any masked-in voxel so far gets weight 0.
"""

from __future__ import annotations

import numpy as np


def empty_class_counts(num_channels: int, num_classes: int) -> np.ndarray:
    """Zero counts of shape ``(num_channels, num_classes)``."""
    return np.zeros((num_channels, num_classes), dtype=np.int64)


def class_counts(labels: np.ndarray, mask: np.ndarray | None, num_classes: int) -> np.ndarray:
    """Counts ``(C, num_classes)`` of each class per channel among masked-in voxels.

    ``mask``: bool ``(C or 1, *spatial)`` or None. Binary labels (``num_classes == 2``,
    values 0/1, one byte) are counted with `np.count_nonzero` (no index arrays).
    """
    counts = empty_class_counts(labels.shape[0], num_classes)
    binary = num_classes == 2 and labels.dtype.itemsize == 1
    scratch = None
    for c in range(labels.shape[0]):
        if binary:
            values = labels[c].view(np.bool_)
            if mask is None:
                total = values.size
                ones = np.count_nonzero(values)
            else:
                m = _mask_channel(mask, c)
                if scratch is None:
                    scratch = np.empty(values.shape, np.bool_)
                total = np.count_nonzero(m)
                ones = np.count_nonzero(np.logical_and(values, m, out=scratch))
            counts[c] = (total - ones, ones)
            continue
        values = labels[c] if mask is None else labels[c][_mask_channel(mask, c)]
        counts[c] = np.bincount(values.ravel(), minlength=num_classes)[:num_classes]
    return counts


def class_fractions(counts: np.ndarray, clipmin: float, clipmax: float) -> np.ndarray:
    """``clip(n_{c,k} / Σ_k n_{c,k}, clipmin, clipmax)`` (float64); NaN for empty channels."""
    total = counts.sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = counts / total
    return np.clip(frac, clipmin, clipmax)


def balance_weights(
    labels: np.ndarray,
    mask: np.ndarray | None,
    num_classes: int,
    clipmin: float = 0.05,
    clipmax: float = 0.95,
    moving_counts: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced weights (float32, shape of ``labels``) and the updated counts.

    labels: ``(C, *spatial)`` integer class ids in ``0..num_classes-1``;
    mask: ``(C, *spatial)``, ``(1, *spatial)`` or None; nonzero = masked in (binary);
    moving_counts: ``(C, num_classes)`` int counts from a previous call, or None;
    out: a C-contiguous float32 array of the labels' shape to write the weights into.
    Raises ValueError naming ``labels``, ``mask``, ``moving_counts``, ``out`` or the clip
    bounds.
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    _check_inputs(labels, mask, num_classes, clipmin, clipmax)
    if out is None:
        out = np.empty(labels.shape, dtype=np.float32)
    elif out.shape != labels.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(
            f"out: expected a C-contiguous float32 array of shape {labels.shape}, got "
            f"{out.dtype} {out.shape}"
        )
    mask_b = None if mask is None else _as_bool(mask)
    counts = class_counts(labels, mask_b, num_classes)
    if moving_counts is not None:
        moving_counts = np.asarray(moving_counts)
        if moving_counts.shape != counts.shape:
            raise ValueError(
                f"moving_counts: expected shape {counts.shape} (channels, classes), got "
                f"{moving_counts.shape}"
            )
        counts = counts + moving_counts.astype(np.int64)
    frac = class_fractions(counts, clipmin, clipmax)
    with np.errstate(divide="ignore"):
        class_weight = np.where(np.isnan(frac), 0.0, 1.0 / (num_classes * frac)).astype(np.float32)
    binary = num_classes == 2 and labels.dtype.itemsize == 1
    for c in range(labels.shape[0]):
        m = None if mask_b is None else _mask_channel(mask_b, c)
        if binary:
            _select_binary(labels[c], class_weight[c], m, out[c])
            continue
        np.take(class_weight[c], labels[c], out=out[c])
        if m is not None:
            out[c] *= m
    return out, counts


def _as_bool(mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        return mask
    if mask.dtype.itemsize == 1 and mask.dtype.kind in "iu" and mask.max(initial=0) <= 1:
        return mask.view(np.bool_)
    return mask != 0


def _select_binary(labels: np.ndarray, weight: np.ndarray, mask: np.ndarray | None,
                   out: np.ndarray) -> None:
    """``out = weight[labels] · mask`` for 0/1 one-byte ``labels``, exactly, on the bit
    patterns: ``bits = (labels · (b0 ^ b1)) ^ b0`` picks ``b0`` or ``b1`` (the float32 bits
    of the two class weights), times the 0/1 mask (0 bits = +0.0)."""
    b0, b1 = (int(v) for v in weight.view(np.uint32))
    bits = out.view(np.uint32)
    np.multiply(labels, np.uint32(b0 ^ b1), out=bits)
    np.bitwise_xor(bits, np.uint32(b0), out=bits)
    if mask is not None:
        np.multiply(bits, mask, out=bits)


def _mask_channel(mask: np.ndarray, c: int) -> np.ndarray:
    return mask[0] if mask.shape[0] == 1 else mask[c]


def _check_inputs(
    labels: np.ndarray, mask: np.ndarray | None, num_classes: int, clipmin: float, clipmax: float
) -> None:
    if labels.ndim < 2 or labels.dtype.kind not in "biu":
        raise ValueError(
            f"labels: expected integer class ids of shape (C, *spatial), got {labels.dtype} "
            f"{labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels: class ids must lie in 0..{num_classes - 1}, got range "
            f"{labels.min()}..{labels.max()}"
        )
    if mask is not None:
        shape = np.shape(mask)
        if shape[1:] != labels.shape[1:] or shape[0] not in (1, labels.shape[0]):
            raise ValueError(
                f"mask: shape {shape} does not match labels {labels.shape} (need (C or 1, "
                "*spatial))"
            )
    if not 0 < clipmin <= clipmax <= 1:
        raise ValueError(f"clip bounds must satisfy 0 < clipmin <= clipmax <= 1, got {clipmin}, {clipmax}")
