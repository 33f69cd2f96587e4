"""``dacapo plan``: the shape arithmetic against the real model, object widths by hand, and
a planned config on the demo data that verifies and trains."""

from __future__ import annotations

import numpy as np
import pytest
from funlib.geometry import Coordinate

from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.tasks import DistanceTaskConfig
from dacapo.ops.planning import level_layout, object_widths, unet_shapes, weighted_median


@pytest.mark.parametrize("shape,factors,k3d", [
    ((12, 64, 64), [(1, 2, 2)], False),
    ((20, 76, 76), [(1, 2, 2), (2, 2, 2)], False),
    ((1, 100, 100), [(1, 2, 2), (1, 2, 2)], False),
    ((44, 44, 44), [(2, 2, 2), (2, 2, 2)], True),
])
def test_unet_shapes_match_the_model(shape, factors, k3d):
    levels = len(factors) + 1
    kd = [[(3, 3, 3)] * 2 if (k3d or i > 0 and shape[0] > 1) else [(1, 3, 3)] * 2
          for i in range(levels)]
    ku = kd[:-1]
    arch = CNNectomeUNetConfig(name="u", input_shape=shape, fmaps_in=1, fmaps_out=5, num_fmaps=3,
                               fmap_inc_factor=2, downsample_factors=factors,
                               kernel_size_down=kd, kernel_size_up=ku)
    model = DistanceTaskConfig("d", channels=["a"], clip_distance=1, tol_distance=1).build() \
        .create_model(arch)
    _, expected = model.compute_output_shape(Coordinate(shape))
    out, macs = unet_shapes(shape, factors, kd, ku, num_fmaps=3, inc=2, fmaps_in=1, fmaps_out=5)
    assert out == tuple(expected)
    # multiply-adds of the first conv by hand: output voxels x kernel volume x 1 x 3
    first = np.prod([s - k + 1 for s, k in zip(shape, kd[0][0])]) * np.prod(kd[0][0]) * 3
    assert macs > first
    # a shape that does not divide by the pooling does not fit
    assert unet_shapes((shape[0], shape[1] + 1, shape[2] + 1), factors, kd, ku) is None


def test_anisotropy_rule():
    factors, kd, _ku, _ = level_layout(Coordinate(40, 8, 8), 3, None, False)
    # 40/8: 2D while z >= 2x in-plane (8, 16), 3D from 32 on
    assert factors == [(1, 2, 2), (1, 2, 2), (2, 2, 2)]
    assert [lvl[0] for lvl in kd] == [(1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3)]
    factors, kd, _, _ = level_layout(Coordinate(10, 10, 10), 2, None, False)
    assert factors == [(2, 2, 2), (2, 2, 2)] and kd[0][0] == (3, 3, 3)


def test_object_widths_of_boxes():
    labels = np.zeros((9, 20, 30), np.uint32)
    labels[1:8, 2:9, 2:18] = 1  # 7 x 7 x 16 voxels: deepest voxel 4 voxels from outside
    labels[1:8, 11:16, 2:28] = 2  # 7 x 5 x 26: 3 voxels
    widths, volumes = object_widths(labels, (1, 1, 1))
    assert widths.tolist() == [8.0, 6.0]
    assert volumes.tolist() == [7 * 7 * 16, 7 * 5 * 26]
    widths, _ = object_widths(labels, (10, 1, 1))  # z is 10x longer: the y distance decides
    assert widths.tolist() == [8.0, 6.0]
    assert weighted_median(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 5])) == 3.0


def test_plan_on_demo_data_verifies_and_trains(tmp_path, tiny_data, dacapo_cli):
    import attr

    from dacapo.experiments.run_config import RunConfig
    from dacapo.io.config_yaml import from_yaml
    from dacapo.planning.planner import plan_run
    from dacapo.runs.verify import run_problems
    from dacapo.training.loop import train_run

    c = tiny_data(tmp_path)
    val = f"validate={c}/validate/raw,{c}/validate/fg"
    out = tmp_path / "distance.yaml"
    res = dacapo_cli("plan", f"{c}/train/fg", "--raw", f"{c}/train/raw", "--task", "distance",
                     "--minutes", "0.5", "-o", str(out), "--validate", val, "--no-measure",
                     cwd=tmp_path)  # the timed plan: tests/training/test_step_timer.py
    assert res.returncode == 0, res.stderr
    res = dacapo_cli("verify", str(out), cwd=tmp_path)
    assert res.returncode == 0 and "valid" in res.stdout, res.stderr
    res = dacapo_cli("plan", f"{c}/train/fg", "--raw", f"{c}/train/raw", "--task", "distance",
                     "-o", str(out), cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("error: output")  # no overwrite
    _, text = plan_run([f"{c}/train/labels"], [f"{c}/train/raw"], "affinities", minutes=0.5,
                       validate=[("validate", f"{c}/validate/raw", f"{c}/validate/labels")])
    (tmp_path / "affinities.yaml").write_text(text)
    for path in (out, tmp_path / "affinities.yaml"):
        text = path.read_text()
        assert "\n  # " in text  # choices explained in comments
        rc = from_yaml(path, RunConfig)
        assert run_problems(rc) == []
        assert rc.normalization.low is not None and rc.trainer_config.lr_schedule == "cosine"
        assert rc.architecture_config.batch_norm  # measured: docs/quality.md
        assert "batch_norm: true" in text and "# batch norm after every convolution" in text
        # flip TTA for direction-free channels, its passes budgeted; not for affinities
        if path == out:
            assert rc.test_time_flips and "# validate and apply with the mean over in-" in text
            assert "4 forward passes" in text
        else:
            assert not rc.test_time_flips and "# no flips: for affinities" in text
        rc = attr.evolve(rc, num_iterations=2, validation_interval=0, checkpoint_interval=2,
                         trainer_config=attr.evolve(rc.trainer_config, num_data_workers=0))
        run_dir = train_run(rc, tmp_path / "runs", progress=False)
        assert len(run_dir.training_stats()) == 2


@pytest.mark.parametrize("fractions,balanced", [
    ({0: 0.22, 1: 0.78}, False),  # membranes / interior: plain cross-entropy
    ({0: 0.95, 1: 0.03, 2: 0.02}, True),  # rare organelles: class-balanced
])
def test_one_hot_balancing_follows_the_rarest_class(fractions, balanced):
    from dacapo.planning.rules import Fingerprint
    from dacapo.planning.task_rules import BALANCE_BELOW, plan_task

    fp = Fingerprint(voxel_size=Coordinate(1, 1, 1), shapes=[(8, 8, 8)], raw_low=0,
                     raw_high=1, raw_mean=0.5, raw_std=0.1, dtype="uint8",
                     label_values=sorted(fractions), foreground_fraction=0.5,
                     object_width=None, object_volume=None, num_objects=0,
                     class_fractions=fractions)
    task, notes = plan_task(fp, "one_hot")
    assert task.balance_classes is balanced
    assert (min(fractions.values()) < BALANCE_BELOW) is balanced
    assert f"{100 * min(fractions.values()):.1f} %" in notes["balance_classes"]
    # balanced: the fractions go into the task for the prior-corrected argmax, in class order
    assert task.class_fractions == ([fractions[k] for k in sorted(fractions)] if balanced
                                    else None)
    # rare classes: cross-entropy + soft Dice; frequent ones: the cross-entropy alone
    assert task.dice_weight == (1.0 if balanced else 0.0)
    assert type(task.build().loss).__name__ == ("CrossEntropyDiceLoss" if balanced
                                                 else "WeightedCrossEntropyLoss")


def test_choose_levels_takes_the_fewest_levels_whose_context_covers_half_an_object():
    from dacapo.planning.rules import choose_levels

    # contexts per side: 1 level (20-12)/2 = 4 voxels, 2 levels (40-8)/2 = 16 (x 2 nm in z)
    one = (1728.0, (20, 20, 20), (12, 12, 12))
    two = (512.0, (40, 40, 40), (8, 8, 8))
    vs = (2, 1, 1)
    assert choose_levels({1: one, 2: two}, vs, 8.0) is one  # half width 4 <= 4 (and 8 in z)
    assert choose_levels({1: one, 2: two}, vs, 10.0) is two  # 5 > 4 voxels in-plane
    assert choose_levels({1: one, 2: two}, vs, 100.0) is two  # none covers it: the deepest
    assert choose_levels({1: one, 2: two}, vs, None) is two  # no objects: the deepest
    assert choose_levels({}, vs, 8.0) is None
    flat = (100.0, (1, 20, 20), (1, 12, 12))  # a 2D network: z (no context) is not an axis
    assert choose_levels({1: flat, 2: two}, vs, 8.0) is flat


def test_choose_levels_passes_over_a_depth_whose_output_is_tiny():
    """The 2D nuclei at a small budget: three levels cover half a nucleus with a 4×4 output
    (92² input), two levels do not with 48²: the two are taken; outputs of >= 8 voxels per
    segmented axis stay eligible; when every depth's output is tiny, the largest output."""
    from dacapo.planning.rules import MIN_OUTPUT, _depth_reason, choose_levels

    assert MIN_OUTPUT == 8
    vs = (240, 240)
    two = (48.0 * 48, (88, 88), (48, 48))  # context 20 px = 4800 nm per side
    three = (16.0, (92, 92), (4, 4))  # context 44 px = 10560 nm per side
    assert choose_levels({2: two, 3: three}, vs, 14400.0) is two
    three_ok = (64.0, (100, 100), (8, 8))  # 8 voxels: eligible, and it covers 7200 nm
    assert choose_levels({2: two, 3: three_ok}, vs, 14400.0) is three_ok
    tiny2, tiny3 = (36.0, (46, 46), (6, 6)), (16.0, (92, 92), (4, 4))
    assert choose_levels({2: tiny2, 3: tiny3}, vs, 14400.0) is tiny2
    assert _depth_reason(tiny2[1], tiny2[2], vs, 14400.0).startswith(
        "the largest output that fits (no depth has 8 output voxels per axis)")
    assert _depth_reason(two[1], two[2], vs, 14400.0).startswith(
        "the deepest that fits with an output of at least 8 voxels per axis")
    sections = (16.0 * 16, (3, 60, 60), (1, 16, 16))  # z output 1 is not a segmented axis
    assert choose_levels({2: sections}, (50, 4, 4), 100.0) is sections


def test_a_network_of_sections_sees_its_neighbours_in_the_first_convolution():
    """Sections (z voxel >= 4x in-plane): the planned network's first convolution spans
    1 + 2·SECTION_CONTEXT sections, everything after it is 2D, and the output is one
    section — by the planner's arithmetic and by the real model."""
    from dacapo.planning.rules import SECTION_CONTEXT, Fingerprint, plan_architecture

    fp = Fingerprint(voxel_size=Coordinate(50, 4, 4), shapes=[(15, 512, 512)], raw_low=0,
                     raw_high=255, raw_mean=128, raw_std=40, dtype="uint8", label_values=[0, 1],
                     foreground_fraction=0.78, object_width=400.0, object_volume=None,
                     num_objects=0, class_fractions={0: 0.22, 1: 0.78})
    arch = plan_architecture(fp, "one_hot", 0.5)
    depth = 1 + 2 * SECTION_CONTEXT
    assert arch.sections and arch.input_shape[0] == depth and arch.output_shape[0] == 1
    assert arch.kernels_down[0][0] == (depth, 3, 3)
    rest = [k for lvl in arch.kernels_down for k in lvl][1:] + [k for lvl in arch.kernels_up for k in lvl]
    assert all(k == (1, 3, 3) for k in rest) and arch.eval_shape_increase[0] == 0
    config = CNNectomeUNetConfig(
        name="u", input_shape=arch.input_shape, fmaps_in=1, fmaps_out=4, num_fmaps=4,
        fmap_inc_factor=2, downsample_factors=arch.factors, kernel_size_down=arch.kernels_down,
        kernel_size_up=arch.kernels_up)
    model = DistanceTaskConfig("d", channels=["a"], clip_distance=1, tol_distance=1).build() \
        .create_model(config)
    _, out = model.compute_output_shape(Coordinate(arch.input_shape))
    assert tuple(out) == tuple(arch.output_shape)
    eval_in = Coordinate(arch.input_shape) + Coordinate(arch.eval_shape_increase)
    assert model.compute_output_shape(eval_in)[1][0] == 1


@pytest.mark.parametrize("kind", ["distance", "inner_distance"])
def test_inner_distance_sweeps_only_thresholds_above_the_background(kind):
    """The inner distance is 0 on the background (DESIGN.md), so a threshold t <= 0 marks the
    whole background as object (2D GOWT1 nuclei: pixel F1 0.16 = the foreground fraction at
    every t <= 0); the signed distance is negative outside, so its sweep spans 0."""
    from dacapo.planning.rules import Fingerprint
    from dacapo.planning.task_rules import plan_task

    fp = Fingerprint(voxel_size=Coordinate(1, 1), shapes=[(64, 64)], raw_low=0, raw_high=1,
                     raw_mean=0.5, raw_std=0.1, dtype="uint8", label_values=[0, 1, 2],
                     foreground_fraction=0.1, object_width=12.0, object_volume=100.0,
                     num_objects=2, class_fractions=None)
    task, notes = plan_task(fp, "inner_distance" if kind == "inner_distance" else "distance")
    if kind == "inner_distance":
        assert min(task.thresholds) > 0
        assert "background" in notes["thresholds"]
        # instance ids: touching objects separate; specks under 10 % of 100 voxels removed
        assert task.post_processor == "instances" and task.min_size == 10
        task.build()
    else:
        assert min(task.thresholds) < 0 < max(task.thresholds)


def test_step_time_adds_the_threaded_network_and_the_data_worker():
    """A planned step costs the network's one-thread cost times NETWORK_THREADS_FACTOR (all
    threads) plus the data worker (augmentation, targets), plus the fixed overhead
    (hand-computed from the constants)."""
    from dacapo.planning import cost_model
    from dacapo.planning.cost_model import NETWORK_THREADS_FACTOR, STEP_OVERHEAD, step_seconds

    a = cost_model.DATA_COST_PER_INPUT_VOXEL["affinities"]
    b = cost_model.DATA_COST_PER_GT_VOXEL["affinities"]
    # network: 2 x (0.1 s/GMAC x 1 GMAC + 1e-6 x 1000 voxels) = 0.202 s one-thread; data:
    # 2 x (a x 100 input voxels + b x 1000 GT voxels)
    small = step_seconds("affinities", 1e9, (1, 10, 10), (10, 10, 10), 0.1, 1e-6, 2)
    assert small == pytest.approx(NETWORK_THREADS_FACTOR * 0.202 + 2 * (a * 100 + b * 1000)
                                  + STEP_OVERHEAD)
    # data: 2 x (a x 1e6 input voxels + b x (10 + 2 x 20)^3 GT voxels)
    big = step_seconds("affinities", 1e9, (100, 100, 100), (10, 10, 10), 0.1, 1e-6, 2,
                       padding=(20, 20, 20))
    assert big == pytest.approx(NETWORK_THREADS_FACTOR * 0.202 + 2 * (a * 1e6 + b * 50**3)
                                + STEP_OVERHEAD)
    # split cores: network (one thread) and data side by side, the slower one counts
    split = step_seconds("affinities", 1e9, (100, 100, 100), (10, 10, 10), 0.1, 1e-6, 2,
                         padding=(20, 20, 20), split=True)
    assert split == pytest.approx(max(0.202, 2 * (a * 1e6 + b * 50**3)) + STEP_OVERHEAD)


def test_the_plan_splits_the_cores_exactly_when_the_cost_model_says_it_is_faster():
    """A data-heavy plan (large raw crops of a cheap network) gives the data worker its own
    core, a network-heavy one keeps every core for the network; the planned step is the
    cheaper of the two estimates for the planned shape."""
    from dacapo.ops.planning import unet_shapes
    from dacapo.planning.cost_model import network_costs, step_seconds
    from dacapo.planning.rules import Fingerprint, plan_architecture

    fp = Fingerprint(voxel_size=Coordinate(40, 40, 40), shapes=[(60, 200, 200)], raw_low=0,
                     raw_high=255, raw_mean=128, raw_std=40, dtype="uint8",
                     label_values=[0, 1, 2], foreground_fraction=0.9, object_width=800.0,
                     object_volume=4000.0, num_objects=50, class_fractions={})
    chosen = set()
    for fmaps in (2, 24):  # cheap network: the data decide; costly network: it decides
        arch = plan_architecture(fp, "distance", 0.5, num_fmaps=fmaps)
        _, macs = unet_shapes(arch.input_shape, arch.factors, arch.kernels_down,
                              arch.kernels_up, fmaps, pooling=arch.input_pooling or None)
        gmac, voxel = network_costs("distance", False)
        shared, split = (step_seconds("distance", macs, arch.input_shape, arch.output_shape,
                                      gmac, voxel, 2, split=s) for s in (False, True))
        assert arch.split_threads == (split < shared)
        assert arch.step_seconds == pytest.approx(min(shared, split))
        chosen.add(arch.split_threads)
    assert chosen == {False, True}


def test_bf16_is_planned_where_the_machine_computes_it_and_costs_its_factor(tmp_path, tiny_data):
    """``dacapo plan`` trains in bf16 exactly where `native_bf16` holds for the device it
    would train on; a bf16 network step costs `BF16_FACTOR` of the network's dims times the
    fp32 one (hand-computed from the constants)."""
    from dacapo.pipeline.precision import native_bf16
    from dacapo.planning import cost_model
    from dacapo.planning.cost_model import BF16_FACTOR, network_costs
    from dacapo.planning.planner import plan_run
    from dacapo.runs.model_builder import choose_device

    gmac, voxel = network_costs("affinities", False, "bf16", 3)
    assert gmac == pytest.approx(BF16_FACTOR["3d"] * cost_model.COST_PER_GMAC)
    assert voxel == pytest.approx(BF16_FACTOR["3d"] * cost_model.COST_PER_OUTPUT_VOXEL["affinities"])
    gmac, _ = network_costs("distance", True, "bf16", 2)
    assert gmac == pytest.approx(BF16_FACTOR["2d"] * cost_model.COST_PER_GMAC_2D)
    gmac, _ = network_costs("one_hot", True, "bf16", 3)  # a network of sections
    assert gmac == pytest.approx(BF16_FACTOR["sections"] * cost_model.COST_PER_GMAC_2D)
    assert network_costs("distance", True) == (cost_model.COST_PER_GMAC_2D,
                                               cost_model.DEFAULT_COST_PER_OUTPUT_VOXEL)
    c = tiny_data(tmp_path)
    rc, text = plan_run([f"{c}/train/fg"], [f"{c}/train/raw"], "distance", minutes=1)
    native = native_bf16(choose_device(None))
    assert rc.trainer_config.precision == ("bf16" if native else "fp32")
    assert ("# bf16: this machine computes it in hardware" in text) == native


def test_validations_are_budgeted_and_fewer_when_they_would_take_most_of_it():
    """One validation of V voxels, P forward passes and S parameter sets costs
    f + V x (P x p + S x d) (hand-computed from the constants); 4 of them come out of the
    budget; when 4 would take more than VALIDATION_SHARE of it, fewer (at least one);
    training keeps 20 %; no validation data costs nothing."""
    from dacapo.planning import cost_model
    from dacapo.planning.cost_model import plan_schedule

    f = cost_model.VALIDATION_FIXED_SECONDS
    p, d = cost_model.VALIDATION_COST_PER_VOXEL_PASS, cost_model.VALIDATION_COST_PER_VOXEL_SET
    each = f + 1e6 * (p + 10 * d)
    plan = plan_schedule(1200.0, 10**6, 10, 4)
    assert plan.validations == 4 and plan.validation_seconds == pytest.approx(each)
    assert plan.train_seconds == pytest.approx(1200 * (1 - cost_model.RESERVE) - 4 * each)
    few = plan_schedule(1200.0, 10**8, 10, 4)  # ~100x the voxels
    each_few = f + 1e8 * (p + 10 * d)
    assert few.validations == max(1, int(cost_model.VALIDATION_SHARE * 1200 // each_few))
    assert few.validations < 4 and "so" in few.why
    none = plan_schedule(1200.0, 0, 10, 4)
    assert none.validations == 4 and none.train_seconds == pytest.approx(1200 * (1 - cost_model.RESERVE))
    flipped = plan_schedule(1200.0, 10**6, 10, 4, passes=4)  # 4 forward passes
    assert flipped.validation_seconds == pytest.approx(f + 1e6 * (4 * p + 10 * d))
    assert "4 forward passes" in flipped.why
    over = plan_schedule(60.0, 10**8, 10, 4)  # one validation alone exceeds the budget
    assert over.validations == 1 and over.train_seconds == pytest.approx(12.0)
    assert "more than planned" in over.why


def test_a_validation_is_budgeted_for_the_voxels_it_predicts_not_the_raws_context(
        tmp_path, write_array):
    """The validation raw holds 8 sections of context before the GT's 10, and the GT runs
    10 voxels past the raw in x: a validation predicts and scores the GT's ROI within the
    raw's, 10 x 30 x 20 voxels (hand-counted), not the raw's 18 x 30 x 30."""
    from dacapo.experiments.datasplits import DatasetConfig
    from dacapo.planning.planner import predicted_voxels

    vs = (4, 2, 2)
    write_array(tmp_path / "v.zarr/raw", np.zeros((18, 30, 30), np.uint8), vs)
    write_array(tmp_path / "v.zarr/gt", np.ones((10, 30, 30), np.uint8), vs, offset=(32, 0, 20))
    d = DatasetConfig("v", str(tmp_path / "v.zarr/raw"), str(tmp_path / "v.zarr/gt"))
    assert predicted_voxels(d, None) == 10 * 30 * 20


def test_a_budget_below_the_targets_context_buys_fewer_steps_not_an_error(monkeypatch):
    """LSD targets need a GT region of the output + ~3 sigma per side: with a per-step
    share below 1.5x the data of a 1-voxel output (hand-computed), the plan takes steps of
    that 1.5x and says so, instead of finding no network."""
    from funlib.geometry import Coordinate

    from dacapo.planning import cost_model
    from dacapo.planning.cost_model import STEP_OVERHEAD
    from dacapo.planning.rules import plan_architecture

    monkeypatch.setitem(cost_model.DATA_COST_PER_GT_VOXEL, "affinities", 1e-6)
    monkeypatch.setitem(cost_model.DATA_COST_PER_INPUT_VOXEL, "affinities", 0.0)
    from dacapo.planning.rules import Fingerprint

    fp = Fingerprint(voxel_size=Coordinate(40, 40, 40), shapes=[(60, 200, 200)], raw_low=0,
                     raw_high=255, raw_mean=128, raw_std=40, dtype="uint8",
                     label_values=[0, 1, 2], foreground_fraction=0.9, object_width=800.0,
                     object_volume=4000.0, num_objects=50, class_fractions={})
    floor = 2 * 1e-6 * 41**3 + STEP_OVERHEAD  # padding 20: (1 + 40)^3 GT voxels
    arch = plan_architecture(fp, "affinities", 0.05, padding=(20, 20, 20))
    assert f"{1.5 * floor:.2f} s" in arch.notes["step_floor"]
    assert arch.step_seconds <= 1.5 * floor


def test_no_batch_norm_when_most_of_the_raw_is_empty(tmp_path):
    """Sparse fluorescence (most raw dark): a crop's batch statistics depend on how much of
    it is empty, so the plan leaves batch norm out, also when a camera offset and noise put
    no value at the lower percentile; dense raw keeps it."""
    from funlib.persistence import prepare_ds

    from dacapo.planning.planner import plan_run

    rng = np.random.default_rng(0)
    labels = np.zeros((64, 64), np.uint32)
    labels[8:24, 8:24], labels[40:56, 30:50] = 1, 2
    sparse = np.where(labels > 0, rng.integers(20, 60, labels.shape), 0).astype(np.uint8)
    dense = rng.integers(50, 200, labels.shape).astype(np.uint8)
    camera = np.round(100 + 40 * sparse.astype(np.float64)
                      + rng.normal(0, 8, labels.shape)).astype(np.uint16)
    assert np.mean(camera <= np.percentile(camera, 0.5)) < 0.01  # the earlier count: ~0
    for name, data in (("labels", labels), ("sparse", sparse), ("dense", dense),
                       ("camera", camera)):
        arr = prepare_ds(str(tmp_path / "d.zarr" / name), shape=data.shape,
                         voxel_size=Coordinate(100, 100), dtype=data.dtype, mode="w")
        arr[arr.roi] = data
    gt = str(tmp_path / "d.zarr" / "labels")
    rc, text = plan_run([gt], [str(tmp_path / "d.zarr" / "sparse")], "inner_distance", minutes=1)
    assert rc.architecture_config.batch_norm is False  # 86 % of the raw is 0
    assert "no batch norm: 86 % of the raw is dark background" in text
    rc, text = plan_run([gt], [str(tmp_path / "d.zarr" / "camera")], "inner_distance",
                        minutes=1)
    assert rc.architecture_config.batch_norm is False
    dark = np.mean(camera <= np.percentile(camera, 0.5)
                   + 0.05 * np.subtract(*np.percentile(camera, [99.5, 0.5])))
    assert f"no batch norm: {100 * dark:.0f} % of the raw is dark background" in text
    rc, _ = plan_run([gt], [str(tmp_path / "d.zarr" / "dense")], "inner_distance", minutes=1)
    assert rc.architecture_config.batch_norm is True


def test_a_section_labelled_apart_is_ignored_in_training(tmp_path):
    """Cells whose ids hold through the stack except in one section (its objects renamed):
    an affinities plan lists that section in ``ignore_sections`` and says why; consistent
    labels list none."""
    from funlib.persistence import prepare_ds

    from dacapo.planning.planner import plan_run

    rng = np.random.default_rng(0)
    plane = np.repeat(np.repeat(rng.permutation(16).reshape(4, 4) + 1, 16, 0), 16, 1)
    labels = np.broadcast_to(plane, (48, 64, 64)).astype(np.uint32).copy()
    clean = labels.copy()
    labels[7] += 100
    raw = rng.integers(0, 255, labels.shape).astype(np.uint8)
    for name, data in (("labels", labels), ("clean", clean), ("raw", raw)):
        arr = prepare_ds(str(tmp_path / "d.zarr" / name), shape=data.shape,
                         voxel_size=Coordinate(40, 40, 40), dtype=data.dtype, mode="w")
        arr[arr.roi] = data
    raw = str(tmp_path / "d.zarr" / "raw")
    rc, text = plan_run([str(tmp_path / "d.zarr" / "labels")], [raw], "affinities", minutes=10)
    assert rc.datasplit_config.train[0].ignore_sections == [7]
    assert "gt sections [7] share no object id with their neighbours" in text
    rc, _ = plan_run([str(tmp_path / "d.zarr" / "clean")], [raw], "affinities", minutes=10)
    assert rc.datasplit_config.train[0].ignore_sections is None


def test_a_constant_raw_or_a_label_image_as_raw_is_refused(tmp_path):
    from dacapo.errors import InputError
    from dacapo.io.ome_write import write_image
    from dacapo.planning.planner import plan_run

    labels = np.zeros((64, 64), np.uint32)
    labels[8:24, 8:24], labels[40:56, 30:50] = 1, 2
    raw = np.random.default_rng(0).integers(50, 200, labels.shape).astype(np.uint8)
    d = tmp_path / "d.zarr"
    write_image(d / "labels", labels, (0, 0), (100, 100), label=True)
    write_image(d / "raw", raw, (0, 0), (100, 100))
    write_image(d / "flat", np.full(labels.shape, 7, np.uint8), (0, 0), (100, 100))
    with pytest.raises(InputError, match="the raw '.*labels' is a label image .*swapped"):
        plan_run([str(d / "raw")], [str(d / "labels")], "inner_distance", minutes=1)
    with pytest.raises(ValueError, match=r"constant between its 0.5 and 99.5 percentiles \(7\)"):
        plan_run([str(d / "labels")], [str(d / "flat")], "inner_distance", minutes=1)
