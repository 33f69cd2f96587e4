"""Normalisation statistics that cannot scale the raw are refused by ``problems()`` (given
values: naming the field) or when computed from constant data (naming the datasets), by the
functions training uses (`training_statistics`, `for_array`), not when a batch is
normalised after the run directory is written."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate
from funlib.persistence import Array

from dacapo.experiments.datasplits import Dataset
from dacapo.experiments.normalization import (
    NormalizationConfig,
    for_array,
    normalize_input,
    training_statistics,
)

STATS = {"mean": 50.0, "std": 40.0}


@pytest.mark.parametrize("config, message", [
    (NormalizationConfig(low=10.0, high=10.0, **STATS),
     "normalization.high: must be greater than normalization.low: the given low 10.0 and high "
     "10.0 are not increasing (percentile maps low to 0 and high to 1)"),
    (NormalizationConfig(low=200.0, high=10.0, **STATS),
     "normalization.high: must be greater than normalization.low: the given low 200.0 and high "
     "10.0 are not increasing (percentile maps low to 0 and high to 1)"),
    (NormalizationConfig(method="meanstd", low=0.0, high=1.0, mean=3.0, std=0.0),
     "normalization.std: must be greater than 0 (the meanstd method divides by it), got 0.0"),
    (NormalizationConfig(method="meanstd", std=-1.0),
     "normalization.std: must be greater than 0 (the meanstd method divides by it), got -1.0"),
])
def test_given_values_that_cannot_scale_are_problems_and_errors(config, message):
    assert config.problems() == [message]
    if config.stats is not None:  # normalising says the same (not "the raw is constant")
        with pytest.raises(ValueError) as e:
            normalize_input(np.ones(3), config)
        assert str(e.value) == message


@pytest.mark.parametrize("config", [
    NormalizationConfig(method="meanstd", low=0.0, high=0.0, mean=1.0, std=2.0),  # unused
    NormalizationConfig(statistics="each_array", low=5.0, high=5.0, **STATS),  # replaced
    NormalizationConfig(method="dtype_max", std=0.0),
    NormalizationConfig(low=1.0),  # computed when training starts
])
def test_values_the_method_does_not_divide_by_are_no_problem(config):
    assert config.problems() == []


def _array(data: np.ndarray) -> Array:
    return Array(data, offset=(0, 0, 0), voxel_size=Coordinate(1, 1, 1))


def test_constant_data_is_named_when_statistics_are_computed():
    const = _array(np.full((4, 8, 8), 7, np.uint8))
    ds = Dataset("crop", const, const)
    with pytest.raises(ValueError) as e:
        training_statistics([ds], NormalizationConfig())
    assert str(e.value) == ("normalization: the training raw (dataset 'crop') is constant "
                            "between its 0.5 and 99.5 percentiles (7); method 'percentile' "
                            "cannot scale it")
    with pytest.raises(ValueError, match=r"^normalization: the training raw \(dataset 'crop'\) "
                                         r"is constant \(standard deviation 0, value 7\)"):
        training_statistics([ds], NormalizationConfig(method="meanstd"))
    each = NormalizationConfig(statistics="each_array")
    with pytest.raises(ValueError) as e:
        for_array(each, const, "dataset 'crop': raw")
    assert str(e.value) == ("dataset 'crop': raw: constant between its 0.5 and 99.5 "
                            "percentiles (7); normalization 'each_array' cannot scale it")


def test_meanstd_scales_data_whose_percentiles_are_equal():
    """Sparse data (99.5 % zeros): equal percentiles, a standard deviation all the same."""
    data = np.zeros((10, 10, 10), np.float32)
    data[0, 0, :3] = 5
    config = NormalizationConfig(method="meanstd", statistics="each_array")
    assert for_array(config, _array(data)).std > 0
    assert training_statistics([Dataset("d", _array(data), _array(data))], config)["std"] > 0
