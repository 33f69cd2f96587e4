"""`dacapo.planning.step_fit`: the plan takes its steps from the timed step, plans a smaller
crop when the machine is much slower than the cost model, and keeps bf16 only where it
steps faster by the margin. The timer is a stand-in returning the model's step times a
factor (the real timer: tests/training/test_step_timer.py)."""

from __future__ import annotations

import attr
import pytest

from dacapo.planning.planner import plan_run
from dacapo.planning.rules import plan_architecture
from dacapo.planning.step_fit import BF16_MARGIN, LOOP_OVERHEAD, REPLAN_TOLERANCE, composed


@attr.s(auto_attribs=True)
class Timed:
    network: float
    data: float


def test_the_step_composes_as_the_cost_model_does_with_the_loops_overhead():
    t = Timed(network=0.3, data=0.2)
    assert composed(t, False) == pytest.approx(0.5 + LOOP_OVERHEAD)
    assert composed(t, True) == pytest.approx(0.3 + LOOP_OVERHEAD)


def _plan(c, measure):
    return plan_run([f"{c}/train/fg"], [f"{c}/train/raw"], "distance", minutes=2,
                    measure=measure)


def test_the_plan_takes_its_steps_and_precision_from_the_measured_step(
        tmp_path, cache, tiny_data, monkeypatch):
    from dacapo.planning import planner

    monkeypatch.setattr(planner, "native_bf16", lambda device: True)  # bf16 planned first
    c = tiny_data(tmp_path)
    model_rc, _ = _plan(c, measure=None)
    assert model_rc.trainer_config.precision == "bf16"
    planned, timings = [], []

    def spy(*args, **kwargs):  # the real rule; its modelled step kept
        planned.append(plan_architecture(*args, **kwargs))
        return planned[-1]

    def slower(factor, fp32=1.5):
        def fake(rc, threads):  # as if measured: the last plan's modelled step x factor
            precision = rc.trainer_config.precision
            timings.append((rc.architecture_config.input_shape, precision))
            network = factor * planned[-1].step_seconds - LOOP_OVERHEAD
            return Timed(network=network * (fp32 if precision == "fp32" else 1), data=0.0)
        return fake

    def plan(factor, **kwargs):
        planned.clear()
        timings.clear()
        return _plan(c, measure=slower(factor, **kwargs))

    monkeypatch.setattr(planner, "plan_architecture", spy)
    # within the tolerance: the same crop, bf16 (fp32 timed slower), steps from the timing
    factor = 1 + REPLAN_TOLERANCE / 2
    rc, text = plan(factor)
    assert rc.architecture_config.input_shape == model_rc.architecture_config.input_shape
    assert [p for _, p in timings] == ["bf16", "fp32"] and rc.trainer_config.precision == "bf16"
    assert rc.num_iterations == pytest.approx(model_rc.num_iterations / factor, rel=0.01)
    assert "s per step measured on this machine" in text
    assert "bf16: faster than fp32 on this machine" in text
    # 3x slower than modelled: a smaller crop, timed again, its steps from that timing
    rc, text = plan(3.0)
    assert len(timings) == 3 and timings[2] == (rc.architecture_config.input_shape, "bf16")
    expected = model_rc.num_iterations * planned[0].step_seconds / (3 * planned[-1].step_seconds)
    assert rc.num_iterations == pytest.approx(expected, rel=0.01)
    small, big = rc.architecture_config.input_shape, model_rc.architecture_config.input_shape
    assert all(s <= b for s, b in zip(small, big)) and small != big
    # bf16 faster, but by less than the margin: fp32, the more exact
    rc, _ = plan(1.0, fp32=(1 + BF16_MARGIN) / (2 * BF16_MARGIN))
    assert rc.trainer_config.precision == "fp32"
    # fp32 faster: the fp32 plan, timed, its steps from that timing
    rc, text = plan(1.0, fp32=0.8)
    assert rc.trainer_config.precision == "fp32"
    assert [p for _, p in timings] == ["bf16", "fp32", "fp32"]
    assert "fp32: this machine has hardware bf16, but it is slower" in text
    assert rc.num_iterations == pytest.approx(
        model_rc.num_iterations * planned[0].step_seconds
        / ((planned[-1].step_seconds - LOOP_OVERHEAD) * 0.8 + LOOP_OVERHEAD), rel=0.01)


