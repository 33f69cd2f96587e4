"""A collection of 2D images of different sizes, end to end with the real pipeline: convert,
plan (one train dataset per image, the last one held out), train 2 iterations, validate
(the object-matching scores in validation_scores.csv equal a brute-force reference on the
written segmentations), apply per image; and a network never mixes two images: a constant
image's prediction inside a collection equals its prediction alone."""

from __future__ import annotations

import csv
import json
import math

import attr
import numpy as np
import pytest
import tifffile
from funlib.geometry import Roi
from scipy import ndimage

from dacapo.errors import InputError
from dacapo.io.arrays import open_array
from dacapo.io.ome_write import prepare_ome
from dacapo.pipeline.apply import apply_run
from dacapo.pipeline.predict_options import PredictOptions
from dacapo.pipeline.validate import validate_run
from dacapo.planning.collection_plan import collection_datasets, plan_collection
from dacapo.tools.convert_collection import convert_collection
from dacapo.training.loop import train_run
from tests.references import blob_labels, brute_object_scores

SHAPES = {"a": (40, 52), "b": (46, 44), "c": (52, 60)}
MATCHING = ("f1", "ap50", "map", "f1_50_95", "precision", "recall")


def _write_images(folder, shapes, constant=()):
    folder.mkdir()
    for i, (name, shape) in enumerate(shapes.items()):
        labels = blob_labels(shape, 8, seed=i, background=0.4).astype(np.uint16)
        raw = ndimage.gaussian_filter((labels > 0) * 150.0, 1.5) + 40
        raw += np.random.default_rng(i).normal(0, 10, shape)
        if name in constant:
            raw[:] = 90
        tifffile.imwrite(folder / f"{name}_raw.tif", np.clip(raw, 0, 255).astype(np.uint8))
        tifffile.imwrite(folder / f"{name}_labels.tif", labels)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The collection converted, planned (instances post-processing, so that the instance
    criteria are scored) and trained for 2 iterations with a validation at 2."""
    root = tmp_path_factory.mktemp("collection")
    coll = convert_collection(_write_images(root / "tiffs", SHAPES), root / "coll.zarr", (4, 4))
    rc, text = plan_collection(str(root / "coll.zarr"), "inner_distance", minutes=0.1,
                              num_fmaps=4)
    task = attr.evolve(rc.task_config, post_processor="instances", seed_thresholds=[0.001, 0.01],
                       thresholds=[0.0])
    rc = attr.evolve(rc, task_config=task, num_iterations=2, validation_interval=2,
                     checkpoint_interval=2, snapshot_interval=0,
                     trainer_config=attr.evolve(rc.trainer_config, num_data_workers=0))
    run_dir = train_run(rc, root / "runs", progress=False)
    # validated again with thresholds inside the 2-iteration model's narrow output range
    # (so that the segmentation holds objects) against a GT made from that output (its
    # connected components above the threshold, specks dropped, the largest eroded), so that
    # the object-matching scores lie strictly between 0 and 1
    pred = open_array(run_dir.predictions / "00000002" / "c.zarr" / "prediction").data
    low, high = (float(np.quantile(pred, q)) for q in (0.5, 0.8))
    truth, _ = ndimage.label(np.asarray(pred) > low)
    ids, sizes = np.unique(truth, return_counts=True)
    truth[np.isin(truth, ids[(sizes <= 2) & (ids != 0)])] = 0
    big = ids[1:][np.argmax(sizes[1:])]
    truth[(truth == big) & ~ndimage.binary_erosion(truth == big, iterations=2)] = 0
    labels = prepare_ome(root / "check.zarr" / "labels", Roi((0, 0), (208, 240)), (4, 4),
                         np.uint64, label=True)
    labels[labels.roi] = truth.astype(np.uint64)
    dataset = attr.evolve(rc.datasplit_config.validate[0], gt=str(root / "check.zarr" / "labels"))
    rc = attr.evolve(rc, task_config=attr.evolve(task, thresholds=[low], seed_thresholds=[high]),
                     datasplit_config=attr.evolve(rc.datasplit_config, validate=[dataset]))
    validate_run(run_dir, 2, PredictOptions(num_workers=0), run_config=rc)
    run_dir.save_config(rc)  # apply takes the best parameters of this sweep
    return rc, text, run_dir, coll, root


def test_plan_is_2d_with_one_dataset_per_image(run):
    rc, text, _, coll, _ = run
    assert [i.name for i in coll] == ["a", "b", "c"]
    assert [d.raw for d in rc.datasplit_config.train] == [coll[0].raw, coll[1].raw]
    (val,) = rc.datasplit_config.validate
    assert (val.name, val.raw) == ("c", coll[2].raw)
    assert len(rc.architecture_config.input_shape) == 2  # a 2D network
    assert "'c' held out for validation (the last labelled one by name)" in text
    assert f"gt: {coll[2].labels}" in text


def test_validation_scores_equal_brute_force_on_written_segmentations(run):
    rc, _, run_dir, coll, _ = run
    with open(run_dir.path / "validation_scores.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["criterion"] in MATCHING]
    assert {r["dataset"] for r in rows} == {"c"} and {r["iteration"] for r in rows} == {"2"}
    truth = np.asarray(open_array(rc.datasplit_config.validate[0].gt).data)
    checked, values, brute = set(), [], {}
    for r in rows:
        seg_id = json.loads(r["parameters"])["id"]
        if seg_id not in brute:
            seg = open_array(run_dir.predictions / "00000002" / "c.zarr" / f"segmentation_{seg_id}")
            assert seg.voxel_size.dims == 2 and seg.shape == truth.shape  # the whole image
            brute[seg_id] = brute_object_scores(np.asarray(seg.data), truth)
        want, got = brute[seg_id][r["criterion"]], float(r["value"])
        values.append(got)
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)
        checked.add(r["criterion"])
    assert checked == set(MATCHING)
    assert any(0 < v < 1 for v in values), values  # not only empty or degenerate cases


def test_apply_to_one_image_of_the_collection(run, tmp_path):
    _, _, run_dir, coll, _ = run
    out = apply_run(run_dir.path, coll[0].raw, tmp_path / "out.zarr" / "a",
                    PredictOptions(padding="zero", num_workers=0))
    assert out.voxel_size.dims == 2 and tuple(out.shape) == SHAPES["a"]


def test_apply_a_whole_collection_in_one_command(run, tmp_path):
    """``dacapo apply --input COLLECTION``: every image into OUTPUT/<image>, each the same
    as applying that image alone."""
    from click.testing import CliRunner

    from dacapo.cli.main import cli

    _, _, run_dir, coll, root = run
    container = str(root / "coll.zarr")
    result = CliRunner().invoke(cli, ["apply", str(run_dir.path), "--input", container,
                                      "--output", str(tmp_path / "all.zarr"), "--workers", "0",
                                      "--padding", "zero", "--quiet"])
    assert result.exit_code == 0, result.output
    for image in coll:
        assert f"wrote {tmp_path / 'all.zarr' / image.name} (shape {SHAPES[image.name]}" in result.output
        alone = apply_run(run_dir.path, image.raw, tmp_path / "one.zarr" / image.name,
                          PredictOptions(padding="zero", num_workers=0))
        together = open_array(tmp_path / "all.zarr" / image.name)
        np.testing.assert_array_equal(np.asarray(together.data), np.asarray(alone.data))


def test_a_network_never_mixes_two_images(run, tmp_path):
    """Image 'a' constant beside a textured 'b' of another size: 'a''s prediction from the
    collection equals that of 'a' converted alone, and is the same at every interior pixel
    (a network reading 'b' would make it vary)."""
    _, _, run_dir, _, _ = run
    together = convert_collection(_write_images(tmp_path / "ab", SHAPES, constant="a"),
                                  tmp_path / "ab.zarr", (4, 4))
    alone = convert_collection(_write_images(tmp_path / "a", {"a": SHAPES["a"]}, constant="a"),
                               tmp_path / "a.zarr", (4, 4))
    options = PredictOptions(padding="reflect", num_workers=0)
    preds = []
    for image, name in ((together[0], "x"), (alone[0], "y")):
        apply_run(run_dir.path, image.raw, tmp_path / "out.zarr" / name, options)
        preds.append(np.asarray(open_array(tmp_path / "out.zarr" / f"{name}_prediction").data))
    np.testing.assert_array_equal(preds[0], preds[1])
    assert np.ptp(preds[0]) <= 1e-5 * max(1.0, float(np.abs(preds[0]).max()))


def test_collection_datasets_rules(tmp_path):
    coll = convert_collection(_write_images(tmp_path / "t", {"x": (20, 20), "y": (24, 20)}),
                              tmp_path / "c.zarr", (4, 4))
    gts, raws, val, _ = collection_datasets(str(tmp_path / "c.zarr"),
                                            [("x", coll[0].raw, coll[0].labels)])
    assert raws == [coll[1].raw] and val == [("x", coll[0].raw, coll[0].labels)]
    (tmp_path / "one").mkdir()
    tifffile.imwrite(tmp_path / "one" / "z.tif", np.zeros((20, 20), np.uint8))
    convert_collection(tmp_path / "one", tmp_path / "one.zarr", (4, 4))
    with pytest.raises(InputError, match="no image has labels"):
        collection_datasets(str(tmp_path / "one.zarr"))


def test_a_held_out_image_is_a_valid_dataset_name(tmp_path):
    from dacapo.experiments.datasplits import NAME
    from dacapo.experiments.datasplits import as_dataset_name as dataset_name

    assert dataset_name("img 01") == "img_01" and dataset_name(".hidden") == "_hidden"
    assert all(NAME.fullmatch(dataset_name(n)) for n in ("img 01", ".x", "a/b", "ü", "ok-1.t"))
    coll = convert_collection(_write_images(tmp_path / "t", {"a 1": (20, 20), "b 2": (20, 20)}),
                              tmp_path / "c.zarr", (4, 4))
    _, _, val, _ = collection_datasets(str(tmp_path / "c.zarr"))
    assert val == [("b_2", coll[1].raw, coll[1].labels)]
