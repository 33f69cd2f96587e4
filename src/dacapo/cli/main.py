"""The ``dacapo`` command line: verify, train, validate, apply, convert, plan, downsample,
view, export, config-help, demo.

Bad input (a config or data problem: `ConfigError`, `ValueError`, `FileNotFoundError`,
`TypeError` from our code) prints one line ``error: ...`` on stderr and exits with code 2,
without a traceback; so does an `OSError` (`PermissionError`: a read-only, protected or
full location), as ``error: '<path>': <reason>``. ``--debug`` (before the command) shows
the traceback instead.
"""

from __future__ import annotations

import functools
import signal
import sys
from pathlib import Path

import attr
import click

from dacapo.blockwise import BlockwiseError
from dacapo.blockwise.fast_exit import fast_exit
from dacapo.blockwise.options import WORKERS_HELP
from dacapo.cli.input_paths import check_run_dir, check_zarr_input
from dacapo.cli.log_setup import configure_logging, hide_notices

# The commands import the pipeline (hence torch) when they run, each marked "lazy":
# ``dacapo --help`` and a mistyped option answer at once instead of after seconds.

BAD_INPUT = 2
#: the installed distribution whose version ``dacapo --version`` prints
DISTRIBUTION = "dacapo-tasks"


def unwrap_worker_message(text: str) -> str:
    """The original error line of an exception re-raised from a worker process.

    torch's DataLoader re-raises a worker's exception as ``Caught ValueError in DataLoader
    worker process 0.\\nOriginal Traceback ...\\nValueError: <message>``; this returns
    ``<message>`` (other texts unchanged).
    """
    if "Original Traceback" not in text:
        return text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1].strip()
    head, sep, rest = last.partition(": ")
    if sep and head.replace(".", "").replace("_", "").isalnum() and head[:1].isupper():
        return rest
    return last


def _one_line(e: BaseException) -> str:
    text = unwrap_worker_message(str(e).strip()) or type(e).__name__
    if isinstance(e, KeyError):
        text = f"missing key {text}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines) if len(lines) <= 3 else lines[0]


def _os_error_line(e: OSError) -> str:
    """``'<path>': <reason>`` of an OS error on a path (both paths of a rename), else its
    text on one line."""
    if e.filename is None:
        return _one_line(e)
    paths = " -> ".join(repr(str(p)) for p in (e.filename, e.filename2) if p is not None)
    return f"{paths}: {e.strerror or _one_line(e)}"


def _progress(quiet: bool) -> bool:
    """Progress bars only on a terminal: redirected to a file they fill it with updates."""
    return not quiet and sys.stderr.isatty()


def handle_errors(func):
    """Turn bad-input exceptions and OS errors (a read-only output...) into ``error:
    <message>`` and exit code 2 (module docstring)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return func(*args, **kwargs)
        except (ValueError, FileNotFoundError, TypeError, KeyError, NotADirectoryError) as e:
            if debug:
                raise
            click.echo(f"error: {_one_line(e)}", err=True)
            sys.exit(BAD_INPUT)
        except BlockwiseError as e:
            if debug:
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except OSError as e:
            if debug:
                raise
            click.echo(f"error: {_os_error_line(e)}", err=True)
            sys.exit(BAD_INPUT)

    return wrapper


def _load_run_config(path: str):
    from dacapo.experiments.run_config import RunConfig  # lazy: see top
    from dacapo.io.config_yaml import from_yaml  # lazy: see top

    return from_yaml(Path(path), RunConfig)


#: ``--workers`` of validate and apply: one meaning (`dacapo.blockwise.options`)
workers_option = click.option("--workers", type=int, default=None, help=WORKERS_HELP)


def _absolute_paths(rc):
    """The run config with dataset paths made absolute (relative to the current dir)."""
    return attr.evolve(rc, datasplit_config=rc.datasplit_config.resolve(Path.cwd()))


def _mlflow_trackers(setting: str | None, main: bool) -> list:
    """``[MlflowTracker(setting)]`` in the main process when ``--mlflow`` is given."""
    if setting is None or not main:
        return []
    try:
        from dacapo.runs.mlflow_log import MlflowTracker  # lazy: mlflow only when asked
    except ModuleNotFoundError as e:
        raise ValueError(f"--mlflow: {e}; install the extra: pip install "
                         "'dacapo-tasks[mlflow]'") from None
    return [MlflowTracker(setting)]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION, prog_name="dacapo",
                      message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", is_flag=True, help="Log INFO messages to stderr.")
def cli(debug: bool, verbose: bool) -> None:
    """dacapo: train, validate and apply segmentation models on large 2D/3D volumes."""
    # run directories log INFO to files; the terminal shows warnings and notices (-v: INFO)
    configure_logging(verbose)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--no-data", is_flag=True, help="Skip opening the data arrays.")
@handle_errors
def verify(config: str, no_data: bool) -> None:
    """Check a run config (or a task/architecture config) YAML file.

    Prints 'valid' or every problem found; exit code 2 when invalid.
    """
    from dacapo.experiments.run_config import RunConfig  # lazy: see top
    from dacapo.io.config_yaml import from_yaml  # lazy: see top
    from dacapo.runs.verify import run_problems  # lazy: see top

    obj = from_yaml(Path(config))
    if isinstance(obj, RunConfig):
        problems = run_problems(_absolute_paths(obj), check_data=not no_data)
    elif hasattr(obj, "verify"):
        ok, reason = obj.verify()
        problems = [] if ok else [reason]
    else:
        problems = [f"{type(obj).__name__} cannot be verified on its own"]
    if problems:
        click.echo(f"{config}: invalid", err=True)
        for p in problems:
            click.echo(f"  - {p}", err=True)
        sys.exit(BAD_INPUT)
    click.echo(f"{config}: valid")


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--root", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder that holds the run directories.")
@click.option("--no-validate", is_flag=True, help="Skip validation during training.")
@click.option("--quiet", is_flag=True, help="Print warnings and one final line only: no "
              "progress (bar or lines), no notices, no score table.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, help="Data-parallel "
              "processes here (torchrun; one per GPU, or gloo on the CPU). Several machines: docs/cli.md.")
@click.option("--mlflow", "mlflow", is_flag=False, flag_value="default", default=None,
              metavar="[URI]", help="Track in MLflow too: alone (after CONFIG), a SQLite "
              "store ROOT/mlflow.db; or a tracking URI (--mlflow=http://host:5000). docs/cli.md.")
@handle_errors
def train(config: str, root: str, no_validate: bool, quiet: bool, nproc: int,
          mlflow: str | None) -> None:
    """Train the run described by CONFIG in ROOT/<name> (resumes when re-run)."""
    from dacapo.runs.scores import format_table, summary_line  # lazy: see top
    from dacapo.training.distributed import relaunch_with_torchrun, world_from_env  # lazy: see top
    from dacapo.training.loop import train_run  # lazy: see top
    from dacapo.training.stop import TrainingStopped  # lazy: see top

    if quiet:
        hide_notices()
    world = world_from_env()
    if nproc > 1 and not world.active:  # this process becomes torchrun, starting the ranks
        relaunch_with_torchrun(nproc, sys.argv[1:])
    rc = _absolute_paths(_load_run_config(config))
    try:
        run_dir = train_run(rc, root, progress=_progress(quiet), validate=not no_validate,
                            progress_lines=not quiet,
                            trackers=_mlflow_trackers(mlflow, world.main))
    except TrainingStopped as e:  # SIGTERM/SIGINT: checkpoint written and said (docs/cli.md)
        for s in (signal.SIGINT, signal.SIGTERM):  # a further Ctrl-C while the data workers
            signal.signal(s, signal.SIG_IGN)  # end would only print a traceback
        if quiet and world.main:  # its notice was hidden: the final line
            click.echo(f"{rc.name}: {e}", err=True)
        sys.exit(e.exit_code)
    if not world.main:
        return
    if quiet:
        click.echo(summary_line(run_dir))
        return
    click.echo(f"run directory: {run_dir.path}")
    if run_dir.validation_scores_file.is_file():
        click.echo(format_table(run_dir))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--iteration", type=int, default=None, help="Checkpoint (default: the latest).")
@workers_option
@click.option("--quiet", is_flag=True, help="No progress bar (on a terminal) or progress lines (in a log).")
@handle_errors
def validate(run_dir: str, iteration: int | None, workers: int | None, quiet: bool) -> None:
    """Validate a checkpoint of RUN_DIR: predict, post-process every parameter, score."""
    from dacapo.pipeline.predict_options import PredictOptions  # lazy: see top
    from dacapo.pipeline.validate import validate_run  # lazy: see top
    from dacapo.runs.plots import safe_plot_run  # lazy: see top
    from dacapo.runs.scores import format_table  # lazy: see top

    check_run_dir(run_dir)
    options = PredictOptions(num_workers=workers, progress=_progress(quiet), lines=not quiet)
    rows = validate_run(run_dir, iteration, options)
    safe_plot_run(run_dir)
    click.echo(format_table(run_dir, rows[0]["iteration"] if rows else None))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--input", "input_", required=True,
              help="Raw zarr array, e.g. data.zarr/raw, or a collection (dacapo convert "
                   "--collection): then every image, into OUTPUT/<image>.")
@click.option("--output", required=True, help="Output zarr array, e.g. out.zarr/seg.")
@click.option("--iteration", type=int, default=None, help="Checkpoint to use.")
@click.option("--criterion", default=None, help="Use the best checkpoint and parameters for it.")
@workers_option
@click.option("--worker-command", default=None,
              help="Shell template starting a worker, e.g. 'srun --ntasks=1 "
                   "--cpus-per-task=1 {command}'.")
@click.option("--padding", type=click.Choice(["reflect", "zero", "none"]), default=None,
              help="Context beyond the input: mirrored, zeros, or none (then the border "
                   "the model cannot see is not segmented). Default: the run's.")
@click.option("--engine", type=click.Choice(["auto", "onnx", "torch", "channels_last", "compile"]),
              default="auto", help="Model runtime (auto: ONNX Runtime on a CPU if installed).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32",
              help="Forward pass precision (bf16/fp16: autocast, engine torch).")
@click.option("--quiet", is_flag=True, help="No progress bar (on a terminal) or progress lines (in a log).")
@click.option("--pyramid", is_flag=True,
              help="Add pyramid levels to the prediction and the output (see downsample).")
@handle_errors
def apply(run_dir: str, input_: str, output: str, iteration: int | None, criterion: str | None,
          workers: int | None, worker_command: str | None, padding: str | None,
          engine: str, precision: str, quiet: bool, pyramid: bool) -> None:
    """Segment INPUT with a trained run, blockwise, into OUTPUT."""
    from dacapo.io.collection import is_collection  # lazy: see top
    from dacapo.pipeline.apply import apply_collection, apply_run  # lazy: see top
    from dacapo.pipeline.predict_options import PredictOptions  # lazy: see top
    from dacapo.runs.run_dir import RunDir  # lazy: see top
    from dacapo.tools.pyramid import downsample_image  # lazy: see top

    if iteration is not None and criterion is not None:
        raise ValueError("give --iteration or --criterion, not both")
    check_run_dir(run_dir)
    check_zarr_input(input_, "--input")
    options = PredictOptions(num_workers=workers, worker_command=worker_command,
                             progress=_progress(quiet), lines=not quiet, padding=padding,
                             engine=engine,
                             precision=precision)
    if is_collection(input_):  # every image on its own, into OUTPUT/<image>
        if pyramid:
            raise ValueError("--pyramid: not for a collection (apply its images one by one)")
        outs = apply_collection(run_dir, input_, output, options, iteration=iteration,
                                criterion=criterion)
        for image, out in outs.items():
            click.echo(f"wrote {Path(output) / image} (shape {tuple(out.shape)}, voxel size "
                       f"{tuple(out.voxel_size)})")
        return
    out = apply_run(run_dir, input_, output, options, iteration=iteration, criterion=criterion)
    click.echo(f"wrote {output} (shape {tuple(out.shape)}, voxel size {tuple(out.voxel_size)})")
    if pyramid:
        prediction = Path(output).with_name(Path(output).name + "_prediction")
        local = options.for_run(RunDir(run_dir).load_config()).num_workers  # local processes
        for path in (prediction, Path(output)):
            levels = downsample_image(path, num_workers=local)
            click.echo(f"{path}: levels {', '.join(levels)}")


@cli.command()
@click.option("--root", default="demo_runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo data and run directories.")
@click.option("--quick", is_flag=True, help="A few iterations only (smoke test).")
@handle_errors
def demo(root: str, quick: bool) -> None:
    """Synthetic data, then train + validate + apply a Distance and an Affinities task.

    Exit code 1 when a quality goal (Dice >= 0.9, VOI <= 0.5) is not met."""
    from dacapo.cli.demo import run_demo  # lazy: see top

    results = run_demo(root, quick=quick, echo=click.echo)
    if quick:
        return
    runs = [r for r in results.values() if isinstance(r, dict)]
    if not all(r["goal_met"] for r in runs):
        click.echo("demo: a quality goal was not met (see the summary above)", err=True)
        sys.exit(1)
    if not results["_goals_met"]:
        click.echo("demo: slower than the time goal (a busy machine?)", err=True)


from dacapo.cli.plan_cmd import plan  # noqa: E402 - kept out of this file for its length
from dacapo.cli.tools_cmd import TOOLS  # noqa: E402 - kept out of this file for its length

for _command in (plan, *TOOLS):
    _command.callback = handle_errors(_command.callback)
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """The ``dacapo`` command (`cli`), ending with `fast_exit`."""
    try:
        cli.main(args=argv, standalone_mode=True)
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    fast_exit(code)


if __name__ == "__main__":
    main()
