"""Worker entry point for `run_blockwise(..., worker_command=...)`.

Started as ``python -m dacapo.blockwise.worker <spec-file>`` by the shell
command template. Connects to the daisy server named in the ``DAISY_CONTEXT``
environment variable and processes blocks until the server has none left.
"""

from __future__ import annotations

import argparse
import logging
import os

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    """Run the daisy client loop for the pickled spec given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", help="worker spec file written by run_blockwise")
    parser.add_argument(
        "--daisy-context",
        default=None,
        help="daisy context string (overrides the DAISY_CONTEXT environment variable)",
    )
    args = parser.parse_args(argv)
    if args.daisy_context:
        os.environ["DAISY_CONTEXT"] = args.daisy_context

    from daisy import Client

    from dacapo.blockwise.runner import _run_block, load_spec

    spec = load_spec(args.spec)
    client = Client()
    logger.info("worker for task %s connected: %s", spec.task_id, client.connected)
    while True:
        with client.acquire_block() as block:
            if block is None:
                break
            _run_block(spec, block)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
