"""The per-particle table: morphology columns joined with the grey-level (GREAT2) columns.

One assembly for every caller (``ect measure``, ``ect track``, the pipeline's measure
step), so the same labels and grey give the same columns everywhere.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from electrode_ct.measure.intensity import measure_grey
from electrode_ct.measure.morphology import morphology_table

IN_MEMORY_FACTOR = 2.0
"""Peak bytes of :func:`particle_table` per byte of its inputs (labels + grey): the
volumes, one float32 distance map and the tables. Measured 1.42 on the 880³ GREAT2 case
(5.80 GB for 4.09 GB of uint32 labels and uint16 grey; docs/great2.md); 2 leaves room."""


def join_grey(morphology: pd.DataFrame, grey: pd.DataFrame) -> pd.DataFrame:
    """Join grey-level columns to a morphology table on ``label``.

    Parameters
    ----------
    morphology : pandas.DataFrame
        :func:`electrode_ct.measure.morphology.morphology_table` output.
    grey : pandas.DataFrame
        Per-particle grey table (:func:`electrode_ct.measure.intensity.measure_grey`).

    Returns
    -------
    pandas.DataFrame
        Every morphology row (left join) with the grey columns the morphology table does
        not hold. The grey ``border`` flag is left out: it is ``touches_border``.
    """
    extra = [c for c in grey.columns
             if c == "label" or (c not in morphology.columns and c != "border")]
    out = morphology.merge(grey[extra], on="label", how="left")
    out.attrs.update(grey.attrs)
    return out


def particle_table(
    labels: np.ndarray,
    grey: np.ndarray | None = None,
    *,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    properties: str = "all",
    exclude_layers: int = 5,
    background: np.ndarray | None = None,
    background_sigma: float | None = None,
    normalise: str = "radial_max",
    timings: dict[str, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Per-particle table (morphology + grey columns) and the long radial table.

    Parameters
    ----------
    labels : numpy.ndarray
        Particle labels (integer, 0 = background), 2-D or 3-D.
    grey : numpy.ndarray, optional
        Grey image of the same shape; without it only morphology columns (and no radial
        table).
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    properties : {"all", "basic"}
        Morphology columns (:func:`electrode_ct.measure.morphology.morphology_table`).
    exclude_layers, background, background_sigma, normalise
        Grey options of :func:`electrode_ct.measure.intensity.measure_grey`
        (``background_sigma`` in grey levels).
    timings : dict, optional
        Filled with ``grey`` and ``morphology`` wall times (s).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame or None)
        The joined table (:func:`join_grey`; ``attrs["background_sigma"]`` when grey was
        measured) and the radial table (None without grey).
    """
    clock = timings if timings is not None else {}
    radial = grey_cols = None
    if grey is not None:
        t0 = time.perf_counter()
        grey_cols, radial = measure_grey(labels, grey, spacing=spacing,
                                         exclude_layers=exclude_layers, background=background,
                                         background_sigma=background_sigma,
                                         normalise=normalise)
        clock["grey"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    table = morphology_table(labels, spacing=spacing, properties=properties)
    clock["morphology"] = time.perf_counter() - t1
    if grey_cols is not None:
        table = join_grey(table, grey_cols)
    return table, radial


def table_columns(*, properties: str = "all", grey: bool = True) -> list[str]:
    """Columns of :func:`particle_table` for these options (measured on a tiny phantom).

    Used to check a column name (e.g. ``steps.stats.by``) before anything runs.
    """
    lab = np.zeros((4, 4, 4), np.uint32)
    lab[1:3, 1:3, 1:3] = 1
    img = np.where(lab > 0, 2.0, 1.0) if grey else None
    table, _ = particle_table(lab, img, properties=properties, exclude_layers=0,
                              background_sigma=1.0)
    return list(table.columns)


__all__ = ["join_grey", "particle_table", "table_columns"]
