"""`benchmarks/_data.py` and the quality scripts' reading of a data folder (no training).

- our six volumes in ``../shared/data`` resolve to the files, voxel sizes, held-out counts
  and classes the scripts hard-coded before they read them (skipped when the folder is
  absent);
- tiny synthetic datasets in other layouts (``<stem>_raw.tif``, µm voxel sizes keyed by
  stem, a hedging ``voxel_size`` sentence, other class names, 2D frames of other names)
  resolve, and are converted and split like ours;
- a bad folder (labels missing, meta.json unreadable or missing, shapes differ, no voxel
  size, a class list that allows no partial annotation) is one line naming the path, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import _data  # benchmarks/: tests/benchmarks/conftest.py puts it on the path
import numpy as np
import pytest
import quality as q
import quality_far
import quality_modalities as qm
import quality_organelles as qo
import tifffile
from _harness import ROOT, work_dir
from funlib.persistence import open_ds

OURS = ROOT.parent / "shared" / "data"

#: what the scripts hard-coded for our volumes: files, voxel size (nm), held-out slices
BEFORE = {
    "fibsem_neurons": ("raw.tif", "labels.tif", (10, 10, 10), 15, 50),
    "lm_nuclei": ("1135_raw.tif", "1135_labels.tif", (284, 127, 127), 30, 100),
    "sstem_membranes": ("raw.tif", "labels.tif", (50, 4, 4), 5, 20),
    "lm_cells_3d": ("raw.tif", "labels.tif", (235, 150, 150), 16, 64),
}
ORGANELLE_CLASSES = ["membrane", "glia_extracellular", "mitochondrion", "synapse", "cytoplasm"]


def write_volume(folder: Path, shape=(10, 16, 12), meta: dict | None = None,
                 raw_name="raw.tif", labels_name: str | None = "labels.tif",
                 labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    raw = rng.integers(0, 255, shape, dtype=np.uint8)
    if labels is None:
        labels = np.zeros(shape, np.uint16)
        labels[:, 2:8, 3:9] = 1
    tifffile.imwrite(folder / raw_name, raw)
    if labels_name:
        tifffile.imwrite(folder / labels_name, labels)
    if meta is not None:
        (folder / "meta.json").write_text(json.dumps(meta))
    return raw, labels


def _read(path: str) -> np.ndarray:
    arr = open_ds(path, mode="r")
    return np.asarray(arr[arr.roi])


# --------------------------------------------------------------------------
# our six volumes: as hard-coded before
# --------------------------------------------------------------------------


@pytest.fixture
def ours() -> Path:
    if not (OURS / "README.md").is_file():
        pytest.skip(f"our real volumes are absent: no {OURS}")
    return OURS


def test_our_3d_volumes_resolve_as_hard_coded_before(ours):
    assert list(q.DATASETS) == list(BEFORE)
    for name, (raw, labels, voxel, holdout, depth) in BEFORE.items():
        vol = q.resolve(name, ours)
        assert (vol.raw.name, vol.labels.name) == (raw, labels), name
        assert vol.voxel_size == voxel and vol.grid_voxel == voxel, name
        assert all(isinstance(v, int) for v in vol.voxel_size), name
        assert vol.shape[0] == depth and _data.split(vol, q.DATASETS[name]["holdout"]) == holdout
        assert vol.classes is None
        # assumed only where the source states none (the cells), and said so
        assert bool(vol.voxel_assumed) == (name == "lm_cells_3d"), name
    assert [q.DATASETS[n]["context_z"] for n in BEFORE] == [16, 16, 2, 16]
    cells = q.resolve("lm_cells_3d", ours)
    assert "not stated" in cells.voxel_assumed and "assumed 235 × 150 × 150 nm" in cells.notes[0]


def test_our_organelles_and_2d_frames_resolve_as_hard_coded_before(ours):
    vol, lay, notes = qo.resolve(ours)
    assert (vol.raw.name, vol.labels.name, vol.shape) == ("raw.tif", "classes.tif",
                                                          (12, 1024, 1024))
    assert vol.voxel_size == (50, 4.6, 4.6) and vol.voxel_assumed is None
    assert vol.grid_voxel == (50, 4, 4)  # funlib's Coordinate((50, 4.6, 4.6)), as before
    assert lay["classes"] == ORGANELLE_CLASSES and lay["values"] == [1, 2, 3, 4, 5]
    assert not lay["classes_assumed"] and lay["instance"] == "mitochondrion"
    roles = _data.PartialRoles(**lay["partial"])
    assert roles.unannotated() == {"a": "synapse", "b": "mitochondrion"}
    assert roles.other == "cytoplasm" and lay["no_partial"] is None
    assert _data.split(vol, qo.HOLDOUT) == 3 and qo.CONTEXT == 2
    assert any("not whole nm" in n for n in notes)
    frames, held = qm.resolve_2d(ours)
    assert frames.names == [f"gowt1_t{t}" for t in ("01", "21", "31", "39", "52", "72")]
    assert held == ["gowt1_t52", "gowt1_t72"]
    assert frames.voxel_size == (240, 240) and frames.voxel_assumed is None
    assert all(lab.name == f"{n}_labels.tif" for n, (_, lab) in frames.images.items())


def test_work_folder_is_ours_for_our_data_and_separate_for_another(tmp_path):
    assert work_dir(OURS) == ROOT / "quality_runs"
    other = work_dir(tmp_path / "theirs")
    assert other.parent == ROOT / "quality_runs" and other.name.startswith("theirs-")


# --------------------------------------------------------------------------
# other volumes of the same kinds
# --------------------------------------------------------------------------


def test_stem_pair_with_um_voxel_sizes_keyed_by_stem(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "lm_nuclei"
    meta = {"voxel_size_um_zyx": {"7": [0.5004, 0.2, 0.2], "other": [1, 1, 1]}}
    raw, labels = write_volume(folder, (10, 16, 12), meta, "7_raw.tif", "7_labels.tif")
    vol = q.resolve("lm_nuclei", folder.parent)
    assert (vol.raw.name, vol.labels.name, vol.shape) == ("7_raw.tif", "7_labels.tif",
                                                          (10, 16, 12))
    assert vol.voxel_size == (500, 200, 200) and vol.voxel_assumed is None and not vol.notes
    assert _data.split(vol, q.DATASETS["lm_nuclei"]["holdout"]) == 3  # 0.3 of 10
    paths = q.prepare_data("lm_nuclei", folder.parent, tmp_path / "work")
    val_gt, val_raw = open_ds(paths["validate/gt"], mode="r"), open_ds(paths["validate/raw"], mode="r")
    assert tuple(val_gt.voxel_size) == (500, 200, 200) and val_gt.roi.offset[0] == 7 * 500
    np.testing.assert_array_equal(val_gt[val_gt.roi], (labels[7:] > 0).astype(np.uint8))
    np.testing.assert_array_equal(val_raw[val_raw.roi], raw)  # 7 < 16 slices of context
    # kept while the files are the same; converted again when they change
    stamp = (tmp_path / "work" / "lm_nuclei.zarr" / ".prepared").read_text()
    assert q.prepare_data("lm_nuclei", folder.parent, tmp_path / "work") == paths
    write_volume(folder, (10, 16, 12), None, "7_raw.tif", "7_labels.tif",
                 labels=np.ones((10, 16, 12), np.uint16))
    q.prepare_data("lm_nuclei", folder.parent, tmp_path / "work")
    assert (tmp_path / "work" / "lm_nuclei.zarr" / ".prepared").read_text() != stamp
    arr = open_ds(paths["validate/gt"], mode="r")
    assert np.asarray(arr[arr.roi]).min() == 1


def test_hedged_sentence_and_missing_voxel_size_are_assumed_and_said(tmp_path, capsys):
    folder = tmp_path / "lm_cells_3d"
    write_volume(folder, meta={"voxel_size": "unknown; roughly 0.3 x 0.2 x 0.2 µm"})
    vol = q.resolve("lm_cells_3d", tmp_path)
    assert vol.voxel_size == (300, 200, 200) and "roughly" in vol.voxel_assumed
    write_volume(folder, meta={"voxel_size": "2 × 1 × 1 nm"})  # stated, not hedged
    assert q.resolve("lm_cells_3d", tmp_path).voxel_assumed is None
    write_volume(folder, meta={"what": "no voxel size"})
    vol = q.resolve("lm_cells_3d", tmp_path)  # the kind's default
    assert vol.voxel_size == (235, 150, 150) and "states none" in vol.voxel_assumed
    _data.tell("lm_cells_3d", vol.notes)
    assert "lm_cells_3d: voxel size assumed 235 × 150 × 150 nm" in capsys.readouterr().out
    with pytest.raises(_data.DataError, match="states no voxel size"):
        _data.volume(folder)  # no default for this kind


def test_2d_frames_of_other_names(tmp_path):
    folder = tmp_path / "lm_nuclei_2d"
    folder.mkdir()
    for name in ("c", "a", "b"):
        tifffile.imwrite(folder / f"{name}_raw.tif", np.zeros((8, 6), np.uint8))
        tifffile.imwrite(folder / f"{name}_labels.tif", np.zeros((8, 6), np.uint16))
    (folder / "meta.json").write_text(json.dumps({"pixel_size_um": [0.5, 0.25]}))
    frames, held = qm.resolve_2d(tmp_path)
    assert frames.names == ["a", "b", "c"] and held == ["b", "c"]
    assert frames.voxel_size == (500, 250)
    assert qm.resolve_2d(tmp_path, "a,c")[1] == ["a", "c"]
    with pytest.raises(_data.DataError, match="'gowt1_t52', which is not there"):
        qm.resolve_2d(tmp_path, "gowt1_t52,gowt1_t72")
    (folder / "a_labels.tif").unlink()
    with pytest.raises(_data.DataError, match="no labels for a_raw.tif"):
        qm.resolve_2d(tmp_path)


def test_organelles_of_other_class_values_and_names(tmp_path):
    labels = np.zeros((8, 8, 6), np.uint8)  # 0 is no class: not annotated
    labels[:, :4] = 7
    labels[:, 4:, :3] = 2
    labels[:, 4:, 3:] = 9
    meta = {"voxel_size_nm_zyx": [40, 8, 8],
            "classes": {"9": "Background", "2": "mitochondria", "7": "synapses"}}
    labels[0, 0, 0] = 0
    write_volume(tmp_path / "sstem_organelles", (8, 8, 6), meta, labels_name="labels.tif",
                 labels=labels)
    vol, lay, _ = qo.resolve(tmp_path)
    assert lay["classes"] == ["mitochondria", "synapses", "Background"]  # by label value
    assert lay["instance"] == "mitochondria" and lay["partial"] == {
        "instance": "mitochondria", "rare": "synapses", "other": "Background"}
    paths = qo.prepare(tmp_path, tmp_path / "work")
    gt = open_ds(paths["validate/gt"], mode="r")
    assert gt.roi.offset[0] == 6 * 40  # the last quarter of 8 sections: 2
    full = _read(paths["full/a/gt"])
    assert full[0, 0, 0] == qo.UNKNOWN and set(np.unique(full[1:])) == {1}
    naive_b = _read(paths["naive/b/gt"])
    assert set(np.unique(naive_b)) == {2}  # crop B's mitochondria called "Background"
    assert qo.layout(paths) == lay


def test_organelles_whose_classes_allow_no_partial_annotation(tmp_path, capsys):
    meta = {"voxel_size_nm_zyx": [40, 8, 8], "classes": {"1": "membrane", "2": "vesicle"}}
    write_volume(tmp_path / "sstem_organelles", (8, 8, 6), meta, labels_name="classes.tif",
                 labels=np.ones((8, 8, 6), np.uint8))
    _, lay, _ = qo.resolve(tmp_path)
    assert lay["instance"] is None and lay["partial"] is None
    rc = qo.main(["--data", str(tmp_path), "--variants", "full,partial"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith(f"quality_organelles: {tmp_path / 'sstem_organelles' / 'meta.json'}: ")
    assert "mitochondri*" in err and "--variants full" in err
    paths = qo.prepare(tmp_path, tmp_path / "work")  # full annotation still prepares
    assert "naive/a/gt" not in paths and Path(paths["full/b/gt"]).exists()


# --------------------------------------------------------------------------
# bad folders: one line, exit 2
# --------------------------------------------------------------------------


def _no_labels(folder: Path) -> Path:
    write_volume(folder, meta={"voxel_size_nm_zyx": [1, 1, 1]}, labels_name=None)
    return folder / "labels.tif"


def _bad_json(folder: Path) -> Path:
    write_volume(folder)
    (folder / "meta.json").write_text('{"voxel_size_nm_zyx": [1, 1, 1],}')
    return folder / "meta.json"


def _no_meta(folder: Path) -> Path:
    write_volume(folder)
    return folder / "meta.json"


def _other_shape(folder: Path) -> Path:
    write_volume(folder, meta={"voxel_size_nm_zyx": [1, 1, 1]})
    tifffile.imwrite(folder / "labels.tif", np.zeros((10, 16, 11), np.uint16))
    return folder / "labels.tif"


def _not_a_tiff(folder: Path) -> Path:
    write_volume(folder, meta={"voxel_size_nm_zyx": [1, 1, 1]})
    (folder / "raw.tif").write_bytes(b"not a tiff")
    return folder / "raw.tif"


def _no_unit(folder: Path) -> Path:
    write_volume(folder, meta={"voxel_size": [1, 1, 1]})
    return folder / "meta.json"


def _two_raws(folder: Path) -> Path:
    write_volume(folder, meta={"voxel_size_nm_zyx": [1, 1, 1]})
    write_volume(folder, raw_name="x_raw.tif", labels_name="x_labels.tif")
    return folder


@pytest.mark.parametrize("make, problem", [
    (_no_labels, "missing: no labels for raw.tif"), (_bad_json, "unreadable"),
    (_no_meta, "missing: each dataset folder needs a meta.json"),
    (_other_shape, "has shape (10, 16, 11)"), (_not_a_tiff, "not a readable TIFF"),
    (_no_unit, "has no unit"), (_two_raws, "2 raw TIFFs"),
])
def test_bad_folder_is_one_line_naming_the_path(tmp_path, capsys, make, problem):
    path = make(tmp_path / "fibsem_neurons")
    rc = q.main(["--data", str(tmp_path), "--datasets", "fibsem_neurons", "--no-doc",
                 "--work", str(tmp_path / "work")])
    out = capsys.readouterr()
    assert rc == 2 and out.err.count("\n") == 1 and "Traceback" not in out.err
    assert out.err.startswith(f"quality: {path}: ") and problem in out.err
    assert not (tmp_path / "work").exists()  # stopped before any conversion
    rc = quality_far.main(["--data", str(tmp_path), "--dataset", "fibsem_neurons"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"quality_far: {path}: ") and err.count("\n") == 1


def test_absent_dataset_folders_are_skipped_and_named(tmp_path, capsys):
    write_volume(tmp_path / "lm_nuclei", labels_name=None, meta={"voxel_size_nm_zyx": [1, 1, 1]})
    assert q.main(["--data", str(tmp_path), "--no-doc"]) == 2  # lm_nuclei's labels missing
    out = capsys.readouterr()
    assert "has no folder fibsem_neurons, sstem_membranes, lm_cells_3d: skipped" in out.out
    assert out.err.startswith(f"quality: {tmp_path / 'lm_nuclei' / 'labels.tif'}: missing")
    assert q.main(["--data", str(tmp_path / "empty"), "--no-doc"]) == 2
    assert "holds none of the dataset folders" in capsys.readouterr().err
