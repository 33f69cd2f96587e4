"""Fragments + agglomeration: seed ids and owner blocks against a brute force, recovery of
known labels, blockwise vs one block, SQLite vs PostgreSQL (a throwaway server when available)
(the kernels against their brute-force twins and waterz: tests/ops/test_agglomeration.py)."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate
from funlib.persistence import Array

from dacapo.blockwise import BlockwiseOptions
from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.experiments.tasks.post_processors import (
    AgglomerationPostProcessor,
    AgglomerationPostProcessorParameters,
    WatershedPostProcessor,
    WatershedPostProcessorParameters,
)
from dacapo.ops.agglomeration import scoring_function, watershed_fragments, waterz_affinities
from dacapo.ops.instance_metrics import instance_metrics
from dacapo.ops.watershed import segment
from dacapo.segment.rag_agglomeration import read_edges
from tests.references import AGGLOMERATION_OFFSETS as OFFSETS
from tests.references import agglomeration_volume, make_labels, noisy_affinities, same_partition
from tests.segment.references import VOXEL, full_voi

waterz = pytest.importorskip("waterz")


@pytest.fixture(scope="module")
def volume():
    return agglomeration_volume()


def labelled_voi(seg: np.ndarray, ref: np.ndarray, truth: np.ndarray) -> float:
    """VOI between two segmentations on the voxels the GT labels (gaps excluded)."""
    inside = truth != 0
    return full_voi(seg[inside], ref[inside])


# ---------------------------------------------------------------- seed ids and owner blocks


def test_position_ids_brute_force():
    """Each seed is named 1 + the smallest whole-volume linear index of its voxels; the
    owner block is the block holding that voxel."""
    from funlib.geometry import Roi

    from dacapo.blockwise.grid import BlockGeometry
    from dacapo.ops.agglomeration import position_ids
    from dacapo.segment.rag_agglomeration import owner_blocks

    rng = np.random.default_rng(0)
    markers = rng.integers(0, 5, (4, 5, 6))
    got = position_ids(markers, (2, 3, 1), (9, 10, 11))
    for k in range(1, 5):
        linear = [np.ravel_multi_index((z + 2, y + 3, x + 1), (9, 10, 11))
                  for z, y, x in np.argwhere(markers == k)]
        assert set(got[markers == k].tolist()) == {min(linear) + 1}
    assert (got[markers == 0] == 0).all()
    geometry = BlockGeometry(Roi((0, 0, 0), (18, 20, 22)), Coordinate(2, 2, 2),
                        Coordinate(6, 8, 10), Coordinate(2, 2, 2))
    ids = np.unique(got[got != 0])
    brute = []
    for i in ids:
        z, y, x = np.unravel_index(int(i) - 1, (9, 10, 11))
        brute.append(np.ravel_multi_index((z // 3, y // 4, x // 5), geometry.grid_shape))
    assert owner_blocks(ids, geometry).tolist() == brute


# ---------------------------------------------------------------- post-processor


def test_recovers_labels_in_memory(volume, tmp_path):
    """Noisy synthetic affinities: the best threshold of the default sweep recovers the
    cells (VOI <= 0.05 on labelled voxels); the one-block result is waterz's."""
    labels, noisy = volume
    post = AgglomerationPostProcessor(OFFSETS, seed_distance=3)
    post.set_prediction(Array(noisy, offset=(80, 40, 40), voxel_size=VOXEL))
    scores = {}
    for p in post.enumerate_parameters():
        seg = post.process(p, tmp_path / "o.zarr" / str(p.id))
        scores[p.threshold] = instance_metrics(seg[seg.roi], labels)["voi"]
    best = min(scores, key=scores.get)
    print(f"VOI by threshold: { {t: round(v, 3) for t, v in scores.items()} }")
    assert scores[best] <= 0.05, scores
    assert max(scores.values()) > 2  # the sweep reaches the merged end too
    frag = watershed_fragments(noisy[:3], tuple(VOXEL), seed_distance=3)
    (expected,) = waterz.agglomerate(waterz_affinities(noisy[:3]), [best],
                                     fragments=frag.copy(), scoring_function=scoring_function())
    p = next(q for q in post.enumerate_parameters() if q.threshold == best)
    seg = post.process(p, tmp_path / "o.zarr" / "again")
    assert same_partition(seg[seg.roi], expected)


def test_2d(tmp_path):
    labels = make_labels((1, 48, 48), num=8)[0]
    affs = noisy_affinities(labels, [(1, 0), (0, 1)])
    post = AgglomerationPostProcessor([(1, 0), (0, 1)], thresholds=[0.3], seed_distance=3)
    post.set_prediction(Array(affs, offset=(0, 0), voxel_size=(4, 4)))
    seg = post.process(next(iter(post.enumerate_parameters())), tmp_path / "o.zarr" / "s")
    assert instance_metrics(seg[seg.roi], labels)["voi"] <= 0.1


@pytest.fixture(scope="module")
def blockwise(volume, tmp_path_factory, write_prediction):
    """One block in memory and 2 x 2 x 2 blocks of 16^3 with the SQLite store (blocks run
    in this process; the PostgreSQL run below uses a daisy worker process)."""
    labels, noisy = volume
    tmp = tmp_path_factory.mktemp("agglo")
    post = AgglomerationPostProcessor(OFFSETS, thresholds=[0.3], seed_distance=3)
    params = next(iter(post.enumerate_parameters()))
    post.set_prediction(Array(noisy, offset=(80, 40, 40), voxel_size=VOXEL))
    one = post.process(params, tmp / "one.zarr" / "s")
    path = write_prediction(tmp / "p.zarr" / "affs", noisy)
    post.set_prediction(path)
    out = post.process(params, tmp / "o.zarr" / "s",  # in this process
                       BlockwiseOptions(num_workers=0, log_dir=tmp / "logs"),
                       block_size=Coordinate(16, 16, 16) * VOXEL)
    edges = read_edges(post._blockwise["store"])
    return {"one": one[one.roi], "seg": out[out.roi], "edges": edges, "path": path,
            "params": params, "tmp": tmp, "labels": labels}


def test_blockwise_close_to_one_block(blockwise):
    """2 x 2 x 2 blocks: as good as one block against the GT (VOI <= 0.1), and close to it
    (VOI between them <= 0.15 on the labelled voxels; gap voxels differ more)."""
    labels, seg, one = blockwise["labels"], blockwise["seg"], blockwise["one"]
    v_gt = instance_metrics(seg, labels)["voi"]
    v_one = labelled_voi(seg, one, labels)
    print(f"blockwise vs GT {v_gt:.3f}, one block vs GT {instance_metrics(one, labels)['voi']:.3f}, "
          f"blockwise vs one block {v_one:.3f} (labelled voxels), {full_voi(seg, one):.3f} (all)")
    assert v_gt <= 0.1
    assert v_one <= 0.15
    assert len(blockwise["edges"][0]) > 0
    # the graph holds every fragment as a node and no duplicate edge
    edges = blockwise["edges"][0]
    assert len(np.unique(edges, axis=0)) == len(edges)


def test_block_functions_on_one_block_equal_in_memory(volume, tmp_path):
    """The blockwise passes called on one block covering the volume (context zero-padded
    as the runner reads it, SQLite store) give the in-memory result exactly."""
    from funlib.geometry import Roi

    from dacapo.blockwise import BlockInfo
    from dacapo.blockwise.grid import BlockGeometry
    from dacapo.io.arrays import read_padded
    from dacapo.segment.rag_agglomeration import (
        GraphStore,
        edges_block,
        fragments_block,
        global_luts,
        relabel_block,
    )

    labels, noisy = volume
    total = Roi((80, 40, 40), Coordinate(noisy.shape[1:]) * VOXEL)
    post = AgglomerationPostProcessor(OFFSETS, thresholds=[0.3], seed_distance=3)
    post.set_prediction(Array(noisy, offset=total.offset, voxel_size=VOXEL))
    one = post.process(next(iter(post.enumerate_parameters())), tmp_path / "one.zarr" / "s")
    geometry = BlockGeometry(total, VOXEL, total.shape, post.fragments_context * VOXEL)

    def block(context):
        return BlockInfo(total.grow(context, context), total, VOXEL, 0)

    def read(data, b):
        return read_padded(data, total, VOXEL, b.read_roi)

    b = block(geometry.context)
    fragments = fragments_block(read(noisy, b), b, geometry=geometry, channels=post.channels,
                                threshold=0.5, seed_distance=3)
    store = GraphStore(dims=3, sqlite_path=str(tmp_path / "g.db"))
    store.create()
    b = block(post.edges_context * VOXEL)
    edges_block(read(noisy, b), read(fragments, b), b, geometry=geometry,
                channels=post.channels, quantile=75, store=store)
    global_luts(store, [0.3], [tmp_path / "lut.npz"])
    seg = relabel_block(fragments, block(Coordinate(0, 0, 0)), lut=str(tmp_path / "lut.npz"))
    assert same_partition(seg, one[one.roi])
    np.testing.assert_array_equal(fragments, post._one_block[0])  # ids from seed positions


def test_sqlite_equals_postgresql(blockwise, postgres_url):
    """The same blockwise run through PostgreSQL
    gives the same edges, merge levels and segmentation."""
    post = AgglomerationPostProcessor(OFFSETS, thresholds=[0.3], seed_distance=3,
                                      db_url=postgres_url)
    post.set_prediction(blockwise["path"])
    out = post.process(blockwise["params"], blockwise["tmp"] / "o.zarr" / "pg",
                       BlockwiseOptions(num_workers=1), block_size=Coordinate(16, 16, 16) * VOXEL)
    assert post._blockwise["store"].kind == "postgresql"
    np.testing.assert_array_equal(out[out.roi], blockwise["seg"])
    for a, b in zip(read_edges(post._blockwise["store"]), blockwise["edges"]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- config


def test_config_selects_post_processor():
    base = dict(name="a", neighborhood=OFFSETS)
    task = AffinitiesTaskConfig(**base).build()
    assert isinstance(task.post_processor, WatershedPostProcessor)
    assert [p.bias for p in task.parameters][:5] == [0.1, 0.25, 0.5, 0.75, 0.9]
    config = AffinitiesTaskConfig(**base, post_processor="agglomeration",
                                  agglomeration_thresholds=[0.2, 0.4])
    task = config.build()
    assert isinstance(task.post_processor, AgglomerationPostProcessor)
    assert [p.threshold for p in task.parameters] == [0.2, 0.4]
    assert all(isinstance(p, AgglomerationPostProcessorParameters) for p in task.parameters)
    for bad, text in (
        (dict(post_processor="waterz"), "post_processor"),
        (dict(agglomeration_quantile=77), "agglomeration_quantile"),
        (dict(agglomeration_thresholds=[0.5, 0.5]), "agglomeration_thresholds"),
        (dict(agglomeration_db_url="mysql://x"), "agglomeration_db_url"),
        (dict(post_processor="agglomeration", neighborhood=[(1, 0, 0), (0, 1, 0), (0, 0, 2)]),
         "neighborhood: the agglomeration needs"),
    ):
        ok, message = AffinitiesTaskConfig(**{**base, **bad}).verify()
        assert not ok and text in message, message


def test_long_range_bias_offset(volume, tmp_path):
    """The offset raises the bias of the long-range channels only."""
    labels, noisy = volume
    post = WatershedPostProcessor(OFFSETS, biases=[0.4], long_range_bias_offset=0.2)
    post.set_prediction(Array(noisy, offset=(80, 40, 40), voxel_size=VOXEL))
    seg = post.process(WatershedPostProcessorParameters(0, bias=0.4), tmp_path / "o.zarr/s")
    expected = segment(noisy, OFFSETS, [0.4, 0.4, 0.4, 0.6, 0.6, 0.6])
    assert same_partition(seg[seg.roi], expected)
    assert not same_partition(expected, segment(noisy, OFFSETS, 0.4))
