"""The ``dacapo plan`` command (registered by `dacapo.cli` with its error handling; the
planning is `dacapo.planning.planner`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("gt", nargs=-1, required=True)
@click.option("--raw", "raws", multiple=True,
              help="Raw zarr array of each GT (repeat in the same order); none when GT is "
                   "one collection of images (dacapo convert --collection).")
@click.option("--task", "kind", required=True,
              type=click.Choice(["affinities", "distance", "inner_distance", "one_hot"]),
              help="Task kind to plan.")
@click.option("--output", "-o", required=True, help="Run config YAML to write.")
@click.option("--minutes", type=float, default=10.0, show_default=True,
              help="Training budget on this machine's CPU.")
@click.option("--name", default=None, help="Run name (default planned_<task>).")
@click.option("--validate", "val", multiple=True,
              help="Validation dataset as NAME=RAW,GT (repeatable).")
@click.option("--classes", default=None, help="Class names, comma-separated: one-hot GT id i is the i-th; distance: one channel per class (GT id i + 1, or the array of that name in a group of class arrays). Default: the group's array names, else the GT's ids.")
@click.option("--channel", default=None, help="Channel name of a distance task.")
@click.option("--instance-classes", "instance_classes", default=None,
              help="Classes segmented into objects, comma-separated (one-hot / distance with "
                   "--classes): each class then gets its own output and CellMap scores, the "
                   "others are semantic; '' = every class semantic, per class.")
@click.option("--modality", type=click.Choice(["auto", "em", "lm"]), default="auto",
              show_default=True, help="Augmentation recipe (auto: em when in-plane <= 30 nm).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--measure/--no-measure", default=True, show_default=True,
              help="Time the planned training step on this machine (a few seconds; cached per "
                   "machine and plan) and fit the crop and steps to the budget from that; "
                   "--no-measure: the cost model alone (fitted on another CPU).")
def plan(gt, raws, kind, output, minutes, name, val, classes, channel, instance_classes, modality,
         seed, measure) -> None:
    """Plan a run config for training data GT... (zarr arrays with --raw, or one
    collection of images) and write it, commented."""
    from dacapo.planning.commented_yaml import write_plan  # lazy: see top
    from dacapo.planning.planner import plan_run  # lazy: see top

    validate = []
    for item in val:
        if "=" not in item or item.count(",") != 1:
            raise ValueError(f"--validate: expected NAME=RAW,GT, got {item!r}")
        vname, rest = item.split("=", 1)
        vraw, vgt = rest.split(",")
        validate.append((vname, vraw, vgt))
    options = dict(minutes=minutes, name=name, seed=seed, validate=validate, channel=channel,
                   modality=modality, measure=_timer() if measure else None, classes=None if classes is None else classes.split(","),
                   instance_classes=None if instance_classes is None
                   else [c for c in instance_classes.split(",") if c])
    _check_paths(gt, raws)
    _check_plan_output(output)  # before planning (and timing): seconds, then a refusal
    if not raws:
        from dacapo.planning.collection_plan import plan_collection  # lazy: see top

        _rc, text = plan_collection(gt[0], kind, **options)
    else:
        _rc, text = plan_run(list(gt), list(raws), kind, **options)
    command = " ".join(["dacapo", "plan", *sys.argv[sys.argv.index("plan") + 1:]]) \
        if "plan" in sys.argv else "dacapo plan"
    Path(output).parent.mkdir(parents=True, exist_ok=True)  # as export and convert do
    write_plan(output, f"# {command}\n{text}")
    click.echo(f"wrote {output}")


def _check_plan_output(output: str) -> None:
    """ValueError when ``output`` exists or cannot be written (`dacapo.io.paths`)."""
    from dacapo.io.paths import check_output  # lazy: see top

    if Path(output).exists():
        raise ValueError(f"output {output!r} exists already; choose another path")
    check_output(output)


def _check_paths(gt: tuple[str, ...], raws: tuple[str, ...]) -> None:
    """ValueError naming the first GT or raw path that is missing, TIFF, or a collection
    given with --raw; or when GT without --raw is not one collection."""
    from dacapo.cli.input_paths import check_zarr_input, is_tiff_folder  # lazy: see top
    from dacapo.io.collection import is_collection  # lazy: see top

    for path in gt if not raws else (*gt, *raws):
        if not Path(path).exists():
            raise ValueError(f"plan: {path!r} does not exist")
    if not raws:
        if len(gt) == 1 and is_tiff_folder(gt[0]):
            raise ValueError(f"plan: {gt[0]!r} is a folder of TIFFs: run 'dacapo convert "
                             f"{gt[0]} OUT.zarr --collection --voxel-size ...' first and plan "
                             "OUT.zarr")
        if len(gt) != 1 or not is_collection(gt[0]):
            raise ValueError("plan: give --raw for each GT array, or one collection of images "
                             "(dacapo convert FOLDER OUT.zarr --collection) and no --raw")
        return
    for path in (*gt, *raws):
        if is_collection(path):
            raise ValueError(f"plan: {path!r} is a collection: give it without --raw")
    for path, option in [*((g, "GT") for g in gt), *((r, "--raw") for r in raws)]:
        check_zarr_input(path, f"plan: {option}")


def _timer():
    from dacapo.training.step_timer import measure_step  # lazy: see top

    return measure_step
