"""The forward-pass engines side by side on trained runs' networks (what ``auto`` picks).

For each run directory given, the model of its config (weights do not change the speed)
runs one eval-shaped block through ``torch``, ``onnx`` (when installed) and
``channels_last``, two rounds each in turn (the machine's speed drifts), medians of 5 calls
after a warm-up, with torch's threads = the cores. Prints the seconds per block, the
largest difference to torch's output, and the engine `dacapo.pipeline.engines.resolve_engine`
picks for the network.

Run: ``.venv/bin/python benchmarks/bench_engines.py RUN_DIR [RUN_DIR ...]`` (e.g. the runs
of ``make bench-quality`` under ``quality_runs/runs/``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
from _harness import repeat

from dacapo.pipeline.engines import make_forward, onnx_available, resolve_engine
from dacapo.runs.model_builder import build_model
from dacapo.runs.run_dir import RunDir


def main() -> None:
    if len(sys.argv) < 2:  # (`make bench` runs every benchmark without arguments)
        print("bench_engines: give trained run directories, e.g. quality_runs/runs/planned_*;"
              " skipped")
        return
    torch.set_num_threads(os.cpu_count() or 1)
    engines = ["torch", "channels_last"] + (["onnx"] if onnx_available() else [])
    print(f"| run | block | {' | '.join(engines)} | max abs diff to torch | auto |"
          f"  (load {os.getloadavg()[0]:.1f})")
    print("|---|---|" + "---|" * len(engines) + "---|---|")
    for path in sys.argv[1:]:
        rc = RunDir(path).load_config()
        model = build_model(rc).eval()
        shape = (1, model.num_in_channels, *model.eval_input_shape)
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        times: dict[str, list[float]] = {e: [] for e in engines}
        outputs = {}
        for _ in range(2):
            for engine in engines:
                forward = make_forward(model, engine)
                outputs[engine] = forward(x)
                times[engine].append(repeat(forward, 5, x).median)
        diff = max(float(np.abs(outputs[e] - outputs["torch"]).max()) for e in engines)
        auto = resolve_engine("auto", "fp32", torch.device("cpu"),
                              input_shape=model.eval_input_shape)
        cells = " | ".join("–".join(f"{t:.3f}" for t in sorted(times[e])) for e in engines)
        print(f"| {rc.name} | {shape[2:]} | {cells} | {diff:.1e} | {auto} |", flush=True)


if __name__ == "__main__":
    main()
