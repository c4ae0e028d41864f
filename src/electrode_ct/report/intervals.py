"""Report tables of figures with their uncertainty: ``value ± std [lo, hi]`` cells built
from the ``<key>_std`` / ``<key>_ci95`` companions, and a reason where there is none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from electrode_ct.uncertainty import NO_SPREAD
from electrode_ct.uncertainty import interval_text as cell


def metrics_table(m: Mapping[str, Any], keys: Sequence[str]) -> pd.DataFrame:
    """One row per (metric, phase/pair/axis): the whole-volume value ± sub-volume std and
    the 95 % t-interval over sub-volumes."""
    rows = []
    for key in keys:
        std, ci = m.get(f"{key}_std") or {}, m.get(f"{key}_ci95") or {}
        for name, v in (m.get(key) or {}).items():
            why = (NO_SPREAD + " percolating sub-volumes") if key.startswith(
                ("tortuosity", "effective")) else NO_SPREAD
            rows.append({"metric": key, "of": name,
                         "value ± std [95 % CI]": cell(v, std.get(name), ci.get(name), why=why)})
    return pd.DataFrame(rows)


def psd_table(dist: Mapping[str, Any]) -> pd.DataFrame:
    """d10/d50/d90 and mean (µm), number- and volume-weighted, with bootstrap intervals."""
    rows = []
    for weight in ("number", "volume"):
        d = dist.get(weight) or {}
        for key in ("d10_um", "d50_um", "d90_um", "mean_um"):
            rows.append({"weighting": weight, "figure": key,
                         "value ± std [95 % CI] (µm)": cell(d.get(key), d.get(f"{key}_std"),
                                                            d.get(f"{key}_ci95"), fmt=".3g")})
    return pd.DataFrame(rows)


def flawed_cell(summary: Mapping[str, Any]) -> str:
    """% flawed with its binomial std and Wilson 95 % interval."""
    return cell(summary.get("percent_flawed"), summary.get("percent_flawed_std"),
                summary.get("percent_flawed_ci95"), fmt=".1f", why="no particles")
