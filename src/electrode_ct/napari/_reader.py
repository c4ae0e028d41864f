"""npe2 reader: every volume format of :mod:`electrode_ct.io`, read lazily, and particle tables.

Volumes are read with ``electrode_ct.io.read(path, lazy=True)``; an OME-Zarr image with
several resolution levels becomes one multiscale layer (every level lazy). A particle
table (Parquet or CSV) becomes a points layer at the particle centroids (µm) carrying the
table as its features.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from electrode_ct.errors import ElectrodeCTError, InputError
from electrode_ct.napari._layers import LayerData, source_name, volume_layer
from electrode_ct.volume import Volume

TABLE_SUFFIXES = (".parquet", ".csv")
CENTROID_COLUMNS = ("centroid_z_um", "centroid_y_um", "centroid_x_um")


def is_table(path: str | os.PathLike[str]) -> bool:
    """True for a Parquet or CSV table path."""
    return str(path).lower().endswith(TABLE_SUFFIXES)


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """npe2 ``get_reader``: the reader function when electrode-ct can read ``path``."""
    from electrode_ct.io import find_format

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    for p in paths:
        if is_table(p):
            continue
        try:
            find_format(p)
        except ElectrodeCTError:
            return None
    return read_layers


def read_layers(path: str | Sequence[str]) -> list[LayerData]:
    """Layer data of one or several paths (volumes lazily, tables as centroid points)."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    return [table_layer(p) if is_table(p) else volume_layer(pyramid(p)) for p in paths]


def pyramid(path: str | os.PathLike[str]) -> list[Volume]:
    """Every resolution level of an image, level 0 first, each read lazily.

    A format without levels (or a single-level OME-Zarr) gives one volume.
    """
    from electrode_ct.io import find_format, read

    first = read(path, lazy=True)
    if find_format(path).name != "zarr" or not first.metadata.get("ome"):
        return [first]
    levels = [first]
    while True:
        try:
            levels.append(read(path, lazy=True, level=len(levels)))
        except InputError:  # "resolution level N not found": the pyramid ends
            return levels


def table_layer(path: str | os.PathLike[str]) -> LayerData:
    """A points layer at the particles' centroids (µm) whose features are the table.

    Raises
    ------
    InputError
        A table without the centroid columns of ``ect measure``.
    """
    import numpy as np

    from electrode_ct.io import read_table

    df = read_table(path)
    missing = [c for c in CENTROID_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: not a particle table; missing columns {missing} "
                         "(written by ect measure)")
    points = df[list(CENTROID_COLUMNS)].to_numpy(np.float64)
    kwargs = {"name": source_name(str(path)), "features": df, "size": 2.0,
              "metadata": {"electrode_ct": {"source": str(Path(path)), "table": True}}}
    return points, kwargs, "points"
