"""`dacapo.training.batches.close_loader`: a data worker's error ends the process. The
error re-raised in the loop keeps the loader's iterator alive in its traceback and the
workers ignore SIGTERM, so without it the interpreter's exit waited for them forever."""

from __future__ import annotations

import subprocess
import sys
import textwrap

DATASET = '''
class Failing:
    def __len__(self):
        return 8

    def __getitem__(self, index):
        raise ValueError("raw: bad value in a worker")
'''

SCRIPT = '''
import sys
from failing import Failing
from dacapo.training.batches import close_loader, make_loader


def main():
    batches = iter(make_loader(Failing(), 0, 8, num_workers=1))
    try:
        try:
            next(batches)
        finally:
            if sys.argv[1] == "close":
                close_loader(batches)
    except ValueError as e:  # kept, with its traceback, as the CLI's error handler keeps it
        print("error:", e, flush=True)
        sys.exit(2)


if __name__ == "__main__":  # the spawned worker imports this file
    main()
'''


def test_a_worker_error_ends_the_process(tmp_path):
    # without close_loader ("keep") the same script never ends: measured once, not run here
    (tmp_path / "failing.py").write_text(textwrap.dedent(DATASET))
    (tmp_path / "run.py").write_text(textwrap.dedent(SCRIPT))
    result = subprocess.run([sys.executable, "run.py", "close"], cwd=tmp_path, timeout=120,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "ValueError: raw: bad value in a worker" in result.stdout
