"""The run's log file: dacapo's log records also written to a file while a job runs."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def log_to_file(path: Path):
    """Also send dacapo's log records to ``path`` while inside the block."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("dacapo")
    old_level = root.level
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
