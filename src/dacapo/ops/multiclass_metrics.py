"""Multi-class (semantic) segmentation metrics from one confusion matrix.

For class c with TP_c = #(truth = c ∧ test = c), FP_c = #(truth ≠ c ∧ test = c),
FN_c = #(truth = c ∧ test ≠ c):

- dice_c = 2 TP_c / (2 TP_c + FP_c + FN_c)     (Dice 1945)
- iou_c = TP_c / (TP_c + FP_c + FN_c)          (Jaccard 1912)
- precision_c = TP_c / (TP_c + FP_c),  recall_c = TP_c / (TP_c + FN_c)
- mean_dice, mean_iou = means over the classes whose value is defined.

NaN handling: a class absent from both test and truth has dice = iou = NaN and is left out
of the means (a mean over no class is NaN); a class present in only one of them scores 0.
precision_c is NaN when c is never predicted, recall_c when c is absent from the truth.
"""

from __future__ import annotations

import math

import numpy as np


def confusion_matrix(test: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[t, s]`` = number of voxels with truth class t and test class s (int64, C×C).

    Class ids must lie in 0..num_classes-1 (ValueError naming the array otherwise).
    """
    test = np.asarray(test)
    truth = np.asarray(truth)
    if test.shape != truth.shape:
        raise ValueError(f"confusion_matrix: test shape {test.shape} != truth shape {truth.shape}")
    for name, ids in (("test", test), ("truth", truth)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(
                f"confusion_matrix: {name} holds class ids in [{ids.min()}, {ids.max()}], "
                f"expected 0..{num_classes - 1}"
            )
    flat = truth.astype(np.int64, copy=False).ravel() * num_classes + test.astype(
        np.int64, copy=False
    ).ravel()
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, NaN where den == 0."""
    out = np.full(num.shape, math.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite entries; NaN if there is none."""
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class ``dice``, ``iou``, ``precision``, ``recall`` (float arrays of length C) of
    confusion matrix ``cm[truth, test]``."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
    }


def multiclass_metrics(
    test: np.ndarray, truth: np.ndarray, num_classes: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-class scores (see `per_class_scores`) and ``{"mean_dice", "mean_iou"}`` of the
    class-id arrays ``test`` against ``truth``."""
    return metrics_from_confusion(confusion_matrix(test, truth, num_classes))


def metrics_from_confusion(cm: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-class scores and their means of a confusion matrix ``cm[truth, test]`` (additive
    over disjoint regions: the sum of blocks' matrices is the volume's)."""
    per_class = per_class_scores(cm)
    means = {"mean_dice": _nanmean(per_class["dice"]), "mean_iou": _nanmean(per_class["iou"])}
    return per_class, means
