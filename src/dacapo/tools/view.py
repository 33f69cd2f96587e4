"""``dacapo view``: zarr arrays and OME-NGFF images in a local neuroglancer viewer.

Each array is served **lazily** by the `neuroglancer` package's Python server: a
`dacapo.tools.pyramid_volume.PyramidVolume` answers every chunk request by reading only that
region, from the pyramid level that fits the requested downsampling. Layers: label images
(OME ``image-label``, or integer arrays named like ``gt``/``labels``/``segmentation``) as
segmentation layers, everything else as image layers; a multi-channel image (affinities,
LSDs) as RGB of three chosen channels.
Coordinates: voxel size and offset of level 0 in the arrays' units (world coordinates
agree across layers).

``dacapo view RUN_DIR`` shows the run's first validation dataset: raw, GT, and the latest
validation prediction and segmentation (of the parameters best for the task's main criterion
when that iteration is the best one, else the first of the sweep).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path

import neuroglancer as ng
import numpy as np
from funlib.persistence import Array
from neuroglancer import server

from dacapo.io.ome_read import is_label, level_paths, open_ds
from dacapo.runs.run_dir import RunDir
from dacapo.runs.scores import main_criterion
from dacapo.tools.pyramid_volume import PyramidVolume

logger = logging.getLogger(__name__)

__all__ = ["add_layers", "chunk_url", "make_viewer", "run_dir_arrays", "screenshot",
           "serve_forever"]

_LABEL_NAMES = re.compile(r"(^|[_/])(gt|labels?|seg|segmentation\w*|mask|fragments)$")


def _levels(path: str | Path) -> list[Array]:
    """Every level of the image at ``path`` (a plain zarr array: itself) as `Array`s."""
    try:
        names = level_paths(path)
    except ValueError:
        return [open_ds(path)]
    return [open_ds(path, level=n) for n in names]


def _is_label(path: str | Path, array: Array) -> bool:
    if is_label(path):
        return True
    integer = np.issubdtype(array.dtype, np.integer) or array.dtype == bool
    return bool(integer and array.channel_dims == 0 and _LABEL_NAMES.search(Path(path).name))


def _rgb_shader(channels: Sequence[int], integer: bool) -> str:
    value = "toNormalized(getDataValue({}))" if integer else "getDataValue({})"
    rgb = ", ".join(value.format(c) for c in channels)
    return f"void main() {{\n  emitRGB(vec3({rgb}));\n}}\n"


def add_layers(state, paths: Sequence[str | Path], rgb_channels: Sequence[int] | None = None,
               labels: Sequence[str | Path] = ()) -> dict:
    """Add one layer per array path to the viewer ``state`` (``labels``: paths shown as
    segmentations whatever their metadata); returns {layer name: volume}."""
    labels = {str(p) for p in labels}
    volumes = {}
    used: set[str] = set()
    for path in paths:
        levels = _levels(path)
        base = levels[0]
        name = Path(path).name
        if Path(path).parent.suffix == ".zarr" and name in used | {"prediction"}:
            name = f"{Path(path).parent.stem}/{name}"
        while name in used:
            name += "'"
        used.add(name)
        if (_is_label(path, base) or str(path) in labels) and base.channel_dims == 0:
            # neuroglancer segmentations are uint32 or uint64
            dtype = np.uint64 if np.dtype(base.dtype).itemsize > 4 else np.uint32
            volume = PyramidVolume(levels, "segmentation", dtype)
            state.layers[name] = ng.SegmentationLayer(source=volume)
        else:
            volume = PyramidVolume(levels, "image")
            integer = np.issubdtype(base.dtype, np.integer)
            if base.channel_dims:
                n = int(base.shape[0])
                chosen = list(rgb_channels or range(min(3, n)))
                if any(c >= n or c < 0 for c in chosen):
                    raise ValueError(f"{path}: --channels {chosen} not in 0..{n - 1}")
                chosen = (chosen + [chosen[-1]] * 3)[:3] if len(chosen) < 3 else chosen[:3]
                state.layers[name] = ng.ImageLayer(source=volume,
                                                   shader=_rgb_shader(chosen, integer))
            else:
                state.layers[name] = ng.ImageLayer(source=volume)
        volumes[name] = volume
    return volumes


def run_dir_arrays(run_dir: str | Path) -> list[str]:
    """Raw, GT, latest validation prediction and its segmentation of a run directory."""
    run = RunDir(run_dir)
    rc = run.load_config()
    if not rc.datasplit_config.validate:
        raise ValueError(f"run {str(run_dir)!r}: no validation dataset to show")
    ds = rc.datasplit_config.validate[0]
    paths = [ds.raw, ds.gt]
    iterations = sorted(p for p in run.predictions.glob("*") if p.name.isdigit()) if run.predictions.exists() else []
    if not iterations:
        logger.warning("run %s: no validation predictions yet; showing raw and GT", run_dir)
        return paths
    folder = iterations[-1] / f"{ds.name}.zarr"
    if (folder / "prediction").exists():
        paths.append(str(folder / "prediction"))
    segs = sorted(folder.glob("segmentation_*"), key=lambda p: (len(p.name), p.name))
    entry = run.load_best().get(main_criterion(rc.task_config.build()), {})
    best_id = (entry.get("parameters", {}).get("id")
               if int(entry.get("iteration", -1)) == int(iterations[-1].name) else None)
    chosen = [s for s in segs if best_id is not None and s.name == f"segmentation_{best_id}"]
    if chosen or segs:
        paths.append(str((chosen or segs)[0]))
    return paths


def _expand(paths: Sequence[str | Path]) -> tuple[list[str], list[str]]:
    """(array paths, the GT among them) with run directories expanded."""
    out: list[str] = []
    gts: list[str] = []
    for p in paths:
        if (Path(p) / "run.yaml").exists():  # a run directory
            arrays = run_dir_arrays(p)
            out.extend(arrays)
            gts.append(arrays[1])
        else:
            out.append(str(p))
    return out, gts


def make_viewer(paths: Sequence[str | Path], bind_address: str = "127.0.0.1", port: int = 0,
                rgb_channels: Sequence[int] | None = None, layout: str | None = None):
    """(neuroglancer Viewer showing ``paths``, {layer: volume}); run dirs are expanded.
    ``layout``: a neuroglancer layout (default ``4panel`` in 3D, ``xy`` in 2D)."""
    ng.set_server_bind_address(bind_address, bind_port=port)
    viewer = ng.Viewer()
    expanded, gts = _expand(paths)
    with viewer.txn() as state:
        volumes = add_layers(state, expanded, rgb_channels, labels=gts)
        flat = all(v.levels[0].voxel_size.dims == 2 for v in volumes.values())
        state.layout = layout or ("xy" if flat else "4panel")
        _global_space(state, volumes)
    return viewer, volumes


def _global_space(state, volumes) -> None:
    """Global coordinates x across, y down, z through the screen (the arrays' axes are
    z, y, x), at the finest voxel size; centred on the first layer, zoomed to fit it."""
    finest: dict[str, tuple[float, str]] = {}
    for v in volumes.values():
        for name, unit, scale in zip(v.dimensions.names, v.dimensions.units, v.dimensions.scales):
            if not name.endswith("^") and (name not in finest or scale < finest[name][0]):
                finest[name] = (scale, unit)
    order = [n for n in ("x", "y", "z") if n in finest] + sorted(
        n for n in finest if n not in ("x", "y", "z"))
    state.dimensions = ng.CoordinateSpace(names=order, units=[finest[n][1] for n in order],
                                          scales=[finest[n][0] for n in order])
    volume = next(iter(volumes.values()))
    first = volume.levels[0]
    lead = first.channel_dims
    spatial = list(volume.dimensions.names)[lead:]
    metres = list(volume.dimensions.scales)[lead:]  # per voxel of level 0
    # world units of the array -> global voxels (finest voxel size, in metres)
    to_global = {n: metres[i] / first.voxel_size[i] / finest[n][0] for i, n in enumerate(spatial)}
    centre = first.roi.center
    state.position = [centre[spatial.index(n)] * to_global[n] if n in spatial else 0
                      for n in order]
    extent = [first.roi.shape[spatial.index(n)] * to_global[n] for n in order[:2] if n in spatial]
    if extent:
        state.cross_section_scale = max(extent) / 560  # the data fills ~560 screen pixels


def screenshot(viewer, path: str | Path, size: Sequence[int] = (1000, 700),
               browser: str = "chromium", timeout: float = 120) -> np.ndarray:
    """Render ``viewer`` in a headless ``browser`` (Chromium, software WebGL) once every
    visible chunk has loaded, write the PNG to ``path``; returns its RGBA pixels."""
    exe = shutil.which(browser)
    if exe is None:
        raise FileNotFoundError(f"screenshot: no {browser!r} on PATH (Debian: apt-get install chromium)")
    proc = subprocess.Popen(
        [exe, "--headless=new", "--no-sandbox", "--use-angle=swiftshader",
         "--enable-unsafe-swiftshader", f"--window-size={size[0]},{size[1]}",
         "--remote-debugging-port=0", viewer.get_viewer_url()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    try:
        shot = viewer.screenshot(size=list(size)).screenshot
    finally:
        timer.cancel()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    Path(path).write_bytes(shot.image)
    return shot.image_pixels


def chunk_url(viewer, volume, start: Sequence[int], end: Sequence[int],
              factors: Sequence[int] | None = None, data_format: str = "npz") -> str:
    """The server URL of the chunk [start, end) (voxels, at downsampling ``factors``) of
    ``volume`` — the request the neuroglancer client sends for it."""
    factors = factors or [1] * len(start)
    join = ",".join
    return (f"{server.get_server_url()}/neuroglancer/{data_format}/{viewer.token}.{volume.token}/"
            f"{join(str(int(f)) for f in factors)}/{join(str(int(s)) for s in start)}/"
            f"{join(str(int(e)) for e in end)}")


def serve_forever(paths: Sequence[str | Path], bind_address: str = "127.0.0.1", port: int = 0,
                  open_browser: bool = True, rgb_channels: Sequence[int] | None = None,
                  echo: Callable[[str], None] = print, layout: str | None = None,
                  screenshot_path: str | Path | None = None) -> None:
    """Start the viewer, print its URL, open a browser (unless told not to), serve until
    interrupted; with ``screenshot_path``, write a headless screenshot and return."""
    viewer, volumes = make_viewer(paths, bind_address, port, rgb_channels, layout)
    url = viewer.get_viewer_url()
    if screenshot_path is not None:
        screenshot(viewer, screenshot_path)
        echo(f"wrote {screenshot_path}")
        return
    echo(f"neuroglancer: {url}")
    echo(f"layers: {', '.join(volumes)} (Ctrl-C to stop)")
    if open_browser:
        webbrowser.open(url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
