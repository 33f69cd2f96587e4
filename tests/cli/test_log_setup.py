"""`dacapo.cli.log_setup`: an asyncio task's exception that nobody retrieved (zarr's
concurrent writes into a read-only folder leave such tasks behind) prints nothing by
default and one line without a traceback with ``-v``; other errors print as before."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import asyncio, gc, logging, sys
from dacapo.cli.log_setup import configure_logging
configure_logging(sys.argv[1] == "verbose")

async def fails():
    raise PermissionError(1, "Operation not permitted")

async def main():
    asyncio.get_running_loop().create_task(fails())
    await asyncio.sleep(0.01)

asyncio.run(main())
gc.collect()
logging.getLogger("dacapo.test").error("another error", exc_info=ValueError("kept"))
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_unretrieved_task_errors_print_no_traceback(verbose):
    result = subprocess.run([sys.executable, "-c", SCRIPT, "verbose" if verbose else "-"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    task_lines = [line for line in lines if line.startswith("ERROR asyncio")]
    if verbose:
        assert task_lines == ["ERROR asyncio: a concurrent write task also failed: "
                              "PermissionError(1, 'Operation not permitted')"], result.stderr
    else:
        assert task_lines == [], result.stderr
    assert "never retrieved" not in result.stderr
    # the filter touches asyncio's record only: another error keeps its traceback
    assert lines[lines.index("ERROR dacapo.test: another error") + 1] == "ValueError: kept"
