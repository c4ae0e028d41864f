"""Command-line interface (``ect`` / ``electrode-ct``).

Each command group lives in its own module and registers onto :data:`app`; modules
only parse options and call library functions. :func:`main` turns the project's errors
into one line on stderr and exit code 2 (no traceback).
"""

from __future__ import annotations

import importlib
import os
import sys

from electrode_ct.cli._argv import normalise
from electrode_ct.cli.app import app

COMMAND_MODULES = (
    "info",
    "synth",
    "filters",
    "segment_classical",
    "segment_forest",
    "segment_cnn",
    "segment_segpy",
    "segment_predict",
    "compare",
    "particles",
    "particles_learned",
    "measure",
    "great2",
    "cracks",
    "metrics",
    "quality",
    "pipeline",
    "models",
    "cluster",
    "view",
)


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"electrode_ct.cli.{name}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ect`` console script.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).
    """
    from electrode_ct.errors import ElectrodeCTError

    args = normalise(list(sys.argv[1:] if argv is None else argv))
    _load_commands()
    try:
        app(args=args, prog_name="ect", standalone_mode=True)
    except ElectrodeCTError as exc:
        if os.environ.get("ECT_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("error: interrupted; partial outputs were removed", file=sys.stderr)
        raise SystemExit(130) from None
    except MemoryError:
        print("error: out of memory; try lazy reading or a smaller block size", file=sys.stderr)
        raise SystemExit(3) from None


__all__ = ["app", "main"]
