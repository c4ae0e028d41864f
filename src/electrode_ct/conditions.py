"""Shares of particles meeting conditions per state (the GREAT2 condition pies).

Every particle of a state falls into exactly one category: the first condition it meets,
in the order given, else ``"none of these"``. The percentages of a state therefore sum
to 100 % exactly, which a pie needs. Conditions are ``pandas.DataFrame.eval``
expressions over the state's particle table; for tracked (paired) states it also holds
the particle's change vs the reference: ``delta`` (ΔI_i, grey levels), ``sem_delta``
(SEM_ΔP,i) and ``z`` (ΔI_i / SEM_ΔP,i).

Without conditions, tracked states are split by their change: significantly darker
(ΔI_i < −k·SEM_ΔP,i), within ±k·SEM_ΔP,i, significantly brighter (k = 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from electrode_ct.errors import InputError
from electrode_ct.stats import paired

OTHER = "none of these"
"""Category of the particles meeting none of the conditions."""


def change_conditions(k: float = 2.0) -> dict[str, str]:
    """The default conditions: darker / brighter than ±k per-particle SEM of the change."""
    return {f"darker (ΔI < −{k:g}·SEM)": f"delta < -{k!r} * sem_delta",
            f"brighter (ΔI > +{k:g}·SEM)": f"delta > {k!r} * sem_delta"}


def parse_conditions(items: Sequence[str] | None, *, name: str = "--condition"
                     ) -> dict[str, str]:
    """``NAME=EXPRESSION`` items as an ordered mapping (empty for None).

    Raises
    ------
    InputError
        An item without ``=``, an empty name or expression, a repeated name.
    """
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, expr = str(item).partition("=")
        key, expr = key.strip(), expr.strip()
        # a comparison "a==b" or "a<=b" has its '=' inside the expression, not after a name
        if not sep or not key or not expr or key[-1] in "<>!=" or expr.startswith("="):
            raise InputError(f"{name}: expected NAME=EXPRESSION (e.g. 'darker=delta < 0'), "
                             f"got {item!r}")
        if key in out or key == OTHER:
            raise InputError(f"{name}: the name {key!r} is given twice or reserved")
        out[key] = expr
    return out


def condition_shares(table: pd.DataFrame, conditions: Mapping[str, str], *,
                     name: str = "--condition") -> pd.DataFrame:
    """Particles per category (first condition met, else :data:`OTHER`).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per particle.
    conditions : mapping of str to str
        Category name → ``DataFrame.eval`` expression, in order of precedence.
    name : str
        The option or key named in errors.

    Returns
    -------
    pandas.DataFrame
        ``category``, ``n`` (particles in it), ``n_total``, ``percent`` (of ``n_total``;
        the column sums to 100) and ``se_percent`` (binomial, 100·√(p(1−p)/n)).

    Raises
    ------
    InputError
        An expression that cannot be evaluated on the table or is not boolean.
    """
    if not conditions:
        raise InputError(f"{name}: no condition given")
    free = np.ones(len(table), dtype=bool)
    rows = []
    for cat, expr in conditions.items():
        try:
            hit = np.asarray(table.eval(expr))
        except Exception as exc:  # pandas raises many types for a bad expression
            raise InputError(f"{name} {cat}={expr!r} cannot be evaluated: {exc}; columns: "
                             f"{', '.join(map(str, table.columns))}") from None
        if hit.shape != (len(table),) or pd.api.types.infer_dtype(hit, skipna=False) not in (
                "boolean", "empty"):
            raise InputError(f"{name} {cat}={expr!r}: expected a true/false test per particle")
        hit = hit.astype(bool) & free
        free &= ~hit
        rows.append((cat, int(hit.sum())))
    rows.append((OTHER, int(free.sum())))
    out = pd.DataFrame(rows, columns=["category", "n"])
    n = len(table)
    out["n_total"] = n
    p = out["n"] / n if n else np.nan
    out["percent"] = 100.0 * p
    out["se_percent"] = 100.0 * np.sqrt(p * (1 - p) / n) if n else np.nan
    return out


def change_table(reference: pd.DataFrame, state: pd.DataFrame, *, column: str) -> pd.DataFrame:
    """The state's particles (tracked, matched on ``label``) with ``delta``, ``sem_delta``
    and ``z`` vs the reference (:func:`electrode_ct.stats.paired`)."""
    _, per = paired(reference, state, column=column)
    per["z"] = per["delta"] / per["sem_delta"].where(per["sem_delta"] > 0)
    return state.merge(per, on="label", how="inner")


def state_conditions(tables: Sequence[pd.DataFrame], *, column: str, reference: int,
                     is_paired: bool, conditions: Mapping[str, str] | None = None,
                     k: float = 2.0, name: str = "--condition") -> pd.DataFrame:
    """Shares of every state (the reference left out when the conditions use the change).

    Parameters
    ----------
    tables : sequence of pandas.DataFrame
        Per-particle tables, one per state.
    column : str
        Grey column the change is taken on (``grey_mean`` or ``roi_mean``).
    reference : int
        Index of the reference state.
    is_paired : bool
        The tables are tracked (paired by label): the change columns exist.
    conditions : mapping, optional
        Category → expression; default :func:`change_conditions` (tracked tables only).
    k : float
        Width of the default conditions in SEM.
    name : str
        The option or key named in errors.

    Returns
    -------
    pandas.DataFrame
        ``state`` then :func:`condition_shares`'s columns; empty when there is nothing to
        share (no conditions and untracked tables).
    """
    conds = dict(conditions or {})
    if not conds:
        if not is_paired:
            return pd.DataFrame(columns=["state", "category", "n", "n_total", "percent",
                                         "se_percent"])
        conds = change_conditions(k)
    parts = []
    for i, t in enumerate(tables):
        if is_paired:
            if i == reference:
                continue
            t = change_table(tables[reference], t, column=column)
        part = condition_shares(t, conds, name=name)
        part.insert(0, "state", i)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
