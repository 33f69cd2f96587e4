"""The two exceptions of bad input; the CLI prints either as one ``error: ...`` line, exit 2.

Both are `ValueError`s, so code that catches ``ValueError`` for bad input catches them.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input data or arguments; the message names the array/field and the problem."""


class ConfigError(ValueError):
    """A config file or dict that does not describe a valid config."""


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated or not a checkpoint."""
