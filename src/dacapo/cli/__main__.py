"""``python -m dacapo.cli``: the ``dacapo`` command."""

from dacapo.cli.main import main

main()
