"""`dacapo.ops.intensity`: raw integers scaled to [0, 1] by their dtype's maximum."""

from __future__ import annotations

import numpy as np

from dacapo.ops.intensity import normalize_raw


def test_intensity_raw_normalisation():
    assert normalize_raw(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert normalize_raw(np.array([0, 65535], np.uint16)).tolist() == [0.0, 1.0]
    assert normalize_raw(np.array([0.5], np.float64)).dtype == np.float32
