"""The stats step's GREAT2 outputs beyond Ī / ΔĪ: the share of particles per condition
(the condition pies), particle columns painted back into image space, and the
intra-particle change map of the most changed tracked particle.

Steps only compose library functions; no science lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from electrode_ct.errors import ConfigError
from electrode_ct.io import write, write_table

if TYPE_CHECKING:
    import pandas as pd

    from electrode_ct.pipeline.runner import Run
    from electrode_ct.stats import StatsInput

CHANGE_COLUMNS = ("delta", "sem_delta", "z")
"""Per-particle change columns of tracked, non-reference states."""


def great2_outputs(run: Run, prep: StatsInput, states: list[int], ref: int, column: str
                   ) -> tuple[dict[str, str], dict[str, Any]]:
    """Conditions table, painted volumes and the change map of the stats step.

    Parameters
    ----------
    run : Run
        The pipeline run.
    prep : StatsInput
        The stats step's tables (border and size selection applied).
    states : list of int
        State of each table.
    ref : int
        Index of the reference table in ``prep.tables``.
    column : str
        Grey column of the statistics.

    Returns
    -------
    (dict, dict)
        Outputs (name → relative path) and summary entries (``conditions``,
        ``painted``, ``change_map``).
    """
    from electrode_ct.conditions import state_conditions

    p = run.cfg.steps.stats
    tables = _with_change(prep, ref, column)
    _check_paint(p.paint, tables, states, ref)
    shares = state_conditions(prep.tables, column=column, reference=ref,
                              is_paired=prep.paired, conditions=p.conditions,
                              name="steps.stats.conditions")
    outputs: dict[str, str] = {}
    summary: dict[str, Any] = {}
    if len(shares):
        shares["state"] = np.asarray(states)[shares["state"].to_numpy(int)]
        outputs["conditions"] = str(write_table(
            shares, run.path("tables/conditions.parquet"), csv=True).relative_to(run.out))
        summary["conditions"] = shares.to_dict(orient="records")
    painted = _paint(run, p.paint, tables, states)
    outputs.update(painted)
    summary["painted"] = sorted(painted)
    if prep.paired and p.change_map:
        cm = _change_map(run, tables, states, ref)
        if cm is not None:
            outputs["change_map"] = cm.pop("path")
            summary["change_map"] = cm
    return outputs, summary


def _with_change(prep: StatsInput, ref: int, column: str) -> list[pd.DataFrame]:
    """The tables, tracked non-reference ones with ``delta``, ``sem_delta`` and ``z``."""
    from electrode_ct.conditions import change_table

    if not prep.paired:
        return list(prep.tables)
    return [t if k == ref else change_table(prep.tables[ref], t, column=column)
            for k, t in enumerate(prep.tables)]


def _check_paint(columns: list[str], tables: list[pd.DataFrame], states: list[int],
                 ref: int) -> None:
    """Every painted column exists (before anything is written)."""
    for col in columns:
        for k, t in enumerate(tables):
            if col in t.columns or (k == ref and col in CHANGE_COLUMNS):
                continue
            raise ConfigError(f"steps.stats.paint: column {col!r} is not in the particle "
                              f"table of state {states[k]}; available: "
                              f"{', '.join(map(str, t.columns))}")


def _paint(run: Run, columns: list[str], tables: list[pd.DataFrame], states: list[int]
           ) -> dict[str, str]:
    """``paint_<column>_<state>``: float32 volumes, NaN outside the measured particles."""
    from electrode_ct.pipeline.steps import particle_labels
    from electrode_ct.report.great2_plots import paint_property

    ext = ".ome.zarr" if run.cfg.volume_format == "ome-zarr" else ".tif"
    out = {}
    for col in columns:
        for t, st in zip(tables, states, strict=True):
            if col not in t.columns:
                continue  # the change columns of the reference state
            lab = particle_labels(run, st)
            img = paint_property(lab.numpy(), t, col)
            rel = f"volumes/paint_{col}_{st}{ext}"
            write(lab.with_data(img, painted_column=col).with_class_map(None), run.path(rel))
            out[f"paint_{col}_{st}"] = rel
    return out


def _change_map(run: Run, tables: list[pd.DataFrame], states: list[int], ref: int
                ) -> dict[str, Any] | None:
    """The change map of the tracked particle with the most negative ``z``."""
    from electrode_ct.operando import Rigid, apply_calibration, change_map
    from electrode_ct.pipeline.steps import grey_input, particle_labels

    best = None
    for k, t in enumerate(tables):
        if k != ref and "z" in t and t["z"].notna().any():
            row = t.loc[t["z"].idxmin()]
            if best is None or row["z"] < best[1]["z"]:
                best = (k, row)
    if best is None:
        return None
    k, row = best
    reg = run.summary("track")["registration"][states[k]]
    lab = particle_labels(run, states[ref])
    state_grey = apply_calibration(grey_input(run, states[k]).numpy(), reg.get("calibration"))
    diff, start = change_map(grey_input(run, states[ref]).numpy(), state_grey, lab.numpy(),
                             int(row["label"]), Rigid.from_report(reg), spacing=lab.spacing)
    rel = "volumes/change_map.tif"
    write(lab.with_data(diff).with_class_map(None), run.path(rel))
    return {"path": rel, "label": int(row["label"]), "state": int(states[k]),
            "start_zyx": [int(v) for v in start], "delta": float(row["delta"]),
            "z": float(row["z"]), "mean_change": float(np.nanmean(diff))}
