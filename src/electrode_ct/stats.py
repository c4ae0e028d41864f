"""Population statistics with uncertainty for per-particle grey levels (GREAT2).

Definitions (Jones et al. 2024), for a population of n particles with per-particle
means I_i and per-particle standard errors of measurement SEM_i:

- Ī = mean of the particle means; σ = their standard deviation (ddof 1);
- SES = σ / √n (sampling), SEM = √(mean SEM_i²) (measurement),
  SE_tot = √(SES² + SEM²);
- change of tracked particles vs a reference (pristine) state: ΔI_i = I_i − I_i,ref,
  ΔĪ_prist = mean ΔI_i, SES from the σ of ΔI_i, SEM_ΔP,i = √(SEM_P0,i² + SEM_P,i²),
  paired Z = ΔĪ_prist / SE_tot;
- two independent populations: Z = (Ī_a − Ī_b) / √(SE_tot,a² + SE_tot,b²);
- p from the standard normal (one- and two-sided); the σ level is |Z|.

Paired statistics need the same particles in every state: only tables carrying the
tracking stamp of one reference (written by ``ect track`` or the pipeline's track step,
:data:`TRACKING_KEY` in the table provenance) are paired by ``label``; any other set of
tables gets two-sample statistics (:func:`pairing`). Particles touching a face of the
volume are left out by default, as in GREAT2 (:func:`prepare_tables`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from electrode_ct.errors import InputError

COLLECTORS = ("z0", "z1")
TRACKING_KEY = "tracking"
"""Key of the tracking stamp in a table's provenance (``df.attrs["electrode_ct"]``)."""
BORDER_COLUMNS = ("touches_border", "border")
"""Columns flagging particles that touch a face of the volume, in order of preference."""
DEFAULT_BINS = 4
"""Subsets of ``COLUMN`` / ``AXIS`` given without ``:N``."""


# -- building blocks ----------------------------------------------------------------------
def z_test(mean_a: float, se_a: float, mean_b: float, se_b: float) -> dict[str, float]:
    """Two-sample Z-test for independent populations.

    Parameters
    ----------
    mean_a, mean_b : float
        Population means (e.g. Ī of two states, grey levels).
    se_a, se_b : float
        Their total standard errors (grey levels).

    Returns
    -------
    dict
        ``Z`` = (mean_a − mean_b) / √(se_a² + se_b²), ``p`` (two-sided),
        ``p_one_sided`` (in the direction of the sign of Z), ``sigma_level`` = |Z|.

    Examples
    --------
    >>> se = lambda s, n: s / n ** 0.5
    >>> round(z_test(173.00, se(11.27, 3650), 174.41, se(11.08, 3650))["Z"], 2)
    -5.39
    """
    se = float(np.hypot(se_a, se_b))
    z = (float(mean_a) - float(mean_b)) / se if se > 0 else float("nan")
    return {"Z": z, **p_values(z)}


def p_values(z: float) -> dict[str, float]:
    """One- and two-sided normal p-values and σ level of a Z statistic."""
    if not np.isfinite(z):
        return {"p": float("nan"), "p_one_sided": float("nan"), "sigma_level": float("nan")}
    one = float(_st.norm.sf(abs(z)))
    return {"p": 2.0 * one, "p_one_sided": one, "sigma_level": abs(float(z))}


def _values(table: pd.DataFrame, column: str) -> np.ndarray:
    if column not in table.columns:
        known = ", ".join(map(str, table.columns))
        raise InputError(f"column {column!r} is not in the table; available: {known}")
    return table[column].to_numpy(dtype=np.float64)


def population(
    table: pd.DataFrame, *, column: str = "grey_mean", sem_column: str | None = "sem"
) -> dict[str, float]:
    """Mean of particle means with its standard errors.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per particle.
    column : str
        Per-particle grey value (``grey_mean`` or ``roi_mean``; grey levels).
    sem_column : str or None
        Per-particle standard error of measurement (grey levels); None or missing → 0.

    Returns
    -------
    dict
        ``n``, ``I_mean`` (Ī), ``sigma`` (ddof 1), ``SES``, ``SEM``, ``SE_tot``.
        Rows with a NaN value are left out.
    """
    v = _values(table, column)
    sem = (table[sem_column].to_numpy(dtype=np.float64)
           if sem_column and sem_column in table.columns else np.zeros(len(v)))
    ok = np.isfinite(v)
    v, sem = v[ok], np.nan_to_num(sem[ok])
    n = int(v.size)
    if n == 0:
        nan = float("nan")
        return {"n": 0, "I_mean": nan, "sigma": nan, "SES": nan, "SEM": nan, "SE_tot": nan}
    sigma = float(np.std(v, ddof=1)) if n > 1 else float("nan")
    ses = sigma / np.sqrt(n) if n > 1 else float("nan")
    semv = float(np.sqrt(np.mean(sem * sem)))
    return {"n": n, "I_mean": float(v.mean()), "sigma": sigma, "SES": float(ses), "SEM": semv,
            "SE_tot": float(np.hypot(ses, semv))}


def paired(
    reference: pd.DataFrame,
    state: pd.DataFrame,
    *,
    column: str = "grey_mean",
    sem_column: str | None = "sem",
    on: str = "label",
) -> tuple[dict[str, float], pd.DataFrame]:
    """Change of tracked particles versus a reference state (ΔĪ_prist) and paired Z.

    Parameters
    ----------
    reference, state : pandas.DataFrame
        Per-particle tables of the reference (pristine) and another state; particles are
        matched on ``on`` (tracking keeps the reference ids).
    column, sem_column : str
        Grey column and per-particle SEM column (grey levels).
    on : str
        Identity column.

    Returns
    -------
    (dict, pandas.DataFrame)
        Summary with ``n`` (tracked), ``dI`` (ΔĪ_prist), ``sigma`` (σ of ΔI_i, ddof 1),
        ``SES``, ``SEM`` (√ mean SEM_ΔP,i²), ``SE_tot``, ``Z`` = ΔĪ / SE_tot, ``p``,
        ``p_one_sided``, ``sigma_level``; and the per-particle table (``on``, ``delta``,
        ``sem_delta``).
    """
    cols = [on, column] + ([sem_column] if sem_column and sem_column in reference else [])
    scol = [on, column] + ([sem_column] if sem_column and sem_column in state else [])
    for name, t in (("reference", reference), ("state", state)):
        if on not in t.columns:
            raise InputError(f"{name} table: no {on!r} column to match particles on")
        _values(t, column)
    m = reference[cols].merge(state[scol], on=on, suffixes=("_0", "_1"))
    d = m[f"{column}_0"].to_numpy(float)
    d = m[f"{column}_1"].to_numpy(float) - d
    s0 = m.get(f"{sem_column}_0", pd.Series(np.zeros(len(m)))).to_numpy(float)
    s1 = m.get(f"{sem_column}_1", pd.Series(np.zeros(len(m)))).to_numpy(float)
    sem_d = np.hypot(np.nan_to_num(s0), np.nan_to_num(s1))
    per = pd.DataFrame({on: m[on].to_numpy(), "delta": d, "sem_delta": sem_d})
    summary = population(per, column="delta", sem_column="sem_delta")
    dI = summary.pop("I_mean")
    z = dI / summary["SE_tot"] if summary["SE_tot"] and summary["SE_tot"] > 0 else float("nan")
    return {"dI": dI, **summary, "Z": z, **p_values(z)}, per


def percent(table: pd.DataFrame, condition: str | Callable[[pd.DataFrame], Any]) -> dict:
    """Percentage of particles satisfying a condition, with its binomial standard error.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per particle.
    condition : str or callable
        A ``DataFrame.eval`` expression (e.g. ``"delta < 0"``) or a function of the table
        returning a boolean array.

    Returns
    -------
    dict
        ``n``, ``n_true``, ``percent``, ``se_percent`` (100·√(p(1−p)/n)).
    """
    try:
        mask = condition(table) if callable(condition) else table.eval(condition)
    except Exception as exc:  # pandas raises many types for a bad expression
        raise InputError(f"condition {condition!r} cannot be evaluated: {exc}") from exc
    mask = np.asarray(mask, dtype=bool)
    n = int(mask.size)
    k = int(mask.sum())
    p = k / n if n else float("nan")
    se = 100.0 * np.sqrt(p * (1 - p) / n) if n else float("nan")
    return {"n": n, "n_true": k, "percent": 100.0 * p, "se_percent": float(se)}


# -- which particles, paired or not -------------------------------------------------------
def tracking_stamp(table: pd.DataFrame) -> dict[str, Any] | None:
    """The tracking stamp of a table (from its provenance), or None when it has none."""
    prov = table.attrs.get("electrode_ct")
    stamp = prov.get(TRACKING_KEY) if isinstance(prov, dict) else None
    ok = isinstance(stamp, dict) and stamp.get("tracked") is True and stamp.get("reference_id")
    return stamp if ok else None


def pairing(tables: Sequence[pd.DataFrame], *, names: Sequence[str] | None = None
            ) -> tuple[bool, str]:
    """Whether particles of several tables may be paired by ``label``, and why.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame
        Per-particle tables of each state.
    names : sequence of str, optional
        Names of the tables for the note (default ``table 0``, ``table 1``, …).

    Returns
    -------
    (bool, str)
        True when every table carries a tracking stamp (:data:`TRACKING_KEY`) with the
        same ``reference_id``; a one-line note saying why (or why not).
    """
    names = list(names) if names is not None else [f"table {i}" for i in range(len(tables))]
    if len(tables) < 2:
        return False, "one state: nothing to pair"
    stamps = [tracking_stamp(t) for t in tables]
    missing = [n for n, st in zip(names, stamps, strict=True) if st is None]
    if missing:
        return False, (f"two-sample statistics: {', '.join(missing)} carr"
                       f"{'ies' if len(missing) == 1 else 'y'} no tracking stamp, so particle "
                       "ids need not match; only tables written by `ect track` or the "
                       "pipeline's track step are paired by label")
    refs = {st["reference_id"] for st in stamps if st is not None}
    if len(refs) > 1:
        return False, ("two-sample statistics: the tables were tracked from different "
                       "reference label volumes, so their particle ids do not match")
    return True, "paired by label: every table carries the tracking stamp of one reference"


def border_labels(table: pd.DataFrame) -> np.ndarray | None:
    """Labels of the particles touching a face of the volume (None: no border column)."""
    for col in BORDER_COLUMNS:
        if col in table.columns:
            flag = table[col].fillna(False).to_numpy(dtype=bool)
            return table["label"].to_numpy()[flag]
    return None


@dataclass
class StatsInput:
    """Tables ready for :func:`summarise`, with how they were chosen.

    Attributes
    ----------
    tables : list of pandas.DataFrame
        The tables without the excluded border particles.
    paired : bool
        Particles may be paired by label (:func:`pairing`).
    pairing_note : str
        One line saying why (or why not).
    keep_border : bool
        Border particles were kept.
    n_border : list of int
        Rows left out of each table as border particles.
    border_note : str
        One line on the border particles.
    """

    tables: list[pd.DataFrame]
    paired: bool
    pairing_note: str
    keep_border: bool = False
    n_border: list[int] = field(default_factory=list)
    border_note: str = ""

    def summary(self) -> dict[str, Any]:
        """JSON-ready record of the choices (``paired``, notes, border counts)."""
        return {"paired": self.paired, "pairing_note": self.pairing_note,
                "keep_border": self.keep_border, "n_border_excluded": list(self.n_border),
                "border_note": self.border_note}


def prepare_tables(tables: Sequence[pd.DataFrame], *, keep_border: bool = False,
                   names: Sequence[str] | None = None) -> StatsInput:
    """Decide pairing from the tracking stamps and leave out border particles.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame
        Per-particle tables of each state (``label`` and, for the border,
        ``touches_border`` or ``border``).
    keep_border : bool
        Keep the particles touching a face of the volume (GREAT2 leaves them out). When
        the tables are paired, a particle at the border in any state is left out of all.
    names : sequence of str, optional
        Table names for the notes.

    Returns
    -------
    StatsInput
    """
    names = list(names) if names is not None else [f"table {i}" for i in range(len(tables))]
    paired, note = pairing(tables, names=names)
    if keep_border:
        return StatsInput(list(tables), paired, note, True, [0] * len(tables),
                          "border particles kept (--keep-border)")
    flagged = [border_labels(t) for t in tables]
    lacking = [n for n, f in zip(names, flagged, strict=True) if f is None]
    union = np.unique(np.concatenate([f for f in flagged if f is not None] or [[]]))
    out, counts = [], []
    for t, f in zip(tables, flagged, strict=True):
        drop = union if paired else (f if f is not None else np.array([]))
        keep = ~t["label"].isin(drop) if "label" in t.columns else np.ones(len(t), bool)
        out.append(t[keep])
        counts.append(int(len(t) - int(np.sum(keep))))
    bnote = f"{sum(counts)} border particle rows excluded (touching a face of the volume)"
    if lacking:
        bnote += (f"; {', '.join(lacking)} ha{'s' if len(lacking) == 1 else 've'} no "
                  f"{' or '.join(BORDER_COLUMNS)} column, so border particles could not be "
                  "excluded there")
    return StatsInput(out, paired, note, False, counts, bnote)


def parse_subsets(text: str | None, *, name: str, axis: bool = False) -> tuple[str, int] | None:
    """Parse a subset option ``COLUMN[:N]`` (``--by``) or ``AXIS[:N]`` (``--position``).

    Parameters
    ----------
    text : str or None
        The option's value; None or empty gives None.
    name : str
        Option or config key for the message.
    axis : bool
        The first part must be an axis (``z``, ``y`` or ``x``).

    Returns
    -------
    (str, int) or None
        Column (or axis) and number of subsets (default :data:`DEFAULT_BINS`).

    Raises
    ------
    InputError
        A count that is not a whole number >= 1, an empty column, an unknown axis.
    """
    if not text:
        return None
    col, sep, n = str(text).partition(":")
    what = "AXIS:N with AXIS z, y or x" if axis else "COLUMN:N"
    try:
        bins = int(n) if sep else DEFAULT_BINS
    except ValueError:
        raise InputError(f"{name}: expected {what}, got {text!r}") from None
    if bins < 1 or not col.strip() or (axis and col not in ("z", "y", "x")):
        raise InputError(f"{name}: expected {what} with N >= 1, got {text!r}")
    return col.strip(), bins


# -- subsets ----------------------------------------------------------------------------
def quantile_subsets(table: pd.DataFrame, column: str, n_bins: int) -> pd.Series:
    """Subset index 0..n_bins−1 of each particle by quantiles of a property column.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per particle.
    column : str
        Property (e.g. ``volume_um3``).
    n_bins : int
        Number of equal-count bins (the lowest values are subset 0).

    Returns
    -------
    pandas.Series
        Integer subset per row (−1 where the property is NaN), indexed like ``table``.
    """
    if int(n_bins) < 1:
        raise InputError(f"bins: expected at least 1 subset, got {n_bins}")
    v = _values(table, column)
    out = np.full(v.size, -1, dtype=np.int64)
    ok = np.isfinite(v)
    if ok.any():
        edges = np.quantile(v[ok], np.linspace(0, 1, int(n_bins) + 1))
        out[ok] = np.clip(np.searchsorted(edges, v[ok], side="right") - 1, 0, int(n_bins) - 1)
    return pd.Series(out, index=table.index, name=f"{column}_q{int(n_bins)}")


def position_subsets(
    table: pd.DataFrame,
    *,
    axis: str = "z",
    n_bins: int = 4,
    collector: str = "z0",
    extent_um: tuple[float, float] | None = None,
) -> tuple[pd.Series, np.ndarray]:
    """Subset by depth along an axis, measured from the current collector.

    Parameters
    ----------
    table : pandas.DataFrame
        Needs ``centroid_<axis>_um`` (or ``centroid_<axis>`` in voxels).
    axis : {"z", "y", "x"}
        Axis along which depth is measured.
    n_bins : int
        Equal-width depth bins (subset 0 is nearest the collector).
    collector : {"z0", "z1"}
        Collector at the first (``z0``) or the last (``z1``) index along the axis.
    extent_um : (float, float), optional
        Coordinates of the collector side and of the far side; default: the range of
        the particle centroids.

    Returns
    -------
    (pandas.Series, numpy.ndarray)
        Subset per row and the bin edges as depth from the collector (µm or voxels).
    """
    if axis not in ("z", "y", "x"):
        raise InputError(f"position axis: expected z, y or x, got {axis!r}")
    if collector not in COLLECTORS:
        raise InputError(f"collector: expected z0 or z1, got {collector!r}")
    col = f"centroid_{axis}_um" if f"centroid_{axis}_um" in table else f"centroid_{axis}"
    pos = _values(table, col)
    if extent_um is None:
        lo, hi = (float(np.nanmin(pos)), float(np.nanmax(pos))) if pos.size else (0.0, 1.0)
    else:
        lo, hi = float(extent_um[0]), float(extent_um[1])
    depth = pos - lo if collector == "z0" else hi - pos
    edges = np.linspace(0.0, max(hi - lo, 1e-12), int(n_bins) + 1)
    out = np.clip(np.searchsorted(edges, depth, side="right") - 1, 0, int(n_bins) - 1)
    return pd.Series(out.astype(np.int64), index=table.index, name=f"depth_{axis}"), edges


# -- radial aggregation -----------------------------------------------------------------
def aggregate_radial(
    radial: pd.DataFrame,
    groups: pd.Series | dict[int, Any] | None = None,
    *,
    value: str = "grey_norm",
    x: str = "layer",
    bins: int | Sequence[float] | None = None,
) -> pd.DataFrame:
    """Mean radial profile per subset: mean, std, SE and n of particle values per x.

    Parameters
    ----------
    radial : pandas.DataFrame
        Long radial table (``label``, ``layer``, ``relative_radius``, values).
    groups : pandas.Series or dict, optional
        Subset of each particle, indexed by label (all particles one subset when None).
    value : str
        Column averaged (``grey_norm`` or ``grey_mean``).
    x : str
        ``layer`` (integer layers) or ``relative_radius`` (binned by ``bins``).
    bins : int or sequence of float, optional
        Bins of ``relative_radius`` (default 10 equal bins on [0, 1]).

    Returns
    -------
    pandas.DataFrame
        ``subset``, ``x`` (layer or bin centre), ``mean``, ``std`` (ddof 1), ``se``, ``n``
        (particles).
    """
    df = radial[["label", x, value]].copy()
    if groups is None:
        df["subset"] = 0
    else:
        g = pd.Series(groups) if isinstance(groups, dict) else groups
        df["subset"] = df["label"].map(g)
        df = df[df["subset"].notna()]
    if x != "layer":
        edges = np.linspace(0, 1, (bins or 10) + 1) if bins is None or np.isscalar(bins) \
            else np.asarray(bins, float)
        idx = np.clip(np.searchsorted(edges, df[x].to_numpy(), side="left") - 1, 0,
                      len(edges) - 2)
        df["x"] = 0.5 * (edges[idx] + edges[idx + 1])
        # one value per particle and bin
        df = df.groupby(["subset", "label", "x"], as_index=False)[value].mean()
    else:
        df["x"] = df[x]
    agg = df.groupby(["subset", "x"])[value].agg(["mean", "std", "count"]).reset_index()
    agg = agg.rename(columns={"count": "n"})
    agg["se"] = agg["std"] / np.sqrt(agg["n"])
    return agg[["subset", "x", "mean", "std", "se", "n"]]


# -- summary over states and subsets ---------------------------------------------------
def summarise(
    tables: Sequence[pd.DataFrame],
    *,
    column: str = "grey_mean",
    sem_column: str | None = "sem",
    reference: int = 0,
    subsets: pd.Series | None = None,
    subset_name: str = "all",
    paired: bool | None = None,
) -> pd.DataFrame:
    """Ī, ΔĪ, SE_tot, Z and p per state and subset.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame
        Per-particle tables of each state.
    column, sem_column : str
        Grey and SEM columns.
    reference : int
        Index of the reference (pristine) state.
    subsets : pandas.Series, optional
        Subset of each particle indexed by label (from the reference state);
        None: one subset holding everything.
    subset_name : str
        Name of the grouping (written in the ``grouping`` column).
    paired : bool, optional
        Pair particles by ``label`` (tracked states). Default: :func:`pairing` decides
        from the tables' tracking stamps; ``True`` is for callers that know the ids match.

    Returns
    -------
    pandas.DataFrame
        One row per (state, subset): ``state``, ``grouping``, ``subset``, ``n``,
        ``I_mean``, ``sigma``, ``SES``, ``SEM``, ``SE_tot``, ``paired`` and, versus the
        reference: ``Z_independent``, ``p_independent`` (two-sample test), ``n_tracked``,
        ``dI``, ``dI_SE_tot``, ``Z``, ``p``, ``p_one_sided``, ``sigma_level`` and
        ``percent_darker``. Paired: ΔĪ_prist of the tracked particles and the paired
        test. Not paired: ``n_tracked`` 0, ``dI`` = Ī − Ī_ref with
        ``dI_SE_tot`` = √(SE_tot² + SE_tot,ref²), the two-sample Z and p, and no
        ``percent_darker`` (NaN).
    """
    if not tables:
        raise InputError("stats: no tables given")
    if not 0 <= reference < len(tables):
        raise InputError(f"reference: state {reference} does not exist (0..{len(tables) - 1})")
    if paired is None:
        paired = pairing(tables)[0]
    rows = []
    keys = [None] if subsets is None else sorted(set(subsets.dropna().unique()))
    for key in keys:
        ids = None if key is None else subsets.index[subsets == key]
        sel = [t if ids is None else t[t["label"].isin(ids)] for t in tables]
        ref = population(sel[reference], column=column, sem_column=sem_column)
        for i, t in enumerate(sel):
            pop = population(t, column=column, sem_column=sem_column)
            row: dict[str, Any] = {"state": i, "grouping": subset_name,
                                   "subset": "all" if key is None else key, **pop,
                                   "paired": bool(paired)}
            if i != reference:
                row.update(_versus(sel[reference], t, pop, ref, tracked=bool(paired),
                                   column=column, sem_column=sem_column))
            rows.append(row)
    return pd.DataFrame(rows)


def _versus(ref_table: pd.DataFrame, table: pd.DataFrame, pop: dict[str, float],
            ref: dict[str, float], *, tracked: bool, column: str,
            sem_column: str | None) -> dict[str, Any]:
    """The comparison columns of one state against the reference (see :func:`summarise`)."""
    ind = z_test(pop["I_mean"], pop["SE_tot"], ref["I_mean"], ref["SE_tot"])
    row: dict[str, Any] = {"Z_independent": ind["Z"], "p_independent": ind["p"]}
    if not tracked:
        row.update({"n_tracked": 0, "dI": pop["I_mean"] - ref["I_mean"],
                    "dI_SE_tot": float(np.hypot(pop["SE_tot"], ref["SE_tot"])), "Z": ind["Z"],
                    "p": ind["p"], "p_one_sided": ind["p_one_sided"],
                    "sigma_level": ind["sigma_level"], "percent_darker": float("nan")})
        return row
    ch, per = paired(ref_table, table, column=column, sem_column=sem_column)
    row.update({"n_tracked": ch["n"], "dI": ch["dI"], "dI_SE_tot": ch["SE_tot"], "Z": ch["Z"],
                "p": ch["p"], "p_one_sided": ch["p_one_sided"],
                "sigma_level": ch["sigma_level"],
                "percent_darker": percent(per, "delta < 0")["percent"]})
    return row
