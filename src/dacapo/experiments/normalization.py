"""The raw normalisation of a run: method + statistics of its training raw (in run.yaml).

``RunConfig.normalization`` says how raw values are mapped before they reach the model
(math in `dacapo.ops.normalize`); without one (runs made before it), integers are divided
by their dtype maximum. Statistics left empty in a config are computed once,
when training starts, from the training datasets' raw (inside their labelled region) and
stored in the run directory's ``run.yaml``; training, validation, ``apply`` (and export)
use those stored numbers, so a new volume is mapped exactly like the training data.
"""

from __future__ import annotations

import logging

import attr
import numpy as np

from dacapo.io.arrays import read_array
from dacapo.io.config_yaml import register
from dacapo.ops.normalize import METHODS, intensity_statistics, normalize, sample_values

logger = logging.getLogger(__name__)


@attr.s
class NormalizationConfig:
    """How raw intensities are normalised (fixed by the training data)."""

    method: str = attr.ib(
        default="percentile",
        metadata={"help_text": "'percentile' ((x - low) / (high - low)), 'meanstd' "
                               "((x - mean) / std) or 'dtype_max' (integers / dtype max)."},
    )
    lower_percentile: float = attr.ib(
        default=0.5, metadata={"help_text": "Percentile of the training raw mapped to 0."}
    )
    upper_percentile: float = attr.ib(
        default=99.5, metadata={"help_text": "Percentile of the training raw mapped to 1."}
    )
    low: float | None = attr.ib(
        default=None,
        metadata={"help_text": "The lower percentile's value (computed when training starts)."},
    )
    high: float | None = attr.ib(
        default=None,
        metadata={"help_text": "The upper percentile's value (computed when training starts)."},
    )
    mean: float | None = attr.ib(
        default=None, metadata={"help_text": "Mean of the training raw (computed)."}
    )
    std: float | None = attr.ib(
        default=None, metadata={"help_text": "Standard deviation of the training raw (computed)."}
    )

    def problems(self) -> list[str]:
        out = []
        if self.method not in METHODS:
            out.append(f"normalization.method: must be one of {list(METHODS)}, got {self.method!r}")
        lo, hi = self.lower_percentile, self.upper_percentile
        if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and 0 <= lo < hi <= 100):
            out.append(f"normalization: need 0 <= lower_percentile < upper_percentile <= 100, "
                       f"got {lo!r}, {hi!r}")
        return out

    @property
    def stats(self) -> dict[str, float] | None:
        values = {"low": self.low, "high": self.high, "mean": self.mean, "std": self.std}
        return None if any(v is None for v in values.values()) else values

    @property
    def complete(self) -> bool:
        return self.method == "dtype_max" or self.stats is not None


def normalize_input(data: np.ndarray, config: NormalizationConfig | None) -> np.ndarray:
    """Raw ``data`` as the model's float32 input (``None``: divide by the dtype maximum)."""
    if config is None:
        return normalize(data, "dtype_max")
    if not config.complete:
        raise ValueError(
            "normalization: the run config has no statistics of the training raw (they are "
            "computed when training starts; use the run directory's run.yaml)"
        )
    return normalize(data, config.method, config.stats)


def training_statistics(datasets, config: NormalizationConfig) -> dict[str, float]:
    """Statistics of the raw of opened training ``datasets`` inside their labelled region."""
    samples = []
    per = max(1, 2_000_000 // max(1, len(datasets)))
    for ds in datasets:
        roi = ds.training_roi.snap_to_grid(ds.raw.voxel_size, mode="shrink")
        data = read_array(ds.raw, roi)
        samples.append(sample_values(data, per))
    return intensity_statistics(samples, config.lower_percentile, config.upper_percentile)


def with_statistics(run_config):
    """``run_config`` with its normalisation statistics filled in from its training data
    (unchanged when they are given or the method needs none)."""
    config = getattr(run_config, "normalization", None)
    if config is None or config.complete:
        return run_config
    datasets = [d.open() for d in run_config.datasplit_config.train]
    stats = training_statistics(datasets, config)
    logger.info("normalization %s from the training raw: %s", config.method, stats)
    return attr.evolve(run_config, normalization=attr.evolve(config, **stats))


register(NormalizationConfig)
