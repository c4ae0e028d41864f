"""Helpers shared by the CLI command modules (no science in here)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import typer

from electrode_ct.cli._argv import parse_floats, quiet
from electrode_ct.io.tables import dumps
from electrode_ct.volume import Spacing, as_spacing

T = TypeVar("T")

VOXEL_SIZE_HELP = "Voxel size in µm: one value or three (Z Y X). Default: from the file."
JSON_HELP = "Print one JSON object on stdout and nothing else there."


def voxel_size(text: str | None) -> Spacing | None:
    """Parse the ``--voxel-size`` option (1 or 3 numbers in µm) or return None."""
    if text is None:
        return None
    return as_spacing(parse_floats(text, name="--voxel-size", count=(1, 3)), name="--voxel-size")


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout."""
    sys.stdout.write(dumps(obj) + "\n")
    sys.stdout.flush()


def say(message: str) -> None:
    """Print a human-readable line on stdout unless ``--quiet``."""
    if not quiet():
        typer.echo(message)


def info(message: str) -> None:
    """Print a progress/status line on stderr unless ``--quiet``."""
    if not quiet():
        typer.echo(message, err=True)


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None) -> Iterator[T]:
    """Wrap an iterable in a tqdm progress bar on stderr (silenced by ``--quiet``)."""
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, disable=quiet(), file=sys.stderr,
                    leave=False)
