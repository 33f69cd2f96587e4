"""``python -m dacapo.blockwise <spec>``: a worker started through a worker command
(`dacapo.blockwise.worker.main`; run from here so that the classes of the pickled spec and
of the blocks are those of `dacapo.blockwise.worker`, not copies in ``__main__``)."""

import logging

from dacapo.blockwise.worker import main

logging.basicConfig(level=logging.INFO)
main()
