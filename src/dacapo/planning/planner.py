"""``dacapo plan``: a run config planned from the data (nnU-Net-style experiment planning).

From the training data's *fingerprint* (voxel size, shapes, raw intensity percentiles,
label statistics: object widths and volumes, class fractions) and a CPU time budget, the
planner chooses (rules in `dacapo.planning.rules.plan_architecture`,
`dacapo.planning.task_rules`, `plan_run`; the arithmetic in `dacapo.ops.planning`):

- **the network**: a valid-padding CNNectome UNet. Per level, while the z voxel is at
  least twice the in-plane one, convolutions are 2D ((1,3,3)) and pooling in-plane only
  ((1,2,2)); then 3D. With z ≥ ``TWO_D_RATIO`` times coarser than y/x (serial-section
  TEM) the network segments one section at a time, as nnU-Net trains 2D there, but its
  first convolution also sees ``SECTION_CONTEXT`` neighbouring sections on each side
  (input z = 3, output z = 1; membranes +0.01–0.03 interior IoU, docs/quality.md). Batch
  norm follows every convolution (a faster fit in a CPU budget on all three real volumes,
  docs/quality.md; eval mode uses the stored statistics, so blocks stay exact), unless
  much of the raw is dark background (`rules.DARK_RAW`: sparse fluorescence, where a
  crop's batch statistics depend on how much of it is empty). Levels are
  added while the bottom feature map keeps ≥ ``MIN_BOTTOM`` voxels per pooled axis and the
  field of view is smaller than ~2 object widths (at most ``MAX_LEVELS``). Feature maps
  start at ``num_fmaps`` (24 for a 2D network, 12 for a 3D one on a CPU budget) ×2 per level. The input shape is the largest that
  fits the training data and keeps the estimated step time within the budget's share.
  The UNet works on a coarser grid (``input_pooling``: the raw average-pooled, the output
  interpolated back) when the labels allow it: the coarsest factor (4, 2) whose label
  round trip keeps every structure the task draws at IoU >= 0.97
  (`dacapo.planning.scale_rules`; instance tasks' touching boundaries keep the full
  resolution).
- **the trainer**: Adam, batch 2, learning rate 1e-3 with a linear warm-up (5 %) and a
  cosine decay to 5 %; the budget less a 5 % reserve and the estimated validations
  (`cost_model.plan_schedule`: up to 4, fewer when they would take more than 40 % of it) is
  training, iterations = that / the step time (network and data worker: the cost model's
  `COST_*`, `DATA_COST_*`, fitted on one 2-core CPU, and with ``measure`` (`dacapo plan`'s
  default) the planned step timed on this machine, the crop planned again when the model is
  off: `dacapo.planning.step_fit.fit_step`); a checkpoint and a snapshot at each
  validation; bf16 (autocast) where this machine computes it in hardware
  (`dacapo.pipeline.precision.native_bf16`: 0.42-0.65x the fp32 step on an AMD EPYC) and,
  measured, it steps faster than fp32 (on an Intel Xeon capped below AMX: 1.1-1.3x), else fp32;
  the data worker gets a core of its own (``torch_threads`` = cores - 1) when the step is
  then cheaper (`cost_model.step_seconds`: the slower of network and data, not their sum);
  augmentations by modality (EM: rotation, per-section intensity, blur, defective sections
  and misalignment in anisotropic 3D; LM: rotation, intensity, gamma, noise, blur).
- **validation and apply**: the mean over in-plane flips of the input (``test_time_flips``,
  `dacapo.experiments.tta`) for tasks whose channels do not depend on direction (higher
  held-out scores on the organelles, membranes, 3D and 2D nuclei; for affinities, whose
  channels the flips map, mixed: docs/quality.md); the schedule budgets its 4 forward
  passes per validation.
- **the normalisation**: the 0.5 / 99.5 percentiles of the training raw, computed here
  and written into the config.
- **the task**: Distance/InnerDistance ``scale_factor`` = a quarter of the typical object
  width (tanh saturates at ~2 scales: the target varies across the whole object radius),
  ``clip_distance`` = half a width, ``tol_distance`` = 2 voxels; Affinities: the nearest
  neighbours plus long-range offsets of ~1/3 the typical object width per axis (at least
  2 voxels), no LSDs (the steps they cost are worth more on a CPU budget), fragments
  + agglomeration (the fields only the mutex watershed reads are not written); OneHot: the
  GT's class ids.
- **the data**: a training section whose instance ids are shared with neither neighbour
  while the stack's other sections share most (labelled apart: `dacapo.ops.section_labels`,
  found by the fingerprint, which reads the labels once) is listed in ``ignore_sections`` for tasks whose targets follow ids across sections
  (affinities, inner distances): its targets would teach boundaries the raw does not show.

"Typical object width" is the voxel-weighted median over objects of twice the largest
distance from inside the object to its boundary (`dacapo.ops.planning.object_widths`). Every choice is written
as a comment beside its value in the YAML (`dacapo.planning.commented_yaml`).
"""

from __future__ import annotations

import math
import os

import attr
from funlib.geometry import Coordinate

from dacapo.errors import InputError
from dacapo.experiments.architectures import CNNectomeUNetConfig
from dacapo.experiments.datasplits import DatasetConfig, DataSplitConfig
from dacapo.experiments.normalization import NormalizationConfig
from dacapo.experiments.run_config import RunConfig
from dacapo.experiments.trainer_config import TrainerConfig
from dacapo.experiments.tta import directional, forward_passes
from dacapo.io.arrays import open_array
from dacapo.io.ome_read import is_label
from dacapo.pipeline.precision import native_bf16
from dacapo.planning.commented_yaml import render_yaml
from dacapo.planning.cost_model import RESERVE, SchedulePlan, plan_schedule
from dacapo.planning.gt_classes import check_guessed_classes, group_classes, open_training_gt
from dacapo.planning.rules import (
    TASK_KINDS,
    ArchitecturePlan,
    Fingerprint,
    fingerprint,
    guess_modality,
    plan_architecture,
)
from dacapo.planning.step_fit import StepFit, fit_step
from dacapo.planning.task_rules import plan_augment, plan_task, task_to_plan, unread_fields
from dacapo.runs.model_builder import choose_device
from dacapo.runs.verify import split_problems

#: the largest budget (minutes) a plan takes: the step-cost model is fitted on runs of
#: minutes, and a run trains on beyond its plan when re-run with more ``num_iterations``
MAX_MINUTES = 24 * 60


def plan_run(gt_paths: list[str], raw_paths: list[str], kind: str, *, minutes: float = 10.0,
             name: str | None = None, seed: int = 0, validate=None, classes=None,
             channel: str | None = None, modality: str = "auto", validations: int = 4,
             num_fmaps: int | None = None, instance_classes: list[str] | None = None,
             measure=None):
    """(RunConfig, commented YAML text) planned for the training data ``raw_paths`` /
    ``gt_paths`` (zarr array paths) and a training budget of ``minutes`` on this CPU.

    ``validate``: list of (name, raw path, gt path) validation datasets (default none).
    ``instance_classes``: classes segmented into objects, per class (one-hot, distance).
    ``num_fmaps``: feature maps of the first level (default: `rules.FMAPS_2D` for a 2D
    network, `rules.FMAPS_3D` for a 3D one). ``measure``: a step timer (`dacapo plan`
    passes `dacapo.training.step_timer.measure_step`; None: the cost model alone): the plan
    fitted to the planned step timed on this machine (`step_fit.fit_step`: the faster
    precision, the crop planned again when the model is off, the steps from the timing). The
    data are checked first as ``dacapo
    verify`` checks them (`dacapo.runs.verify.split_problems`, the rules of the task to
    plan); InputError with every problem, or for a budget outside (0, `MAX_MINUTES`].
    """

    if kind not in TASK_KINDS:
        raise ValueError(f"--task: must be one of {list(TASK_KINDS)}, got {kind!r}")
    if len(gt_paths) != len(raw_paths) or not gt_paths:
        raise ValueError("plan: give one raw array per GT array (--raw), at least one")
    if not (math.isfinite(minutes) and 0 < minutes <= MAX_MINUTES):
        raise InputError(f"--minutes: the training budget must be more than 0 and at most "
                         f"{MAX_MINUTES} minutes (24 h), got {minutes:g}")
    if classes is None and kind in ("one_hot", "distance"):
        classes = group_classes(gt_paths)
    train = [DatasetConfig(f"train{i}" if len(raw_paths) > 1 else "train", r, g)
             for i, (r, g) in enumerate(zip(raw_paths, gt_paths))]
    val = [DatasetConfig(n, r, g) for n, r, g in (validate or [])]
    # the data check of verify and train, with the rules of the task to plan
    provisional, rules = task_to_plan(kind, classes, channel)
    split = DataSplitConfig(train, val)
    problems = split.problems() or split_problems(split, provisional, rules=rules)
    if problems:
        raise InputError("; ".join(problems))
    for p in raw_paths:
        if is_label(p):
            raise InputError(f"plan: the raw {p!r} is a label image (OME-NGFF image-label): "
                             "are the raw and the labels swapped?")
    raws = [open_array(p, "raw") for p in raw_paths]
    gts = [open_training_gt(p, classes, d.name) for p, d in zip(gt_paths, train)]
    fp = fingerprint(gts, raws, kind, num_classes=len(classes) if classes else 1)
    train = [attr.evolve(d, ignore_sections=a or None) for d, a in zip(train, fp.sections_apart)]
    if classes is None:
        check_guessed_classes(fp.label_values, kind)
    modality = guess_modality(fp) if modality == "auto" else modality
    budget = minutes * 60
    # the step-time share: pick the input so that ~300+ iterations fit the budget
    target_iterations = 1000
    task, task_notes = plan_task(fp, kind, classes, channel, instance_classes)
    built = task.build()
    padding = built.predictor.padding(fp.voxel_size) / fp.voxel_size
    dims = fp.voxel_size.dims
    val_voxels = sum(predicted_voxels(d, classes) for d in val)
    # flips where the channels are direction-free: affinities' mapped flips measured mixed
    flips = not directional(task)
    schedule = plan_schedule(budget, val_voxels,
                             len(list(built.post_processor.enumerate_parameters())), validations,
                             passes=forward_passes(dims, flips))
    validations = schedule.validations
    native = native_bf16(choose_device(None))
    norm = NormalizationConfig(method="percentile", low=fp.raw_low, high=fp.raw_high,
                               mean=fp.raw_mean, std=fp.raw_std)

    def arch_for(share: float, precision: str) -> ArchitecturePlan:
        return plan_architecture(fp, kind, share, num_fmaps=num_fmaps,
                                 padding=tuple(int(p) for p in padding), precision=precision)

    def run_config(arch: ArchitecturePlan, iterations: int, precision: str) -> RunConfig:
        trainer = TrainerConfig(
            batch_size=2, learning_rate=1e-3, lr_schedule="cosine",
            warmup_iterations=max(1, iterations // 20), final_lr_fraction=0.05,
            num_data_workers=1, augment=plan_augment(fp, modality, two_d=arch.sections)[0],
            precision=precision,
            torch_threads=max(1, (os.cpu_count() or 1) - 1) if arch.split_threads else 0,
        )
        return RunConfig(
            name=name or f"planned_{kind}", task_config=task,
            architecture_config=_unet(arch, fp.batch_norm),
            datasplit_config=DataSplitConfig(train, val), trainer_config=trainer,
            num_iterations=iterations, validation_interval=iterations // validations,
            checkpoint_interval=iterations // validations,
            snapshot_interval=iterations // validations, seed=seed, normalization=norm,
            test_time_flips=flips,
        )

    fit = fit_step(arch_for, run_config, schedule.train_seconds / target_iterations,
                    "bf16" if native else "fp32", measure)
    arch, step, precision = fit.arch, fit.step, fit.precision
    iterations = int(max(20, schedule.train_seconds // max(step, 1e-3)))
    iterations = max(validations, iterations - iterations % validations)
    aug_note = plan_augment(fp, modality, two_d=arch.sections)[1]
    rc = run_config(arch, iterations, precision)
    notes = {
        "task_config": f"{kind} task planned from {fp.num_objects} objects" if fp.num_objects
        else f"{kind} task",
        **{f"task_config.{k}": v for k, v in task_notes.items()},
        **_architecture_notes(arch, fp),
        **_schedule_notes(fp, aug_note, minutes, schedule, train, fit, native),
        "test_time_flips": ("validate and apply with the mean over in-plane flips (4 forward "
                            "passes): higher held-out scores on the organelles, membranes, 3D "
                            "and 2D nuclei (docs/quality.md)" if flips else
                            "no flips: for affinities (channels mapped) they measured mixed, "
                            "neurons better, cells worse at 3 of 4 checkpoints (docs/quality.md)"),
    }
    header = [
        f"planned by `dacapo plan --task {kind} --minutes {minutes:g}` from {len(raw_paths)} "
        f"training volume(s), voxel size {tuple(fp.voxel_size)}",
        f"modality {modality}; typical object width "
        + (f"{fp.object_width:.0f}" if fp.object_width else "-")
        + f"; foreground fraction {fp.foreground_fraction:.2f}",
        "  dacapo verify <this file>;  dacapo train <this file> --root runs",
    ]
    return rc, render_yaml(rc, notes, header, omit=unread_fields(task))


def predicted_voxels(dataset: DatasetConfig, classes) -> int:
    """Voxels a validation of ``dataset`` predicts, post-processes and scores: its GT's ROI
    within the raw's, in raw voxels (the raw's context beyond the GT is read, not
    predicted)."""
    ds = dataset.open(classes)  # as validation opens it (`dacapo.pipeline.validate`)
    roi = ds.gt.roi.intersect(ds.raw.roi)
    return math.prod(roi.shape / ds.raw.voxel_size)


def _unet(arch: ArchitecturePlan, batch_norm: bool = True) -> CNNectomeUNetConfig:
    """The planned network as a valid-padding CNNectome UNet with batch norm."""
    return CNNectomeUNetConfig(
        name="unet", input_shape=Coordinate(arch.input_shape),
        eval_shape_increase=Coordinate(arch.eval_shape_increase), fmaps_in=1,
        fmaps_out=arch.num_fmaps, num_fmaps=arch.num_fmaps, fmap_inc_factor=arch.fmap_inc_factor,
        downsample_factors=[Coordinate(f) for f in arch.factors],
        kernel_size_down=[[Coordinate(k) for k in lvl] for lvl in arch.kernels_down],
        kernel_size_up=[[Coordinate(k) for k in lvl] for lvl in arch.kernels_up],
        padding="valid", batch_norm=batch_norm,
        input_pooling=Coordinate(arch.input_pooling) if max(arch.input_pooling, default=1) > 1
        else None,
    )


def _architecture_notes(arch: ArchitecturePlan, fp: Fingerprint) -> dict[str, str]:
    """The YAML comments of the network's fields."""
    return {
        "architecture_config": arch.notes["network"],
        "architecture_config.input_shape": arch.notes["input_shape"],
        "architecture_config.downsample_factors": arch.notes["levels"],
        "architecture_config.kernel_size_down": "(1,3,3) = 2D on levels with z voxel >= 2x in-plane",
        "architecture_config.eval_shape_increase": "bigger blocks for prediction (multiples of the pooling)",
        "architecture_config.num_fmaps": f"{arch.num_fmaps} feature maps x{arch.fmap_inc_factor} per level "
                                         "(24 for 2D, 12 for 3D networks on a CPU budget; "
                                         "membranes: 24 > 12 at the same budget, docs/quality.md)",
        "architecture_config.fmaps_out": "feature maps into the task's head",
        "architecture_config.input_pooling": arch.notes["input_pooling"],
        "architecture_config.batch_norm": (
            "batch norm after every convolution: faster fit in a CPU budget (nuclei Dice "
            "0.854 -> 0.885, docs/quality.md)" if fp.batch_norm else
            f"no batch norm: {100 * fp.dark_raw_fraction:.0f} % of the raw is dark background, so "
            "a crop's batch statistics depend on how much of it is empty and eval mode shifts "
            "the output (rules.DARK_RAW)"),
    }


def _schedule_notes(fp: Fingerprint, aug_note: str, minutes: float, schedule: SchedulePlan,
                    train: list[DatasetConfig], fit: StepFit, native: bool) -> dict[str, str]:
    """The YAML comments of the trainer, the schedule, the normalisation and the data."""
    arch, step, measured = fit.arch, fit.step, fit.timing
    if fit.bf16_fp32 is not None:  # both precisions timed on the same crop
        times = (f"(network step measured here: bf16 {fit.bf16_fp32[0]:.2f} s, fp32 "
                 f"{fit.bf16_fp32[1]:.2f} s)")
        why = (f"bf16: faster than fp32 on this machine {times}" if fit.precision == "bf16" else
               f"fp32: this machine has hardware bf16, but it is slower {times}")
    elif fit.precision == "bf16":
        why = "bf16: this machine computes it in hardware (0.42-0.65x the fp32 step)"
    else:
        why = "fp32: no hardware bf16 on this machine" if not native else "fp32"
    return {
        "trainer_config.batch_size": "2 crops: fits the budget; Adam",
        "trainer_config.learning_rate": "Adam 1e-3 (with warm-up and decay; measured in docs/quality.md)",
        "trainer_config.lr_schedule": "cosine decay after a linear warm-up (5 % of the iterations)",
        "trainer_config.final_lr_fraction": "decays to 5 % of the learning rate",
        "trainer_config.augment": f"augmentations for {aug_note}",
        "trainer_config.torch_threads": (
            "the network on cores - 1 threads, the data worker on its own core: the step is the "
            "slower of the two, not their sum" if arch.split_threads else
            "all cores for the network: cheaper than giving the data worker its own core"),
        "trainer_config.precision": why,
        "num_iterations": (f"{minutes:g} min budget less {100 * RESERVE:.0f} % (start-up, "
                           f"checkpoints) and {schedule.validations} validations of "
                           f"~{schedule.validation_seconds:.0f} s = {schedule.train_seconds:.0f} s "
                           "of training / "
                           + (f"{step:.2f} s per step measured on this machine (network "
                              f"{measured.network:.2f} s, data worker {measured.data:.2f} s of "
                              f"CPU; the cost model said ~{arch.step_seconds:.2f} s)"
                              if measured else
                              f"~{step:.2f} s estimated per step (the cost model)")),
        "validation_interval": (f"{schedule.validations} validations (apply takes the best "
                                f"checkpoint); {schedule.why}"),
        "snapshot_interval": ("at every checkpoint: a training batch with its target, weight "
                              "and prediction in snapshots/ (zarr)"),
        "normalization": (f"{fp.dtype} raw: its 0.5 / 99.5 percentiles of the training data "
                          f"({fp.raw_low:g}, {fp.raw_high:g}) map to 0 / 1"),
        "datasplit_config": f"voxel size {tuple(fp.voxel_size)}, labelled regions {fp.shapes} voxels"
        + "".join(f"; {d.name}: gt sections {d.ignore_sections} share no object id with their "
                  "neighbours (labelled apart): ignored in training (ignore_sections)"
                  for d in train if d.ignore_sections),
    }
