"""`dacapo.blockwise.fast_exit`: the exit code, atexit handlers and buffered output survive the skipped
teardown; a running non-daemon thread is waited for."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(tmp_path, body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import atexit, pathlib, sys, threading, time
        from dacapo.blockwise.fast_exit import fast_exit
        out = pathlib.Path({str(tmp_path)!r})
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        sys.stdout.write("buffered, no newline")
    """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_code_atexit_and_output_survive(tmp_path):
    result = _run(tmp_path, "fast_exit(3)\nraise SystemExit('not reached')\n")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "buffered, no newline"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_running_non_daemon_thread_is_waited_for(tmp_path):
    result = _run(tmp_path, """
        def late():
            time.sleep(0.5)
            (out / "thread").write_text("done")
        threading.Thread(target=late).start()
        fast_exit(4)
    """)
    assert result.returncode == 4, result.stderr
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "ran"
