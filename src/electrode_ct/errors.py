"""Exception types of electrode-ct.

Every error raised on purpose by the package derives from :class:`ElectrodeCTError`
and carries a one-line message that names the file or parameter at fault and what
was expected. The CLI prints that line (no traceback) and exits with code 2.
"""

from __future__ import annotations


class ElectrodeCTError(Exception):
    """Base class of all deliberate electrode-ct errors (one-line message)."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class InputError(ElectrodeCTError, ValueError):
    """A file or parameter given by the user is missing, malformed or out of range."""


class FormatError(InputError):
    """A file cannot be read or written in the requested or detected format."""


class ShapeError(InputError):
    """Arrays have incompatible shapes or dimensionality."""


class ConfigError(InputError):
    """A configuration file or option combination is invalid."""


class ModelError(InputError):
    """A saved model is of another kind, version or configuration."""


class OutputError(ElectrodeCTError):
    """An output cannot be written: disk full, read-only folder, or a folder locked by
    another run."""


class DependencyError(ElectrodeCTError, ImportError):
    """An optional dependency (e.g. torch for the ``dl`` extra) is not installed."""
