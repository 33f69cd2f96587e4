"""What the ``dacapo`` command shows of the log on stderr.

Default: warnings (``LEVEL logger: message``) and notices, the INFO records the library
marks with ``extra={"notice": True}`` (`dacapo.training.progress.NOTICE`: where a training
run starts or resumes, its progress off a terminal, the checkpoint and parameters that
``apply`` uses), as their bare message. ``-v``: every INFO record. ``train --quiet``
(`hide_notices`): no notices either. Run directories get the INFO records in ``logs/``
either way (`dacapo.runs.log_file`).

An exception of a zarr write task that nobody awaited (zarr writes metadata and chunks in
concurrent asyncio tasks; when one fails, the failure is raised and reported as the
command's ``error:`` line, and its sibling tasks' failures reach asyncio's "Task exception
was never retrieved" log when they are garbage-collected, perhaps after that line) is not
shown, or with ``-v`` as one line without its traceback (`UnretrievedTaskErrors`).
"""

from __future__ import annotations

import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"


def is_notice(record: logging.LogRecord) -> bool:
    return bool(getattr(record, "notice", False)) and record.levelno < logging.WARNING


class DefaultVerbosity(logging.Filter):
    """Warnings and notices only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or is_notice(record)


class NoticeFormatter(logging.Formatter):
    """A notice as its message alone, other records as ``FORMAT``."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage() if is_notice(record) else super().format(record)


class UnretrievedTaskErrors(logging.Filter):
    """asyncio's "Task exception was never retrieved" records: dropped, or with
    ``verbose`` kept as one line naming the exception (module docstring)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Task exception was never retrieved"):
            return True
        if not self.verbose:
            return False
        error = record.exc_info[1] if record.exc_info else None
        record.msg = f"a concurrent write task also failed: {error!r}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


def configure_logging(verbose: bool) -> None:
    """Log to stderr: INFO with ``verbose``, else warnings and notices (module docstring).

    A root logger that already has handlers (a host application, pytest) keeps them; they
    get the same level and filter."""
    level = logging.INFO if verbose else logging.WARNING
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(NoticeFormatter(FORMAT))
        root.addHandler(handler)
        root.setLevel(level)
    logging.getLogger("dacapo").setLevel(logging.INFO)  # notices are INFO records
    aio = logging.getLogger("asyncio")
    for old in [f for f in aio.filters if isinstance(f, UnretrievedTaskErrors)]:
        aio.removeFilter(old)
    aio.addFilter(UnretrievedTaskErrors(verbose))
    for handler in root.handlers:
        handler.setLevel(logging.INFO)
        for old in [f for f in handler.filters if isinstance(f, DefaultVerbosity)]:
            handler.removeFilter(old)
        if not verbose:
            handler.addFilter(DefaultVerbosity())


class NoNotices(logging.Filter):
    """Everything but notices."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not is_notice(record)


def hide_notices() -> None:
    """``--quiet``: the handlers of `configure_logging` drop notices too (warnings stay)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(NoNotices())
