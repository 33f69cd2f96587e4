"""``python -m dacapo.blockwise <spec>``: a worker started through a worker command
(`dacapo.blockwise.worker.main`; run from here so that the classes of the pickled spec and
of the blocks are those of `dacapo.blockwise.worker`, not copies in ``__main__``)."""

import logging

from dacapo.blockwise.fast_exit import fast_exit
from dacapo.blockwise.worker import main

logging.basicConfig(level=logging.INFO)
main()
fast_exit(0)  # the blocks are written and marked done: skip the module teardown
