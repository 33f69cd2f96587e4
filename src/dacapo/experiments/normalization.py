"""The raw normalisation of a run: method + statistics of its training raw (in run.yaml).

``RunConfig.normalization`` says how raw values are mapped before they reach the model
(math in `dacapo.ops.normalize`); without one (runs made before it), integers are divided
by their dtype maximum. Statistics left empty in a config are computed once,
when training starts, from the training datasets' raw (inside their labelled region) and
stored in the run directory's ``run.yaml``; training, validation, ``apply`` (and export)
use those stored numbers, so a new volume is mapped exactly like the training data.

With ``statistics: each_array`` every array is instead mapped by its own statistics
(`for_array`: computed from the array when it is read for training, validation or apply;
nothing stored), for images whose absolute intensity does not carry over from one to the
next (fluorescence: exposure, expression, bleaching; StarDist's and Cellpose's
per-image percentiles, nnU-Net's per-image z-score outside CT).
"""

from __future__ import annotations

import logging

import attr
import numpy as np
from funlib.geometry import Coordinate, Roi

from dacapo.io.arrays import read_array
from dacapo.io.config_yaml import register
from dacapo.ops.normalize import (
    METHODS,
    affine_parameters,
    intensity_statistics,
    normalize,
    sample_values,
)

logger = logging.getLogger(__name__)

#: whose statistics map an array (``NormalizationConfig.statistics``)
STATISTICS = ("training", "each_array")


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
    statistics: str = attr.ib(
        default="training",
        metadata={"help_text": "Whose statistics map an array: 'training' (those of the "
                               "training raw, computed once and stored: every array on one "
                               "scale) or 'each_array' (every array its own, computed when it "
                               "is read: for images whose absolute intensity does not carry "
                               "over, e.g. fluorescence of unequal exposure)."},
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
        if self.statistics not in STATISTICS:
            out.append(f"normalization.statistics: must be one of {list(STATISTICS)}, got "
                       f"{self.statistics!r}")
        lo, hi = self.lower_percentile, self.upper_percentile
        if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and 0 <= lo < hi <= 100):
            out.append(f"normalization: need 0 <= lower_percentile < upper_percentile <= 100, "
                       f"got {lo!r}, {hi!r}")
        return out + self.value_problems()

    def value_problems(self) -> list[str]:
        """The given statistics the method divides by (``high - low``, ``std``) cannot
        scale the raw (not > 0); those left empty are computed (`with_statistics`,
        `for_array`: ValueError naming the data when it is constant)."""
        if self.per_array:  # each array's own statistics replace these
            return []
        if self.method == "percentile" and self.low is not None and self.high is not None \
                and not self.high > self.low:
            return [f"normalization.high: must be greater than normalization.low: the given "
                    f"low {self.low!r} and high {self.high!r} are not increasing (percentile "
                    "maps low to 0 and high to 1)"]
        if self.method == "meanstd" and self.std is not None and not self.std > 0:
            return [f"normalization.std: must be greater than 0 (the meanstd method divides "
                    f"by it), got {self.std!r}"]
        return []

    @property
    def stats(self) -> dict[str, float] | None:
        values = {"low": self.low, "high": self.high, "mean": self.mean, "std": self.std}
        return None if any(v is None for v in values.values()) else values

    @property
    def per_array(self) -> bool:
        """Each array mapped by its own statistics (`for_array`)."""
        return self.statistics == "each_array" and self.method != "dtype_max"

    @property
    def complete(self) -> bool:
        """Nothing to compute from the training raw (per-array statistics are computed
        from each array, by `for_array`)."""
        return self.method == "dtype_max" or self.per_array or self.stats is not None


def normalize_input(data: np.ndarray, config: NormalizationConfig | None) -> np.ndarray:
    """Raw ``data`` as the model's float32 input (``None``: divide by the dtype maximum)."""
    if config is None:
        return normalize(data, "dtype_max")
    problems = [] if config.method == "dtype_max" else config.value_problems()
    if problems:
        raise ValueError(problems[0])
    if config.method != "dtype_max" and config.stats is None:
        if config.per_array:
            raise ValueError("normalization: statistics 'each_array' are computed from the "
                             "array (for_array) before it is normalised")
        raise ValueError(
            "normalization: the run config has no statistics of the training raw (they are "
            "computed when training starts; use the run directory's run.yaml)"
        )
    return normalize(data, config.method, config.stats)


def constant_message(config: NormalizationConfig, stats: dict[str, float]) -> str | None:
    """How the data of ``stats`` is constant for ``config.method`` (the span it divides
    by, `dacapo.ops.normalize.affine_parameters`, is not > 0); None when it can scale."""
    try:
        affine_parameters(config.method, stats)
        return None
    except ValueError:
        pass
    if config.method == "meanstd":
        return f"constant (standard deviation {stats['std']:g}, value {stats['mean']:g})"
    return (f"constant between its {config.lower_percentile:g} and "
            f"{config.upper_percentile:g} percentiles ({stats['low']:g})")


def training_statistics(datasets, config: NormalizationConfig) -> dict[str, float]:
    """Statistics of the raw of opened training ``datasets`` inside their labelled region;
    ValueError naming them when they are constant (nothing to scale)."""
    samples = []
    per = max(1, 2_000_000 // max(1, len(datasets)))
    for ds in datasets:
        roi = ds.training_roi.snap_to_grid(ds.raw.voxel_size, mode="shrink")
        data = read_array(ds.raw, roi)
        samples.append(sample_values(data, per))
    stats = intensity_statistics(samples, config.lower_percentile, config.upper_percentile)
    constant = constant_message(config, stats)
    if constant:
        names = ", ".join(repr(ds.name) for ds in datasets)
        noun = "dataset" if len(datasets) == 1 else "datasets"
        raise ValueError(f"normalization: the training raw ({noun} {names}) is {constant}; "
                         f"method {config.method!r} cannot scale it")
    return stats


def array_statistics(array, config: NormalizationConfig,
                     max_samples: int = 2_000_000) -> dict[str, float]:
    """Statistics of the whole ``array`` (a funlib Array, channels pooled): read whole up to
    16 × ``max_samples`` values, else whole chunks spread evenly over its chunk grid, about
    ``max_samples`` values of them (deterministic)."""
    roi, vs = array.roi, array.voxel_size
    spatial = int(np.prod(roi.shape / vs))
    channels = max(1, int(np.prod(array.shape)) // spatial)
    if spatial * channels <= 16 * max_samples:
        samples = [sample_values(read_array(array, roi), max_samples)]
    else:
        chunk = Coordinate(array.chunk_shape[-vs.dims:]) if array.chunk_shape else None
        block = (chunk or Coordinate((64,) * vs.dims)) * vs
        grid = [-(-s // b) for s, b in zip(roi.shape, block)]
        cells = int(np.prod(grid))
        per_chunk = int(np.prod(block / vs)) * channels
        wanted = -(-max_samples // per_chunk)
        picks = np.unique(np.linspace(0, cells - 1, min(cells, wanted)).round().astype(int))
        samples = [sample_values(read_array(array, Roi(
            roi.begin + Coordinate(np.unravel_index(int(i), grid)) * block, block
        ).intersect(roi)), per_chunk) for i in picks]  # each chunk whole
    return intensity_statistics(samples, config.lower_percentile, config.upper_percentile)


def for_array(config: NormalizationConfig | None, array,
              name: str = "raw") -> NormalizationConfig | None:
    """``config`` with the statistics of ``array`` itself when it maps each array by its
    own (``statistics: each_array``); otherwise ``config`` unchanged. ``name`` names the
    array in the error raised for a constant one."""
    if config is None or not config.per_array:
        return config
    stats = array_statistics(array, config)
    constant = constant_message(config, stats)
    if constant:
        raise ValueError(f"{name}: {constant}; normalization 'each_array' cannot scale it")
    return attr.evolve(config, **stats)


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
