"""Particle subsets of the GREAT2 statistics: a size selection (``--size-subset``,
``steps.stats.size_subset``) combined with the quantile (``--by``) and depth
(``--position``) groupings, and the mean radial profile of each resulting subset.

Size specification ``[COLUMN:]SEL`` (column default :data:`SIZE_COLUMN`):

- ``topP`` – the largest P % (values >= the (100 − P) % quantile), e.g. ``top25``;
- ``bottomP`` – the smallest P %;
- ``qA`` or ``qA-qB`` – quartiles A to B (1 = smallest), e.g. ``q2-q4`` (Q1 excluded,
  the rest pooled), with the quartile bins of ``--by COLUMN:4``.

Tracked (paired) tables are selected on the reference state and the same particles
kept in every state; independent states are each selected on their own quantiles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from electrode_ct.errors import InputError

SIZE_COLUMN = "volume_um3"
"""Column ranked by a size specification without ``COLUMN:``."""

_SEL = re.compile(r"^(?:(top|bottom)(\d+(?:\.\d+)?)|q([1-4])(?:-q?([1-4]))?)$")


@dataclass(frozen=True)
class SizeSubset:
    """A parsed size selection: ``column``, the kind (``top``/``bottom``/``quartiles``)
    and its bounds (percent for top/bottom, first and last quartile otherwise)."""

    text: str
    column: str
    kind: str
    lo: float
    hi: float


def parse_size_subset(text: str | None, *, name: str = "--size-subset") -> SizeSubset | None:
    """Parse ``[COLUMN:]SEL`` (see the module); None or empty gives None.

    Raises
    ------
    InputError
        A selection that is not ``topP``, ``bottomP`` (0 < P <= 100), ``qA`` or ``qA-qB``
        (1 <= A <= B <= 4).
    """
    if not text:
        return None
    col, _, sel = str(text).rpartition(":")
    m = _SEL.match(sel.strip().lower())
    bad = InputError(f"{name}: expected [COLUMN:]topP, bottomP (0 < P <= 100), qA or qA-qB "
                     f"(quartiles 1..4, A <= B), e.g. top25 or q2-q4; got {text!r}")
    if m is None:
        raise bad
    column = col.strip() or SIZE_COLUMN
    if m.group(1):
        pct = float(m.group(2))
        if not 0 < pct <= 100:
            raise bad
        return SizeSubset(str(text), column, m.group(1), pct, pct)
    a, b = int(m.group(3)), int(m.group(4) or m.group(3))
    if a > b:
        raise bad
    return SizeSubset(str(text), column, "quartiles", a, b)


def size_mask(table: pd.DataFrame, spec: SizeSubset) -> np.ndarray:
    """Rows of ``table`` in the size selection (NaN sizes never selected)."""
    from electrode_ct.stats import quantile_subsets

    if spec.column not in table.columns:
        raise InputError(f"--size-subset: no column {spec.column!r} in the table; expected a "
                         "morphology column such as volume_um3 or equivalent_diameter_um")
    v = pd.to_numeric(table[spec.column], errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return np.zeros(len(table), bool)
    if spec.kind == "quartiles":
        q = quantile_subsets(table, spec.column, 4).to_numpy()
        return (q >= spec.lo - 1) & (q <= spec.hi - 1)
    if spec.kind == "top":
        return ok & (v >= np.quantile(v[ok], 1.0 - spec.lo / 100.0))
    return ok & (v <= np.quantile(v[ok], spec.lo / 100.0))


def select_size(tables: Sequence[pd.DataFrame], spec: SizeSubset | None, *, reference: int,
                paired: bool, names: Sequence[str]) -> list[pd.DataFrame]:
    """The tables restricted to the size selection (all of them when ``spec`` is None).

    Raises
    ------
    InputError
        A selection that keeps no particle of a state.
    """
    if spec is None:
        return list(tables)
    if paired:
        ref = tables[reference]
        keep = ref["label"].to_numpy()[size_mask(ref, spec)]
        out = [t[t["label"].isin(keep)] for t in tables]
    else:
        out = [t[size_mask(t, spec)] for t in tables]
    for t, n in zip(out, names, strict=True):
        if t.empty:
            raise InputError(f"--size-subset: {spec.text!r} selects no particle of {n} "
                             f"(no finite {spec.column!r} value in the selection); "
                             "expected a selection holding at least one particle")
    return out


def groupings(table: pd.DataFrame, *, by: tuple[str, int] | None,
              position: tuple[str, int] | None, collector: str
              ) -> list[tuple[str, pd.Series | None]]:
    """``all`` and the ``--by`` / ``--position`` subsets of one table, indexed by label."""
    from electrode_ct.stats import position_subsets, quantile_subsets

    labels = table["label"].to_numpy()
    out: list[tuple[str, pd.Series | None]] = [("all", None)]
    if by:
        out.append((f"{by[0]}:q{by[1]}",
                    quantile_subsets(table, by[0], by[1]).set_axis(labels)))
    if position:
        s, _ = position_subsets(table, axis=position[0], n_bins=position[1],
                                collector=collector)
        out.append((f"depth_{position[0]}:{position[1]}:{collector}", s.set_axis(labels)))
    return out


def radial_profiles(radials: Sequence[pd.DataFrame], tables: Sequence[pd.DataFrame], *,
                    reference: int, paired: bool, by: tuple[str, int] | None = None,
                    position: tuple[str, int] | None = None, collector: str = "z0",
                    value: str = "grey_norm") -> pd.DataFrame:
    """Mean radial profile (±std, SE, n) of each state and subset.

    Parameters
    ----------
    radials : sequence of pandas.DataFrame
        Long radial tables (``ect measure --radial``), one per state.
    tables : sequence of pandas.DataFrame
        The per-particle tables already restricted (:func:`select_size`, border).
    reference : int
        Index of the reference state (its groupings serve every state when paired).
    paired : bool
        Tracked states (groupings from the reference) or independent ones (each its own).
    by, position, collector
        As :func:`electrode_ct.stats.parse_subsets` gives them.
    value : str
        Radial column averaged (``grey_norm`` or ``grey_mean``).

    Returns
    -------
    pandas.DataFrame
        ``state``, ``grouping``, ``subset``, ``x`` (layer), ``mean``, ``std``, ``se``, ``n``.
    """
    from electrode_ct.stats import aggregate_radial

    frames = []
    for i, (rad, table) in enumerate(zip(radials, tables, strict=True)):
        if value not in rad.columns:
            raise InputError(f"radial table of state {i}: no {value!r} column; expected "
                             "'ect measure --radial' output")
        own = tables[reference] if paired else table
        rad = rad[rad["label"].isin(table["label"])]
        for name, sub in groupings(own, by=by, position=position, collector=collector):
            agg = aggregate_radial(rad, None if sub is None else sub[sub >= 0], value=value)
            if sub is None:
                agg["subset"] = "all"
            frames.append(agg.assign(state=i, grouping=name))
    out = pd.concat(frames, ignore_index=True)
    out["subset"] = out["subset"].astype(str)
    return out[["state", "grouping", "subset", "x", "mean", "std", "se", "n"]]


def size_summary(spec: SizeSubset | None, tables: Sequence[pd.DataFrame]) -> dict[str, Any]:
    """JSON record of the size selection: spec, column and particles kept per state."""
    if spec is None:
        return {"size_subset": None}
    return {"size_subset": {"spec": spec.text, "column": spec.column,
                            "n_selected": [int(len(t)) for t in tables]}}
