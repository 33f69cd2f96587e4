"""The ``dacapo plan`` command (registered by `dacapo.cli` with its error handling; the
planning is `dacapo.planning.planner`)."""

from __future__ import annotations

import sys

import click


@click.command()
@click.argument("gt", nargs=-1, required=True)
@click.option("--raw", "raws", multiple=True, required=True,
              help="Raw zarr array of each GT (repeat in the same order).")
@click.option("--task", "kind", required=True,
              type=click.Choice(["affinities", "distance", "inner_distance", "one_hot"]),
              help="Task kind to plan.")
@click.option("--output", "-o", required=True, help="Run config YAML to write.")
@click.option("--minutes", type=float, default=10.0, show_default=True,
              help="Training budget on this machine's CPU.")
@click.option("--name", default=None, help="Run name (default planned_<task>).")
@click.option("--validate", "val", multiple=True,
              help="Validation dataset as NAME=RAW,GT (repeatable).")
@click.option("--classes", default=None, help="One-hot class names, comma-separated.")
@click.option("--channel", default=None, help="Channel name of a distance task.")
@click.option("--modality", type=click.Choice(["auto", "em", "lm"]), default="auto",
              show_default=True, help="Augmentation recipe (auto: em when in-plane <= 30 nm).")
@click.option("--seed", type=int, default=0, show_default=True)
def plan(gt, raws, kind, output, minutes, name, val, classes, channel, modality, seed) -> None:
    """Plan a run config for training data GT... (zarr arrays) and write it, commented."""
    from dacapo.planning.commented_yaml import write_plan  # lazy: see top
    from dacapo.planning.planner import plan_run  # lazy: see top

    validate = []
    for item in val:
        if "=" not in item or item.count(",") != 1:
            raise ValueError(f"--validate: expected NAME=RAW,GT, got {item!r}")
        vname, rest = item.split("=", 1)
        vraw, vgt = rest.split(",")
        validate.append((vname, vraw, vgt))
    _rc, text = plan_run(list(gt), list(raws), kind, minutes=minutes, name=name, seed=seed,
                         validate=validate, channel=channel, modality=modality,
                         classes=None if classes is None else classes.split(","))
    command = " ".join(["dacapo", "plan", *sys.argv[sys.argv.index("plan") + 1:]]) \
        if "plan" in sys.argv else "dacapo plan"
    write_plan(output, f"# {command}\n{text}")
    click.echo(f"wrote {output}")
