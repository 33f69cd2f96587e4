"""`dacapo.ops.padding` and the padded reads of `dacapo.io.arrays` against numpy's pad."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate, Roi
from funlib.persistence import Array

from dacapo.io.arrays import read_reflected, read_with_padding
from dacapo.ops.padding import reflect_index


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_reflect_index_is_numpys_reflect_pad(n):
    for left, right in [(0, 0), (1, 2), (n + 3, 2 * n + 5)]:
        expected = np.pad(np.arange(n), (left, right), mode="reflect")
        assert reflect_index(np.arange(-left, n + right), n).tolist() == expected.tolist()


def test_reflected_read_equals_np_pad_beyond_every_side():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)  # channels, z, y, x
    vs = Coordinate(40, 8, 8)
    offset = Coordinate(400, 80, 16)
    array = Array(data, offset=offset, voxel_size=vs)
    pad = [(4, 5), (6, 1), (2, 9)]  # more than the extent on some axes
    roi = Roi(offset - vs * Coordinate(p[0] for p in pad),
              vs * Coordinate(s + a + b for s, (a, b) in zip(data.shape[1:], pad)))
    expected = np.pad(data, [(0, 0), *pad], mode="reflect")
    np.testing.assert_array_equal(read_reflected(array, roi), expected)
    np.testing.assert_array_equal(read_with_padding(array, roi, "reflect"), expected)
    np.testing.assert_array_equal(read_with_padding(array, roi, "zero"),
                                  np.pad(data, [(0, 0), *pad]))
    inner = Roi(offset + vs, vs * 2)  # inside: a plain read
    np.testing.assert_array_equal(read_with_padding(array, inner, "reflect"),
                                  data[:, 1:3, 1:3, 1:3])
