"""`fast_exit`: end a command-line process without Python's module teardown."""

from __future__ import annotations

import atexit
import os
import sys
import threading


def fast_exit(code: int = 0) -> None:
    """End the process once a command is done as Python's own exit would — wait for the
    non-daemon threads (idle thread-pool workers are released), run the atexit handlers
    (log files flushed, temporary folders removed, child processes joined), flush
    stdout/stderr — then ``os._exit``, skipping the teardown of every imported module
    (torch, dask, zarr, scipy, ...), which takes ~1 s on a 2-core machine after the work
    is done (`benchmarks/bench_predict.py`). Off the main thread, or on a Python without
    ``threading._shutdown``, the normal exit is taken."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None or threading.current_thread() is not threading.main_thread():
        sys.exit(code)
    shutdown()  # what the interpreter calls first at exit: joins the non-daemon threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)
