"""`dacapo.runs.scores`: (near-)constant segmentations are degenerate, named in one warning
line per validation and never chosen as best while another is scored."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
from funlib.persistence import Array

from dacapo.runs.scores import (
    NEAR_CONSTANT,
    choose_parameters,
    dominant,
    is_degenerate,
    warn_degenerate,
)


def _counter_dominant(data: np.ndarray) -> tuple[set, float]:
    """Reference: (the most common values, their share), by counting every voxel in Python."""
    counts = Counter(data.ravel().tolist())
    top = max(counts.values())
    return {v for v, c in counts.items() if c == top}, top / data.size


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.uint64, bool, np.float32])
def test_dominant_vs_counting(dtype):
    rng = np.random.default_rng(1)
    data = (rng.integers(0, 4, (9, 11)) * rng.integers(0, 3, (9, 11))).astype(dtype)
    values, fraction = _counter_dominant(data)
    for given in (data, Array(data, voxel_size=(1, 1))):
        value, share = dominant(given)
        assert share == pytest.approx(fraction) and value in values
    assert dominant(np.zeros((0, 3), dtype)) == (None, 1.0)


def _image(foreground: float, size: int = 10_000) -> np.ndarray:
    """A 2D binary image (100 x size/100) with the first ``foreground`` share set."""
    flat = np.zeros(size, np.uint8)
    flat[: int(round(foreground * size))] = 1
    return flat.reshape(100, -1)


def test_near_constant_segmentation_is_degenerate():
    gt = _image(0.088)  # the GOWT1 frame: 8.8 % nucleus pixels
    # a threshold below the background's prediction: 99.98 % foreground, not constant
    assert is_degenerate(_image(0.9998), gt)
    assert is_degenerate(_image(1.0), gt) and is_degenerate(_image(0.0), gt)
    assert is_degenerate(_image(1 - NEAR_CONSTANT), gt)  # 99 % background
    assert not is_degenerate(_image(0.02), gt)  # 98 % background: a (poor) answer
    assert not is_degenerate(_image(0.09), gt)
    # one instance covering 99.5 % of an instance segmentation is as degenerate
    ids = np.arange(10_000, dtype=np.uint64).reshape(100, 100)
    ids[ids < 9950] = 7
    assert is_degenerate(ids, gt)


def test_sparse_gt_leaves_near_constant_answers_alone():
    sparse = _image(0.005)  # objects cover 0.5 %: a right answer is near-constant
    assert not is_degenerate(_image(0.004), sparse)
    assert not is_degenerate(_image(0.012), sparse)  # a poor answer, not a degenerate one
    # near-constant the other way: everything one object where the gt is background
    assert is_degenerate(_image(0.995), sparse)
    ids = np.arange(10_000, dtype=np.uint64).reshape(100, 100)
    ids[ids < 9950] = 3
    assert is_degenerate(ids, sparse)
    # a gt that is one large object (value 5 on 99.5 %): one large object is an answer
    big = np.where(_image(0.995) > 0, 5, 0).astype(np.uint16)
    assert not is_degenerate(ids, big) and not is_degenerate(big, big)
    assert is_degenerate(_image(0.004), big)  # background where the gt is one object
    assert is_degenerate(_image(0.0), sparse)  # constant where the gt is not: as before
    flat = np.zeros((4, 4), np.uint8)
    assert not is_degenerate(flat, flat)  # nothing to find: a constant answer is right


def _rows(flags: dict[float, bool], dataset: str = "t72") -> list[dict]:
    return [{"iteration": 10, "dataset": dataset, "criterion": c,
             "value": 0.16 if bad else 0.8 - abs(t), "degenerate": int(bad),
             "parameters": {"type": "ThresholdPostProcessorParameters", "id": i,
                            "threshold": t}}
            for i, (t, bad) in enumerate(flags.items()) for c in ("object__dice",
                                                                  "object__recall")]


def test_one_warning_line_per_validation(caplog):
    rows = _rows({-0.5: True, -0.25: True, 0.0: True, 0.1: False, 0.3: False})
    rows += _rows({-0.5: True, 0.1: False}, dataset="other")
    with caplog.at_level(logging.WARNING, logger="dacapo.runs.scores"):
        assert warn_degenerate(rows, limit=3) == 4
    (record,) = caplog.records
    message = record.getMessage()
    assert message.startswith("4 of 7 parameter sets gave a (near-)constant segmentation")
    assert "t72: threshold=-0.5; t72: threshold=-0.25; t72: threshold=0.0 and 1 more" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dacapo.runs.scores"):
        assert warn_degenerate(_rows({0.1: False, 0.3: False})) == 0
    assert not caplog.records


def test_degenerate_recall_is_never_the_choice():
    # all-foreground has recall 1: the best recall of the sweep, and meaningless
    rows = _rows({-0.5: True, 0.1: False, 0.3: False})
    for r in rows:
        if r["criterion"] == "object__recall":
            r["value"] = 1.0 if r["degenerate"] else 0.9 - r["parameters"]["threshold"]
    chosen = choose_parameters(rows, "object__recall", True)
    assert chosen["parameters"]["threshold"] == 0.1 and chosen["value"] == pytest.approx(0.8)
