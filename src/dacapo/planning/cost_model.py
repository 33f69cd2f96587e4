"""The planner's cost model (`dacapo.planning.planner`): seconds of a training step
(network and data worker on this 2-core CPU), of a validation, and how a budget splits
into validations and steps. Every constant says what it was fitted on
(`benchmarks/bench_plan_cost.py`: ``--data`` the data worker, ``--budget`` end to end).
The constants are one CPU's (an AMD EPYC with AVX-512 BF16); `dacapo plan` times the crop
they choose on the user's machine and fits the plan to that (`step_fit.fit_step`)."""

from __future__ import annotations

import math

import attr

#: seconds per sample per (multiply-add x 1e9) of a training step (forward + backward +
#: optimiser), and per output voxel of target preparation (affinities with LSDs cost most),
#: with one torch thread and one data worker on this 2-core CPU. Re-fitted upwards (from
#: 0.08 / 0.05 / 5e-6, fitted on small 30-iteration runs) after the 20-minute plans ran
#: 1.4x over: bare steps of the planned UNets cost 0.09 (34x52², 0.7 GMAC) to 0.118 s
#: (50x80², 3.5 GMAC) per GMAC-sample in 3D, 0.060 (300²) to 0.078 (404²) in 2D, and
#: the training loop adds ~10 % (46x100²: 1.35 s per step of 2 vs 1.21 bare); the neuron
#: run's LSD targets cost 0.41 s per step beyond its 0.13 s network step
#: (`benchmarks/bench_plan_cost.py`). Over-estimating only ends a run
#: early; under-estimating breaks the budget, so the constants sit at the top of the range
#: (more threads than free cores make OpenMP spin: 5-10x slower)
COST_PER_GMAC = 0.13
#: 2D networks (one section per crop; 24 feature maps, `FMAPS_2D`) run ~1.6x more
#: multiply-adds per second than 3D ones, one thread: 0.057 (300²) and 0.066 (324²) s per
#: GMAC-sample in the training loop of the 10- and 20-minute membranes runs; raised from
#: 0.085 (2026-12-06) after the 20-minute plans' one-thread steps (100-step checks, idle)
#: ran 1.06-1.10x over it: membranes 3x332² 1.193 s, organelles 3x308² 0.962 s, 2D nuclei
#: 340² 1.176 s per step; bare one-thread steps 0.098-0.115 s per GMAC-sample (116²-340²)
COST_PER_GMAC_2D = 0.10
#: Per output voxel, the affinities' loss and head: 8e-6 with LSDs (16 channels and their
#: targets); 2e-6 since plans dropped them (bare steps of the 20-minute plans without LSDs,
#: one thread: fibsem 34x52² 0.263 s, cells 48x64² 0.353 s against 0.26 / 0.33 s modelled;
#: 2026-12-06)
COST_PER_OUTPUT_VOXEL = {"affinities": 2.0e-6}
DEFAULT_COST_PER_OUTPUT_VOXEL = 5.0e-7
#: CPU seconds of the data worker per sample (`data_seconds`; a step adds it to the
#: network's, `step_seconds`): per input voxel (reading, rotation and the
#: other augmentations of the raw) and per voxel of the GT region the targets are computed
#: on (the output grown by the task's padding: augmenting the GT, targets and weights; LSDs
#: need ~3 sigma of context, 32-50 voxels per side on the real volumes). Fitted (least
#: squares, non-negative) on the crops `dacapo plan` picks at 2 and 20 minutes for the six
#: real volumes (`benchmarks/bench_plan_cost.py --data`, load ~2): every case within 0.84-1.21
#: of the fit. Per input voxel only, the affinities were 2.9x (fibsem) and 7.1x (confocal
#: cells) over at 2 minutes: a 2-minute cells plan of 1076 steps "at ~0.09 s" ran at 0.39 s
#: The distance kind's split comes from a third crop, the LM nuclei's 2-minute plan of
#: 15x48² (output 11x32², GT region 29x70²: 0.055 s per sample, 2.7x the per-input fit).
#: The affinities' pair re-fitted when plans dropped the LSDs (2026-12-06, idle, the means
#: of four ``--data`` runs, which scatter +-30 % on 8 batches): the 2- and 20-minute crops
#: of fibsem and cells without LSDs cost 0.012-0.071 s per sample, 0.99-1.01 of the fit
#: (0.58e-6 / 0.22e-6 before, fitted with LSDs).
DATA_COST_PER_INPUT_VOXEL = {"affinities": 0.29e-6, "distance": 0.26e-6,
                             "inner_distance": 0.34e-6, "one_hot": 0.21e-6}
DATA_COST_PER_GT_VOXEL = {"affinities": 0.34e-6, "distance": 0.32e-6, "inner_distance": 0.0,
                          "one_hot": 0.20e-6}
#: the network step runs with all torch threads (``torch_threads: 0``, as planned): its
#: one-thread cost above times this. Bare steps of the planned UNets with 2 threads against
#: one on this 2-core CPU (idle, 2026-12-06): 0.49-0.62 (3D 24³ to 48x64², 2D 116² to 340²,
#: `benchmarks/bench_plan_cost.py --threads-ratio`)
NETWORK_THREADS_FACTOR = 0.6
#: seconds of one validation: a fixed part (opening the arrays, exporting the model,
#: plots), then per voxel it predicts (the GT's ROI, not the raw's context) one cost per
#: forward pass (reading, predicting, writing; ``test_time_flips``: 4 passes) and one per
#: parameter set of the post-processor's sweep (post-processing, scores). Fitted on one
#: validation of the last checkpoint of two 2-minute plans of each of the six volumes
#: (Intel Xeon, idle, 2026-12-07; 3.3-76 s, sweeps of 1-50 sets, 0.3-3.1 Mvoxel): the
#: model within 0.45-1.33 of each. Two checkpoints of one kind differ up to 3x (the
#: cells' 4.8 and 14.2 s: another network, other fragments), which no per-voxel model
#: holds; the model before (per voxel of the raw, fitted on an AMD EPYC) put the first six
#: at 0.97-2.55x
VALIDATION_FIXED_SECONDS = 0.9
VALIDATION_COST_PER_VOXEL_PASS = 2.1e-6
VALIDATION_COST_PER_VOXEL_SET = 0.18e-6
#: the budget kept for start-up, checkpoints, snapshots and the last validation's plots
RESERVE = 0.05
#: validations take at most this share of the budget: fewer validations (at least one) when
#: they would take more (the organelles' 3.1 Mvoxel, 4 passes x 50 sets: ~45 s each)
VALIDATION_SHARE = 0.4
#: per-step cost outside the network and the data (the loader's hand-over, the optimiser's
#: bookkeeping, the loop), seconds
STEP_OVERHEAD = 0.02
#: forward-only cost of prediction relative to a training step
PREDICT_FRACTION = 0.35


#: a bf16 training step (autocast, channels-last weights) against the fp32 constants above,
#: by the network's convolutions: 2D, a network of sections (3D input, one output section,
#: in-plane kernels) or 3D. One-thread bare steps of the six 20-minute plans on this CPU
#: (AVX-512 BF16; idle, 2026-12-06; `benchmarks/bench_plan_cost.py --layout`): 2D nuclei
#: 508² 0.42; sections 3x680² 0.59-0.65; 3D 0.47 (fibsem 34x52²), 0.52 (LM nuclei 62x120²),
#: 0.54 (cells 48x64²). 3D was 0.6 until the neurons' 300-step check projected 0.64 of the
#: budget; at 0.48 its full 20-minute run took 0.74 (0.125 s per step, the cells' check
#: 1.00): the fp32 constants over-estimate that small network, so 3D sits below the
#: bare-step ratios, where the two 3D plans' checks straddle 1 (`--steps 20 300`)
BF16_FACTOR = {"2d": 0.45, "sections": 0.6, "3d": 0.44}


def network_costs(kind: str, two_d: bool, precision: str = "fp32",
                  dims: int = 3) -> tuple[float, float]:
    """(seconds per GMAC-sample, seconds per output voxel) of the network step, one thread:
    `COST_PER_GMAC_2D` for a 2D network or a network of sections (``two_d``), else
    `COST_PER_GMAC`; the kind's `COST_PER_OUTPUT_VOXEL`; both times `BF16_FACTOR` of the
    network's convolutions (``dims`` 2; 3 with ``two_d``: sections; else 3D) in
    ``precision`` bf16."""
    shape = "2d" if dims == 2 else ("sections" if two_d else "3d")
    factor = BF16_FACTOR[shape] if precision == "bf16" else 1.0
    return (factor * (COST_PER_GMAC_2D if two_d else COST_PER_GMAC),
            factor * COST_PER_OUTPUT_VOXEL.get(kind, DEFAULT_COST_PER_OUTPUT_VOXEL))


def step_seconds(kind: str, macs: float, input_shape, output_shape, gmac_cost: float,
                 voxel_cost: float, batch_size: int, padding=None, split: bool = False) -> float:
    """Estimated seconds of one training step as `dacapo train` runs a plan: the network
    (forward, backward, Adam) and the data worker (`data_seconds`; ``padding``: the
    targets' context in voxels), plus `STEP_OVERHEAD`.

    Shared cores (``split`` False, ``torch_threads: 0``): the network's one-thread cost
    times `NETWORK_THREADS_FACTOR` plus the data: the network's threads take both cores,
    so the data worker's CPU is not hidden behind it (the 20-minute plans' full runs, idle:
    neurons 0.25 s per step = 0.11 s of network on 2 threads + 0.12 s of data). Split
    (``split``, ``torch_threads`` = cores - 1: the worker keeps a core): the slower of the
    network at its one-thread cost and the data, which run side by side (the organelles'
    bf16 plan, 3x600², 100 steps, idle: 0.955 s shared, 0.639 s split against 0.63 s
    modelled; `benchmarks/bench_plan_cost.py --steps 20 100 sstem_organelles --threads 1`)."""
    net = batch_size * (gmac_cost * macs / 1e9 + voxel_cost * float(math.prod(output_shape)))
    data = data_seconds(kind, input_shape, output_shape, padding, batch_size)
    return compose_step(net if split else NETWORK_THREADS_FACTOR * net, data, split)


def compose_step(network: float, data: float, split: bool,
                 overhead: float = STEP_OVERHEAD) -> float:
    """Seconds of a step from its network seconds (with the trainer's threads) and the data
    worker's: side by side when the worker keeps a core (``split``), else added; plus the
    loop's ``overhead``. Used for modelled (`step_seconds`, `STEP_OVERHEAD`) and timed steps
    (`dacapo.planning.step_fit`, its `LOOP_OVERHEAD`)."""
    return (max(network, data) if split else network + data) + overhead


def data_seconds(kind: str, input_shape, output_shape, padding, batch_size: int) -> float:
    """Estimated CPU seconds of the data worker for one batch: per sample, one cost per
    input voxel (`DATA_COST_PER_INPUT_VOXEL`: reading and augmenting the raw) and one per
    voxel of the GT region the targets are computed on, the output grown by the task's
    ``padding`` (voxels per axis, None: 0) on each side (`DATA_COST_PER_GT_VOXEL`:
    augmenting the GT, targets and weights; LSDs need a context of ~3 sigma, which on small
    crops is most of the cost)."""
    padding = (0,) * len(output_shape) if padding is None else padding
    region = math.prod(o + 2 * p for o, p in zip(output_shape, padding))
    return batch_size * (DATA_COST_PER_INPUT_VOXEL.get(kind, 1e-6) * float(math.prod(input_shape))
                         + DATA_COST_PER_GT_VOXEL.get(kind, 0.0) * float(region))


@attr.s(frozen=True, auto_attribs=True)
class SchedulePlan:
    """How a budget splits: ``validations`` of ``validation_seconds`` each, and
    ``train_seconds`` of training steps; ``why``: the validations' count, in words."""

    validations: int
    validation_seconds: float
    train_seconds: float
    why: str


def validation_seconds(voxels: int, parameter_sets: int, passes: int = 1) -> float:
    """Estimated seconds of one validation that predicts ``voxels`` with ``passes`` forward
    passes and sweeps ``parameter_sets`` (`VALIDATION_FIXED_SECONDS`,
    `VALIDATION_COST_PER_VOXEL_PASS`, `VALIDATION_COST_PER_VOXEL_SET`); 0 without voxels."""
    if voxels <= 0:
        return 0.0
    return VALIDATION_FIXED_SECONDS + voxels * (passes * VALIDATION_COST_PER_VOXEL_PASS
                                                + parameter_sets * VALIDATION_COST_PER_VOXEL_SET)


def plan_schedule(budget: float, val_voxels: int, parameter_sets: int,
                  validations: int, passes: int = 1) -> SchedulePlan:
    """Split ``budget`` seconds: `RESERVE` kept, up to ``validations`` validations within
    `VALIDATION_SHARE` of the budget (at least one when there is validation data), the rest
    training; training keeps at least 20 % of the budget (then the plan overruns, and says
    by how much)."""
    each = validation_seconds(val_voxels, parameter_sets, passes)
    why = (f"~{each:.0f} s each ({val_voxels / 1e6:.2g} Mvoxel x {parameter_sets} parameter "
           f"sets, {passes} forward pass{'es' if passes > 1 else ''})")
    if each > 0 and validations * each > VALIDATION_SHARE * budget:
        fewer = max(1, int(VALIDATION_SHARE * budget // each))
        why += (f": {validations} would take more than {100 * VALIDATION_SHARE:.0f} % of the "
                f"budget, so {fewer}")
        validations = fewer
    train = budget * (1 - RESERVE) - validations * each
    if train < 0.2 * budget:
        why += (f"; training keeps 20 % of the budget: the run takes "
                f"~{(0.2 * budget - train) / 60:.1f} min more than planned")
        train = 0.2 * budget
    return SchedulePlan(validations, each, train, why)
