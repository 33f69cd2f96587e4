"""The ``dacapo`` commands that convert, downsample, view and export arrays and runs, and
the config reference (registered by `dacapo.cli` with its error handling; each imports
its module when it runs, marked "lazy", so ``dacapo --help`` answers at once)."""

from __future__ import annotations

from pathlib import Path

import click


def _parse_ints(text: str, name: str) -> list[int]:
    """``40,8,8`` or ``40x8x8`` as integers; ValueError naming the option otherwise."""
    try:
        return [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError as e:
        raise ValueError(f"{name}: expected integers like 40,8,8, got {text!r}") from e


@click.command()
@click.argument("source", type=click.Path())
@click.argument("output")
@click.option("--voxel-size", default=None,
              help="World units per voxel, e.g. 40,8,8 (z,y,x); required for TIFF.")
@click.option("--offset", default=None, help="World offset, e.g. 0,0,0.")
@click.option("--axis-names", default=None, help="e.g. z,y,x (default by dimension).")
@click.option("--units", default="nm", show_default=True, help="Unit of every spatial axis.")
@click.option("--chunk", type=int, default=None,
              help="Chunk edge in voxels (default 64; 256 with --collection).")
@click.option("--roi", default=None, help="Crop in world units (begin:end per axis): 0:400,0:80,0:80.")
@click.option("--slices", default=None, help="Crop in voxels, e.g. 0:10,:,: (Python ranges).")
@click.option("--map", "maps", multiple=True, help="Remap a label value OLD:NEW, e.g. 255:1 (repeat).")
@click.option("--label/--no-label", default=None,
              help="Flag the output as a label image (default: with --map).")
@click.option("--collection", is_flag=True,
              help="SOURCE is a folder of unrelated images (<name>_raw.tif, <name>_labels.tif): "
                   "write OUTPUT.zarr/<name>/raw and /labels, one array per image.")
def convert(source: str, output: str, voxel_size: str | None, offset: str | None,
            axis_names: str | None, units: str, chunk: int | None, roi: str | None,
            slices: str | None, maps: tuple[str, ...], label: bool | None,
            collection: bool) -> None:
    """Convert a TIFF stack (file or folder of 2D TIFFs) or a zarr array into the
    OME-NGFF image OUTPUT, optionally cropped and with label values remapped; or, with
    --collection, a folder of separate images into a collection (docs/formats.md)."""
    from dacapo.tools.convert import convert_tiff, parse_map, parse_roi  # lazy: see top
    from dacapo.tools.convert_collection import (  # lazy: see top
        convert_collection,
        has_labels_files,
    )

    vs = None if voxel_size is None else _parse_ints(voxel_size, "--voxel-size")
    if collection:
        given = [o for o, v in (("--offset", offset), ("--roi", roi), ("--slices", slices),
                                ("--map", maps), ("--label/--no-label", label is not None)) if v]
        if given:
            raise ValueError(f"--collection: {', '.join(given)} not supported (it takes "
                             "--voxel-size, --units, --axis-names and --chunk only)")
        if vs is None:
            raise ValueError("--collection needs --voxel-size")
        images = convert_collection(source, output, vs, units=units, chunk=chunk or 256,
                                    axis_names=None if axis_names is None else axis_names.split(","))
        labelled = sum(i.labels is not None for i in images)
        click.echo(f"wrote {output}: a collection of {len(images)} image(s), {labelled} labelled")
        return
    if Path(source).is_dir() and has_labels_files(source):
        raise ValueError(f"{source!r} holds *_labels.tif files: to keep its images apart give "
                         "--collection (a stack would put raw and labels in one volume)")
    arr = convert_tiff(
        source, output, vs,
        offset=None if offset is None else _parse_ints(offset, "--offset"),
        axis_names=None if axis_names is None else axis_names.split(","),
        units=units, chunk=chunk or 64,
        roi=None if roi is None else parse_roi(roi, roi.count(",") + 1),
        slices=slices, mapping=parse_map(maps), label=label,
    )
    click.echo(f"wrote {output}: shape {tuple(arr.shape)}, dtype {arr.dtype}, "
               f"voxel size {tuple(arr.voxel_size)}, offset {tuple(arr.roi.offset)}")


@click.command()
@click.argument("array", type=click.Path(exists=True, file_okay=False))
@click.option("--levels", type=int, default=None,
              help="Levels to add (default: until the largest axis has <= 64 voxels).")
@click.option("--method", type=click.Choice(["mean", "mode", "stride"]), default=None,
              help="Default: mode for label images, mean otherwise.")
@click.option("--workers", type=int, default=1, show_default=True, help="Blockwise workers.")
def downsample(array: str, levels: int | None, method: str | None, workers: int) -> None:
    """Add pyramid levels s1, s2, ... to the OME-NGFF image ARRAY (blockwise, resumable)."""
    from dacapo.tools.pyramid import downsample_image  # lazy: see top

    paths = downsample_image(array, levels=levels, method=method, num_workers=workers)
    click.echo(f"{array}: levels {', '.join(paths)}")


@click.command()
@click.argument("arrays", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--bind-address", default="127.0.0.1", show_default=True,
              help="Address the viewer's server listens on (0.0.0.0 for all).")
@click.option("--port", type=int, default=0, show_default=True, help="Port (0: any free one).")
@click.option("--no-browser", is_flag=True, help="Only print the URL.")
@click.option("--channels", default=None, help="RGB channels of a multi-channel image: 0,1,2.")
@click.option("--layout", default=None, help="neuroglancer layout: xy, 3d, 4panel (3D default)...")
@click.option("--screenshot", "screenshot_path", default=None, type=click.Path(dir_okay=False),
              help="Write a PNG rendered by headless chromium and exit.")
def view(arrays: tuple[str, ...], bind_address: str, port: int, no_browser: bool,
         channels: str | None, layout: str | None, screenshot_path: str | None) -> None:
    """Show zarr arrays / OME-NGFF images (or a run directory's latest validation: raw, GT,
    prediction, segmentation) in a local neuroglancer viewer, served chunk by chunk."""
    from dacapo.tools.view import serve_forever  # lazy: see top

    serve_forever(list(arrays), bind_address=bind_address, port=port,
                  open_browser=not no_browser and screenshot_path is None, echo=click.echo,
                  rgb_channels=channels and _parse_ints(channels, "--channels"), layout=layout,
                  screenshot_path=screenshot_path)


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--iteration", type=int, default=None, help="Checkpoint to export.")
@click.option("--criterion", default=None,
              help="Export the best checkpoint for this criterion (default: the task's main one).")
@click.option("--author", "authors", multiple=True,
              help="Author name (repeatable; default: your login name).")
@click.option("--license", "license_", default="CC-BY-4.0", show_default=True,
              help="SPDX licence identifier of the package.")
@click.option("--cite", multiple=True,
              help="'TEXT|DOI' or 'TEXT|URL' (repeatable; default: the U-Net paper, plus the "
                   "LSD paper for LSD models).")
@click.option("--name", default=None, help="Model name (default: 'dacapo <run name>').")
@click.option("--description", default=None, help="One-paragraph description.")
def export_cmd(run_dir: str, output: str, iteration: int | None, criterion: str | None,
               authors: tuple[str, ...], license_: str, cite: tuple[str, ...], name: str | None,
               description: str | None) -> None:
    """Write a bioimage.io model package of a trained run to OUTPUT, a file ending in .zip
    (e.g. model.zip; an existing one is overwritten): runs without dacapo."""
    from dacapo.cli.input_paths import check_run_dir  # lazy: see top
    from dacapo.tools.export.bioimageio import export_run  # lazy: see top

    if iteration is not None and criterion is not None:
        raise ValueError("give --iteration or --criterion, not both")
    check_run_dir(run_dir)
    path = export_run(run_dir, output, iteration=iteration, criterion=criterion, authors=authors,
                      license=license_, citations=cite, name=name, description=description)
    click.echo(f"wrote {path}")
    if (Path(run_dir) / "mlflow.json").is_file():  # trained with --mlflow: the package too
        _log_package(run_dir, path)


def _log_package(run_dir: str, path) -> None:
    """``path`` as an artifact of the run's MLflow run; a failure is a warning line."""
    try:
        from dacapo.runs.mlflow_log import log_to_tracked_run  # lazy: mlflow only when tracked
        from dacapo.runs.run_dir import RunDir  # lazy: see top

        run_id = log_to_tracked_run(RunDir(run_dir), Path(path), "package")
        click.echo(f"logged {Path(path).name} to MLflow run {run_id}")
    except Exception as e:  # noqa: BLE001 - the package is written; tracking is extra
        click.echo(f"warning: the package was not logged to MLflow ({type(e).__name__}: {e})",
                   err=True)


@click.command("config-help")
@click.argument("kind", required=False)
@click.option("--markdown", is_flag=True, help="All kinds as markdown (docs/configuration.md).")
def config_help(kind: str | None, markdown: bool) -> None:
    """Reference of every config field, from the code's help texts.

    KIND: run, task, architecture, trainer, augmentation, datasplit or a class name
    (default: all)."""
    from dacapo.cli.config_help import reference_markdown, reference_text  # lazy: see top

    click.echo(reference_markdown() if markdown else reference_text(kind), nl=False)


TOOLS = [convert, downsample, view, export_cmd, config_help]
