"""The benchmark scripts as the tests import them: top-level modules of ``benchmarks/`` (not
a package), as when a script runs (``python benchmarks/x.py`` puts its folder on the path)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
