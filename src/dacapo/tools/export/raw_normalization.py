"""The raw normalisation of an exported model: the linear map ``raw * gain + offset`` the run
trained with, as the package's preprocessing and for its test input; or, for a run that maps
each array by its own statistics (``normalization.statistics: each_array``), that
normalisation itself, which the package applies per sample (bioimage.io's ``scale_range`` /
``zero_mean_unit_variance``)."""

from __future__ import annotations

import json
from pathlib import Path

import attr
import numpy as np

from dacapo.experiments.normalization import NormalizationConfig, normalize_input
from dacapo.ops.intensity import normalize_raw
from dacapo.ops.normalize import affine_parameters, intensity_statistics
from dacapo.runs.run_dir import RunDir

#: a run directory may hold the raw normalisation it trained with (linear: x * gain + offset
#: on the raw values as float32); without it, integers are divided by their dtype maximum
NORMALIZATION_FILE = "normalization.json"


def training_normalization(run_dir, dtype) -> tuple[float, float] | NormalizationConfig | None:
    """The run's `NormalizationConfig` when it maps each array by its own statistics, else
    ``(gain, offset)`` such that the model input is ``raw.astype(float32) * gain + offset``
    (``None``: raw used as float32 unchanged). From the run's `NORMALIZATION_FILE` when
    present, else the run config's ``normalization`` (statistics of the training raw:
    ``(x - offset) * scale``), else dacapo's `normalize_raw`: integers / dtype maximum."""
    return _normalization(run_dir, _run_config(run_dir), dtype)


def _normalization(run_dir, config: NormalizationConfig | None, dtype):
    """`training_normalization` with the run config's ``config`` already read."""
    if config is not None and config.per_array:
        return config
    norm = _linear(config)
    if norm is not None:
        return norm
    path = Path(run_dir) / NORMALIZATION_FILE
    if path.is_file():
        data = json.loads(path.read_text())
        try:
            return float(data["gain"]), float(data.get("offset", 0.0))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: expected {{'gain': g, 'offset': o}}, got {data}") from e
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return 1.0 / float(np.iinfo(dtype).max), 0.0
    if np.issubdtype(dtype, np.floating):
        return None
    raise ValueError(f"export: raw dtype {dtype} is not supported (integers or floats)")


def _run_config(run_dir) -> NormalizationConfig | None:
    if not (Path(run_dir) / "run.yaml").is_file():
        return None
    return RunDir(run_dir).load_config().normalization


def _linear(config: NormalizationConfig | None) -> tuple[float, float] | None:
    """``(gain, offset)`` of a run config's percentile / mean-std normalisation, if any."""
    if config is None or config.method == "dtype_max" or config.per_array:
        return None
    offset, scale = affine_parameters(config.method, config.stats)
    return scale, -offset * scale


def normalize(data: np.ndarray, run_dir, dtype) -> np.ndarray:
    """The model input for raw ``data`` as in training (see `training_normalization`; per
    array: by the statistics of ``data`` itself, as the package's per-sample step)."""
    config = _run_config(run_dir)
    if config is not None and config.per_array:
        stats = intensity_statistics([data], config.lower_percentile, config.upper_percentile)
        return normalize_input(data, attr.evolve(config, **stats))
    if (Path(run_dir) / NORMALIZATION_FILE).is_file() or _linear(config) is not None:
        gain, offset = _normalization(run_dir, config, dtype)
        return data.astype(np.float32) * np.float32(gain) + np.float32(offset)
    return normalize_raw(data)
