"""Fragments + agglomeration: kernels vs brute-force twins and waterz, recovery of known
labels, blockwise vs one block, SQLite vs PostgreSQL (a throwaway server when available)."""

from __future__ import annotations

import heapq
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from funlib.geometry import Coordinate
from funlib.persistence import Array
from scipy import ndimage

from dacapo.blockwise import BlockwiseOptions
from dacapo.experiments.tasks import AffinitiesTaskConfig
from dacapo.experiments.tasks.post_processors import (
    AgglomerationPostProcessor,
    AgglomerationPostProcessorParameters,
    WatershedPostProcessor,
    WatershedPostProcessorParameters,
)
from dacapo.ops.affinities import affinities
from dacapo.ops.agglomeration import (
    agglomerate_edges,
    boundary_map,
    merge_scores,
    nearest_neighbour_affinities,
    nearest_neighbour_channels,
    region_adjacency,
    relabel,
    scoring_function,
    seeds,
    watershed_fragments,
    waterz_affinities,
)
from dacapo.ops.instance_metrics import instance_metrics
from dacapo.ops.watershed import segment
from tests.segment.references import VOXEL, full_voi, make_labels

waterz = pytest.importorskip("waterz")

NN = [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
OFFSETS = NN + [(2, 0, 0), (0, 4, 0), (0, 0, 4)]


def noisy_affinities(labels, offsets=OFFSETS, noise=0.12, seed=1):
    """GT affinities, contrast 0.1..0.9, blurred (sigma 1 voxel) and with Gaussian noise."""
    affs = affinities(labels, offsets).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.stack([ndimage.gaussian_filter(0.1 + 0.8 * a, 1.0) for a in affs])
    return np.clip(out + rng.normal(0, noise, out.shape), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def volume():
    labels = make_labels((32, 32, 32), num=12)
    return labels, noisy_affinities(labels)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def labelled_voi(seg: np.ndarray, ref: np.ndarray, truth: np.ndarray) -> float:
    """VOI between two segmentations on the voxels the GT labels (gaps excluded)."""
    inside = truth != 0
    return full_voi(seg[inside], ref[inside])


# ---------------------------------------------------------------- kernels vs twins


def brute_minimax(surface: np.ndarray, sources: list[tuple]) -> np.ndarray:
    """Smallest possible highest surface value on a face-connected path from the sources."""
    cost = np.full(surface.shape, np.inf)
    heap = []
    for s in sources:
        cost[s] = surface[s]
        heap.append((surface[s], s))
    heapq.heapify(heap)
    while heap:
        c, p = heapq.heappop(heap)
        if c > cost[p]:
            continue
        for d in range(surface.ndim):
            for step in (-1, 1):
                q = list(p)
                q[d] += step
                q = tuple(q)
                if 0 <= q[d] < surface.shape[d]:
                    nc = max(c, surface[q])
                    if nc < cost[q]:
                        cost[q] = nc
                        heapq.heappush(heap, (nc, q))
    return cost


@pytest.mark.parametrize("seed", [0, 1])
def test_watershed_fragments_are_minimax_floods(seed):
    """Every voxel gets a seed that reaches it by a path of smallest highest boundary value;
    each fragment holds exactly one seed plateau; seeds are the mask's distance maxima."""
    rng = np.random.default_rng(seed)
    affs = ndimage.gaussian_filter(rng.random((3, 7, 9, 10)), (0, 1, 1, 1)).astype(np.float32)
    affs = (affs - affs.min()) / (affs.max() - affs.min())
    frag = watershed_fragments(affs, threshold=0.45, seed_distance=3)
    markers = seeds(affs, threshold=0.45, seed_distance=3)
    # seeds twin: plateaus of voxels in the mask equal to the max of their 3-cube
    mask = affs.mean(0) > 0.45
    dist = ndimage.distance_transform_edt(mask)
    brute = np.zeros(mask.shape, bool)
    for p in itertools.product(*map(range, mask.shape)):
        window = tuple(slice(max(c - 1, 0), c + 2) for c in p)
        brute[p] = mask[p] and np.isclose(dist[p], dist[window].max())
    np.testing.assert_array_equal(markers != 0, brute)
    assert markers.max() >= 2
    surface = boundary_map(affs)
    np.testing.assert_allclose(surface, 1 - affs.mean(0), atol=1e-6)
    costs = {}
    for k in range(1, int(markers.max()) + 1):
        costs[k] = brute_minimax(surface, [tuple(p) for p in np.argwhere(markers == k)])
    best = np.min(np.stack(list(costs.values())), axis=0)
    assert (frag != 0).all()
    for k, cost in costs.items():
        inside = frag == np.uint64(k)
        np.testing.assert_allclose(cost[inside], best[inside], atol=1e-6)
        assert set(np.unique(frag[markers == k])) == {k}  # the seed keeps its label
    # one connected component per fragment
    for k in np.unique(frag):
        assert ndimage.label(frag == k)[1] == 1


def brute_region_adjacency(fragments, affs, quantile):
    samples = defaultdict(list)
    for p in itertools.product(*map(range, fragments.shape)):
        for d in range(fragments.ndim):
            q = list(p)
            q[d] += 1
            q = tuple(q)
            if q[d] >= fragments.shape[d]:
                continue
            a, b = int(fragments[p]), int(fragments[q])
            if a != b and a and b:
                samples[(min(a, b), max(a, b))].append(float(affs[d][p]))
    out = {}
    for pair, values in samples.items():
        bins = sorted(min(int(np.float32(v) * np.float32(256)), 255) if v > 0 else 0
                      for v in values)
        pick = bins[quantile * len(bins) // 100]
        out[pair] = (1 - (pick + 0.5) / 256, len(values))
    return out


def test_region_adjacency_brute_force_and_waterz(volume):
    """Edges, contact areas and histogram-quantile scores: a per-voxel loop and waterz's
    own initial region graph (scores at threshold 0) agree with `region_adjacency`."""
    labels, noisy = volume
    affs = noisy[:3, :12, :14, :16]
    frag = watershed_fragments(affs, seed_distance=2)
    frag[frag == 3] = 0  # a hole: no edges with 0
    edges, scores, areas = region_adjacency(frag, affs, 75)
    brute = brute_region_adjacency(frag, affs, 75)
    assert len(edges) > 10 and {tuple(e) for e in edges.tolist()} == set(brute)
    for (a, b), s, n in zip(edges.tolist(), scores, areas):
        assert abs(s - brute[(a, b)][0]) < 1e-6 and n == brute[(a, b)][1]
    (_, graph), = list(waterz.agglomerate(
        waterz_affinities(affs), [0.0], fragments=frag.copy(),
        scoring_function=scoring_function(75), return_region_graph=True))
    ref = {(min(e["u"], e["v"]), max(e["u"], e["v"])): e["score"] for e in graph}
    assert ref == {tuple(e): float(s) for e, s in zip(edges.tolist(), scores)}


def test_merge_levels_cut_equals_waterz(volume):
    """Components of the edges with merge level < t are waterz's segmentation at t."""
    labels, noisy = volume
    affs = noisy[:3]
    frag = watershed_fragments(affs, seed_distance=4)
    edges, levels, _, _ = merge_scores(frag, affs, 50)
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    ref = waterz.agglomerate(waterz_affinities(affs), thresholds, fragments=frag.copy(),
                             scoring_function=scoring_function(50))
    counts = []
    for t, expected in zip(thresholds, ref):
        seg = relabel(frag, *agglomerate_edges(edges, levels, t))
        assert same_partition(seg, expected), t
        counts.append(len(np.unique(seg)))
    assert counts[0] > counts[-1] >= 1 and len(set(counts)) >= 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agglomerate_edges_brute_force(seed):
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**6, 40, replace=False).astype(np.uint64)
    edges = np.sort(ids[rng.integers(0, 40, (60, 2))], axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    levels = rng.random(len(edges)).astype(np.float32)
    got_ids, roots = agglomerate_edges(edges, levels, 0.4)
    parent = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for (a, b), level in zip(edges.tolist(), levels):
        if level < np.float32(0.4):
            ra, rb = find(a), find(b)
            parent[max(ra, rb)] = min(ra, rb)
    joined = {x for x in parent if any(find(y) == find(x) for y in parent if y != x)}
    assert sorted(joined) == got_ids.tolist()
    assert [find(int(x)) for x in got_ids] == roots.tolist()


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


def test_nearest_neighbour_channels_and_shift():
    offsets = [(0, 0, -1), (2, 0, 0), (-1, 0, 0), (0, 1, 0)]
    assert nearest_neighbour_channels(offsets) == [(2, -1), (3, 1), (0, -1)]
    with pytest.raises(ValueError, match=r"missing \[\(0, 0, 1\)\]"):
        nearest_neighbour_channels([(1, 0, 0), (0, 1, 0), (0, 0, 3)])
    labels = make_labels((8, 9, 10), num=4)
    ours = affinities(labels, NN)
    theirs = affinities(labels, [(-1, 0, 0), (0, -1, 0), (0, 0, -1)]).astype(np.float32)
    shifted = nearest_neighbour_affinities(theirs, [(0, -1), (1, -1), (2, -1)])
    # the last voxel of each axis has no +e_d partner: 0 after the shift
    for d in range(3):
        inner = [slice(None)] * 3
        inner[d] = slice(None, -1)
        np.testing.assert_array_equal(shifted[d][tuple(inner)], ours[d][tuple(inner)])
    np.testing.assert_array_equal(nearest_neighbour_affinities(ours * 255, [(0, 1), (1, 1), (2, 1)]),
                                  ours.astype(np.float32))


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


def _pg_server():
    """A throwaway PostgreSQL cluster (initdb + pg_ctl, Unix socket only) or a reason."""
    binaries = [shutil.which("initdb"), shutil.which("pg_ctl")]
    if None in binaries:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            return None, "no initdb/pg_ctl (apt-get install postgresql)"
        binaries = [str(found[-1]), str(found[-1].with_name("pg_ctl"))]
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return None, "psycopg2 is not installed"
    initdb, pg_ctl = binaries
    root = Path(tempfile.mkdtemp(prefix="pg"))
    prefix = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        if shutil.which("runuser") is None:
            return None, "running as root without runuser"
        try:
            shutil.chown(root, user="postgres")
        except (LookupError, PermissionError) as e:
            return None, f"running as root and no 'postgres' user ({e})"
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        subprocess.run(prefix + [initdb, "-D", str(root / "data"), "-A", "trust", "-U",
                                 "postgres"], check=True, capture_output=True, timeout=120)
        subprocess.run(prefix + [pg_ctl, "-D", str(root / "data"), "-l", str(root / "log"),
                                 "-w", "-o", f"-k {root} -p {port} -c listen_addresses=''",
                                 "start"], check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(root, ignore_errors=True)
        return None, f"could not start PostgreSQL: {getattr(e, 'stderr', e)!r}"

    def stop():
        subprocess.run(prefix + [pg_ctl, "-D", str(root / "data"), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)

    return (f"postgresql://postgres@:{port}/dacapo_test?host={root}", stop), None


@pytest.fixture(scope="module")
def postgres_url():
    server, reason = _pg_server()
    if server is None:
        print(f"PostgreSQL test skipped: {reason}")
        pytest.skip(reason)
    url, stop = server
    yield url
    stop()


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
    edges = post._blockwise["edges"]
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
        global_lut,
        read_edges,
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
    store.open("w").close()
    b = block(post.edges_context * VOXEL)
    edges_block(read(noisy, b), read(fragments, b), b, geometry=geometry,
                channels=post.channels, quantile=75, store=store)
    global_lut(*read_edges(store), 0.3, tmp_path / "lut.npz")
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
    for a, b in zip(post._blockwise["edges"], blockwise["edges"]):
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
