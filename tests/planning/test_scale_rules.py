"""The scale a planned network works at (`dacapo.planning.scale_rules`): hand-made label
images whose round trips are known, and the planned UNet's shapes against the model."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate

from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.tasks import DistanceTaskConfig
from dacapo.ops.planning import unet_shapes
from dacapo.planning.scale_rules import (
    ROUND_TRIP_IOU,
    pooling_choices,
    round_trip_scores,
    structures,
)


def test_classes_on_wide_stripes_pool_by_the_coarsest_factor():
    # class ids 0..2 on stripes 16 voxels wide along x, aligned to the grid: each fine voxel
    # is nearer (linear weights 5/8 and 7/8 at 4x) a coarse voxel of its own stripe, so
    # every factor's round trip is exact
    labels = ((np.indices((8, 64, 64))[2] // 16) % 3).astype(np.uint8)
    images = structures(labels, "one_hot", None)
    scores = round_trip_scores(images, (50, 4, 4))
    assert scores == {2: 1.0, 4: 1.0}
    choices = pooling_choices(scores, (50, 4, 4))
    assert [c for c, _ in choices] == [(1, 4, 4), (1, 2, 2), (1, 1, 1)]
    assert "coarsest" in choices[0][1]
    # isotropic voxels: every axis (the stripes are constant along z and y: exact there)
    assert pooling_choices(round_trip_scores(images, (8, 8, 8)), (8, 8, 8))[0][0] == (4, 4, 4)


def test_touching_objects_keep_the_full_resolution():
    # the same squares as objects (ids 1..): their boundaries are 2 voxels wide, half of
    # them lost on the 2x grid
    labels = (np.indices((3, 64, 64))[1] // 16 * 4 + np.indices((3, 64, 64))[2] // 16 + 1)
    scores = round_trip_scores(structures(labels.astype(np.uint32), "affinities", None), (50, 4, 4))
    assert list(scores) == [2] and scores[2] < ROUND_TRIP_IOU  # 4x not tried after 2x failed
    assert [c for c, _ in pooling_choices(scores, (50, 4, 4))] == [(1, 1, 1)]


def test_the_worst_structure_decides():
    assert [c for c, _ in pooling_choices({2: 0.98, 4: 0.92}, (50, 4, 4))] == [(1, 2, 2), (1, 1, 1)]
    assert [c for c, _ in pooling_choices({2: 0.96}, (4, 4))] == [(1, 1)]
    assert [c for c, _ in pooling_choices({}, (4, 4))] == [(1, 1)]  # too small to try


@pytest.mark.parametrize("shape,pooling", [((3, 96, 96), (1, 2, 2)), ((24, 48, 48), (2, 2, 2))])
def test_pooled_unet_shapes_match_the_model(shape, pooling):
    factors = [(1, 2, 2)]
    kd = [[(3, 3, 3), (1, 3, 3)], [(1, 3, 3)] * 2]
    ku = [[(1, 3, 3)] * 2]
    arch = CNNectomeUNetConfig(name="u", input_shape=shape, fmaps_in=1, fmaps_out=4, num_fmaps=3,
                               fmap_inc_factor=2, downsample_factors=factors,
                               kernel_size_down=kd, kernel_size_up=ku, input_pooling=pooling)
    model = DistanceTaskConfig("d", channels=["a"], clip_distance=1, tol_distance=1).build() \
        .create_model(arch)
    _, expected = model.compute_output_shape(Coordinate(shape))
    out, macs = unet_shapes(shape, factors, kd, ku, num_fmaps=3, fmaps_out=4, pooling=pooling)
    assert out == tuple(expected)
    # the network runs on the pooled grid: its multiply-adds are those of the pooled shape
    pooled = tuple(s // p for s, p in zip(shape, pooling))
    assert macs == unet_shapes(pooled, factors, kd, ku, num_fmaps=3, fmaps_out=4)[1]
    assert unet_shapes((shape[0], shape[1] + 1, shape[2]), factors, kd, ku, pooling=pooling) is None
