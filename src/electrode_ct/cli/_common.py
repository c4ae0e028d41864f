"""Helpers shared by the CLI command modules (no science in here)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
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


def read_input(path: str, *, role: str = "grey", voxel: str | None = None,
               **options: Any) -> Any:
    """Read an input volume and check its values for its role; errors name the file.

    Parameters
    ----------
    path : str
        The file given on the command line.
    role : str
        ``grey`` (finite numbers), ``labels`` (integer ids or class values),
        ``probability`` (integer labels, or finite floats: a probability map) or ``any``.
    voxel : str, optional
        The ``--voxel-size`` option text.
    **options
        Passed to :func:`electrode_ct.io.read` (e.g. ``lazy``).

    Returns
    -------
    Volume
        The volume as read.
    """
    from electrode_ct.io import read

    vol = read(path, voxel_size=voxel_size(voxel), **options)
    if role != "any" and not vol.is_lazy:
        check_input(vol, path, role)
    return vol


def check_input(vol: Any, path: str, role: str) -> None:
    """Check a read volume's values for its role (see :func:`read_input`), naming ``path``."""
    from electrode_ct.filters import check_image
    from electrode_ct.labels import check_labels

    arr = vol.numpy()
    if role == "labels" or (role == "probability" and arr.dtype.kind != "f"):
        check_labels(arr, name=path)
    else:
        check_image(arr, name=path)


def read_input_table(path: str | Path, *, columns: Sequence[str], all_finite: bool = True) -> Any:
    """Read a particle table given on the command line and check the columns a command uses.

    Parameters
    ----------
    path : path-like
        Parquet or CSV table.
    columns : sequence of str
        Columns that must be present and numeric.
    all_finite : bool
        Refuse any NaN or infinite value in ``columns`` (else: refuse infinities, and
        columns without a single finite value).

    Returns
    -------
    pandas.DataFrame
        The table.
    """
    import numpy as np

    from electrode_ct.errors import InputError
    from electrode_ct.io import read_table

    df = read_table(path)
    if df.empty:
        raise InputError(f"{path}: the table has no rows; expected one row per particle")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: no column {', '.join(map(repr, missing))}; expected a "
                         f"particle table with {', '.join(columns)}")
    for c in columns:
        values = df[c].to_numpy()
        if values.dtype.kind not in "biuf":
            raise InputError(f"{path}: column {c!r} holds {values.dtype}; expected numbers")
        finite = np.isfinite(values)
        if (all_finite and not finite.all()) or np.isinf(values).any() or not finite.any():
            raise InputError(f"{path}: column {c!r} has {int((~finite).sum())} NaN or "
                             "infinite value(s); expected finite numbers")
    return df
