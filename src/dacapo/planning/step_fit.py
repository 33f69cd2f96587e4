"""The plan fitted to its step as timed on this machine (`dacapo plan`; the timer,
`dacapo.training.step_timer.measure_step`, is passed in by the caller): the faster
precision, a crop re-planned when the cost model is off, the steps from the timing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attr
import torch

from dacapo.planning.cost_model import compose_step
from dacapo.planning.rules import ArchitecturePlan

#: the measured step may differ from the cost model's by this fraction before the planner
#: plans again from the measurement (timings move ~10 % between runs of one plan)
REPLAN_TOLERANCE = 0.15
#: seconds per step of the loop outside the timed network step and data batch (the
#: loader's hand-over, the statistics row, the progress). The cost model's `STEP_OVERHEAD`
#: (0.02) also holds what its network and data terms miss. The six 2-minute plans, timed
#: here and run (Intel Xeon, idle, 2026-12-07), stepped 0.000-0.021 s (median 0.006)
#: slower than their timed step without it
LOOP_OVERHEAD = 0.005
#: bf16 is kept when its network step is at most this fraction of fp32's on the same crop
#: (fp32 is the more exact; near-ties are timing noise)
BF16_MARGIN = 0.9


class Timing(Protocol):
    """A measured step: ``network`` seconds (the trainer's threads) and ``data`` CPU
    seconds of the data worker per batch."""

    network: float
    data: float


def composed(timing: Timing, split: bool) -> float:
    """The timed step as the cost model composes one (`cost_model.compose_step`), with the
    loop's `LOOP_OVERHEAD`."""
    return compose_step(timing.network, timing.data, split, LOOP_OVERHEAD)


@attr.s(frozen=True, auto_attribs=True)
class StepFit:
    """The planned network, its seconds per step and precision; ``timing``: its measured
    step (None: the cost model's); ``bf16_fp32``: the network step of one crop in bf16 and
    in fp32, measured (None: not compared)."""

    arch: ArchitecturePlan
    step: float
    precision: str
    timing: Timing | None = None
    bf16_fp32: tuple[float, float] | None = None


def fit_step(arch_for, run_config, share: float, precision: str,
             measure: Callable[..., Timing] | None) -> StepFit:
    """The architecture ``arch_for(share, precision)`` and its modelled step; with
    ``measure(run config, threads)`` (`dacapo.training.step_timer.measure_step`), timed
    with the trainer's threads (``run_config(arch, iterations, precision)``: its run): a
    bf16 crop also in fp32, which is kept unless bf16 steps faster by `BF16_MARGIN`
    (AVX-512 BF16 without AMX: bf16 1.1-1.3x the fp32 step, docs/quality.md), and when the step is off the model by more than `REPLAN_TOLERANCE`,
    the architecture of the share scaled by that ratio, timed too."""
    arch = arch_for(share, precision)
    if not measure:
        return StepFit(arch, arch.step_seconds, precision)

    def timed(arch: ArchitecturePlan, precision: str) -> Timing:
        rc = run_config(arch, 20, precision)
        return measure(rc, rc.trainer_config.torch_threads or torch.get_num_threads())

    timing, compared = timed(arch, precision), None
    if precision == "bf16":
        fp32 = timed(arch, "fp32")
        compared = (timing.network, fp32.network)
        if timing.network > BF16_MARGIN * fp32.network:
            precision, timing = "fp32", fp32
            again = arch_for(share, precision)  # equal when the step is the data's
            if again != arch:
                arch, timing = again, timed(again, precision)
    ratio = composed(timing, arch.split_threads) / arch.step_seconds
    if abs(ratio - 1) > REPLAN_TOLERANCE:
        again = arch_for(share / ratio, precision)
        if (again.input_shape, again.factors, again.split_threads) != (
                arch.input_shape, arch.factors, arch.split_threads):
            arch, timing = again, timed(again, precision)
    return StepFit(arch, composed(timing, arch.split_threads), precision, timing,
                   compared)
