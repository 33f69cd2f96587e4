"""Does the raw given to ``apply`` look like the run's training raw? Warnings, not errors.

A model applied to raw of another voxel size sees its objects at another size, and raw that
the run's normalisation maps far from the training range (another dtype, gain or exposure)
reaches the model outside what it learned: both give a wrong segmentation without any
error, so `input_warnings` names each in one line (the user may know better: a warning).

- **Voxel size**: the input's against the first training raw that can still be opened
  (none: not checked).
- **Intensities** (training statistics only; ``each_array`` maps every array by its own):
  the input's spread over the training raw's by the run's method, from the input's own
  statistics (`dacapo.experiments.normalization.array_statistics`):
  ``(P_hi - P_lo)_input / (high - low)`` for percentiles, ``std_input / std`` for
  mean/std. Outside [1 / `SPREAD_LIMIT`, `SPREAD_LIMIT`] it is named.
"""

from __future__ import annotations

import logging

from funlib.persistence import Array

from dacapo.experiments.normalization import array_statistics
from dacapo.io.arrays import open_array

logger = logging.getLogger(__name__)

#: an input whose intensity spread differs from the training raw's by more than this
#: factor is named (the held-out 2D nuclei frames differ 2.2x and segment well; a uint16
#: copy of a uint8 image differs 256x, a [0, 1] float copy 1/78x, and segment wrongly)
SPREAD_LIMIT = 4.0


def training_voxel_size(run_config):
    """The voxel size of the first training raw that can be opened; None if none can."""
    for dataset in run_config.datasplit_config.train:
        try:
            return open_array(dataset.raw, "raw").voxel_size
        except Exception:  # noqa: BLE001 - moved or deleted training data: not checked
            continue
    return None


def intensity_spread(run_config, raw: Array) -> float | None:
    """The input's intensity spread over the training raw's (module docstring); None
    when the run maps each array by its own statistics or has none stored."""
    norm = run_config.normalization
    if norm is None or norm.per_array or norm.method == "dtype_max" or norm.stats is None:
        return None
    stats = array_statistics(raw, norm)
    if norm.method == "percentile":
        num, den = stats["high"] - stats["low"], norm.high - norm.low
    else:
        num, den = stats["std"], norm.std
    return num / den if den > 0 else None


def input_warnings(run_config, raw: Array, name: str) -> list[str]:
    """One line per way the raw ``name`` differs from the training raw (module docstring)."""
    lines = []
    trained = training_voxel_size(run_config)
    if trained is not None and tuple(raw.voxel_size) != tuple(trained):
        lines.append(
            f"{name}: voxel size {tuple(raw.voxel_size)} differs from the training raw's "
            f"{tuple(trained)}: the model sees its objects at another size than it learned "
            "(resample the input, e.g. `dacapo downsample`)")
    spread = intensity_spread(run_config, raw)
    if spread is not None and not 1 / SPREAD_LIMIT <= spread <= SPREAD_LIMIT:
        lines.append(
            f"{name}: its intensity spread is {spread:.3g}x the training raw's "
            f"({run_config.normalization.method} normalisation with the training statistics): "
            "another dtype, gain or exposure? The model sees values it did not learn; convert "
            "the input to the training data's range, or train with normalization.statistics: "
            "each_array")
    return lines
