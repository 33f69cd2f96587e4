"""One class of a multi-class prediction as a mask, and its objects as connected components.

- `class_mask`: exclusive classes (one-hot / softmax channels): voxel x belongs to class k
  iff ``argmax_j p_j(x) = k`` (ties to the lowest index, ``numpy.argmax``), or, with
  ``prior`` weights π, iff ``argmax_j π_j p_j(x) = k``; one channel per class (distances,
  overlap allowed): iff ``p_{offset + k}(x) > t``.
- `prior_weights`: ``π_j = clip(f_j, lo, hi) ** τ`` from the training class fractions f.
  A softmax trained with class-balanced weights ``w_j = 1 / (C · clip(f_j))`` estimates
  ``p_j ∝ w_j · P(j | x)``, so ``π_j p_j ∝ P(j | x)`` at τ = 1: the balancing is undone
  (post-hoc logit adjustment, ``argmax_j log p_j + τ log π_j``: Menon et al., "Long-tail
  learning via logit adjustment", ICLR 2021); τ between 0 (plain argmax) and 1 trades it
  off, τ > 1 corrects further.
- `connected_components`: face-connected components of a mask (6-connectivity in 3D,
  4 in 2D: on anisotropic serial sections a diagonal contact is not a connection), ids
  1..n, then components of fewer than ``min_size`` voxels set to 0 (the other ids kept).
  Reference: Rosenfeld & Pfaltz, "Sequential operations in digital picture processing",
  J. ACM 13 (1966); computed with cc3d (Silversmith, connected-components-3d).
"""

from __future__ import annotations

import cc3d
import numpy as np

from dacapo.ops.watershed import remove_small_fragments

__all__ = ["class_mask", "connected_components", "prior_weights"]


def prior_weights(fractions, tau: float, clipmin: float, clipmax: float) -> np.ndarray:
    """``clip(fractions, clipmin, clipmax) ** tau`` (float64), the weights π of `class_mask`."""
    return np.clip(np.asarray(fractions, np.float64), clipmin, clipmax) ** float(tau)


def class_mask(prediction: np.ndarray, index: int, threshold: float | None = None,
               channel_offset: int = 0, prior: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of class ``index`` from ``prediction`` (channels first): the argmax
    over all channels (of ``prior[j] * prediction[j]`` with ``prior``) when ``threshold``
    is None, else ``prediction[channel_offset + index] > threshold``."""
    if threshold is None:
        if prior is not None:
            prior = np.asarray(prior, np.float32).reshape((-1,) + (1,) * (prediction.ndim - 1))
            return np.argmax(prediction * prior, axis=0) == index
        return np.argmax(prediction, axis=0) == index
    return np.asarray(prediction[channel_offset + index]) > threshold


def connected_components(mask: np.ndarray, min_size: int = 0) -> np.ndarray:
    """Face-connected components of ``mask`` (2D or 3D) as uint64 ids (0 = background);
    components of fewer than ``min_size`` voxels are removed."""
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"connected_components: expected a 2D or 3D mask, got shape {mask.shape}")
    connectivity = 6 if mask.ndim == 3 else 4
    labels = cc3d.connected_components(np.ascontiguousarray(mask != 0).view(np.uint8),
                                       connectivity=connectivity, out_dtype=np.uint64)
    return remove_small_fragments(labels, int(min_size))
