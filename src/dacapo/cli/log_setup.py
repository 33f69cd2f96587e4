"""What the ``dacapo`` command shows of the log on stderr.

Default: warnings (``LEVEL logger: message``) and notices, the INFO records the library
marks with ``extra={"notice": True}`` (`dacapo.training.progress.NOTICE`: where a training
run starts or resumes, its progress off a terminal, the checkpoint and parameters that
``apply`` uses), as their bare message. ``-v``: every INFO record. ``train --quiet``
(`hide_notices`): no notices either. Run directories get the INFO records in ``logs/``
either way (`dacapo.runs.log_file`).
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
