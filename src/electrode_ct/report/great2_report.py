"""GREAT2 report sections beyond the statistics table: grey-level calibration between
states, the modelled normal distributions of Ī, the condition pies, painted particle
columns and the intra-particle change map.

Each section reads only what the run wrote (provenance.json, tables, volumes) and is
left out when its data are absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from electrode_ct.io import read, read_table
from electrode_ct.report.html import Section

DIVERGING = ("delta", "z", "dI")
"""Painted columns shown with diverging colours about 0."""


def great2_sections(out: Path, man: dict[str, Any]) -> list[Section]:
    """The sections of a pipeline output folder ``out`` with manifest ``man``."""
    return (_calibration(man) + _normals(out, man) + _conditions(out, man)
            + _painted(out, man))


def calibration_table(registration: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per state and calibration region: peaks, drift, gain and offset."""
    rows = []
    for rep in registration:
        cal = rep.get("calibration")
        if not cal:
            continue
        for j, region in enumerate(cal["regions"]):
            rows.append({"state": rep["state"], "region": region,
                         "peak (reference)": cal["peaks_ref"][j],
                         "peak (state)": cal["peaks_state"][j], "drift": cal["drift"][j],
                         "gain": cal["gain"], "offset": cal["offset"]})
    return pd.DataFrame(rows)


def _calibration(man: dict[str, Any]) -> list[Section]:
    reg = man.get("steps", {}).get("track", {}).get("summary", {}).get("registration")
    if not reg:
        return []
    from electrode_ct.report.figures import bars

    sec = Section("Grey-level calibration between states")
    table = calibration_table(reg)
    if table.empty:
        sec.text("The states' grey levels were not calibrated against each other "
                 "(steps.track.calibrate is empty): a drift of the scanner between states "
                 "would show as a change ΔĪ.", note=True)
        return [sec]
    sec.figure(bars({f"state {r.state}: {r.region}": r.drift for r in table.itertuples()},
                    ylabel="drift (grey levels)",
                    title="peak drift of each reference region vs the reference state"),
               alt="grey-level drift per state")
    sec.table(table)
    sec.text("Each state's grey was mapped onto the reference's scale (gain · grey + "
             "offset, from the regions' histogram peaks) before the particles were "
             "measured.", note=True)
    return [sec]


def _normals(out: Path, man: dict[str, Any]) -> list[Section]:
    rel = man.get("steps", {}).get("stats", {}).get("outputs", {}).get("stats")
    if not rel or not (out / rel).exists():
        return []
    st = read_table(out / rel)
    allp = st[st["grouping"] == "all"]
    if allp["state"].nunique() < 2:
        return []
    from electrode_ct.report.great2_plots import state_normals

    sec = Section("Ī per state: modelled normal distributions")
    sec.figure(state_normals(allp), alt="modelled normal distributions of Ī per state")
    sec.text("Each curve is N(Ī, SE_tot²) of one state (all particles): the overlap of two "
             "curves is how far apart the states' mean grey levels are in units of their "
             "uncertainty.", note=True)
    return [sec]


def _conditions(out: Path, man: dict[str, Any]) -> list[Section]:
    rel = man.get("steps", {}).get("stats", {}).get("outputs", {}).get("conditions")
    if not rel or not (out / rel).exists():
        return []
    from electrode_ct.report.great2_plots import condition_pies

    shares = read_table(out / rel)
    sec = Section("Particles per condition")
    sec.figure(condition_pies(shares), alt="condition pies")
    conds = man.get("config", {}).get("steps", {}).get("stats", {}).get("conditions") or {}
    sec.text("Each particle is counted in the first condition it meets, so each state's "
             "pie sums to 100 %. " + ("Conditions: " + "; ".join(
                 f"{k}: {v}" for k, v in conds.items()) if conds else
                 "Default conditions: the particle's change ΔI vs the reference beyond "
                 "±2 SEM of that change."), note=True)
    tab = shares.assign(**{"percent ± SE": [f"{p:.1f} ± {s:.1f}" for p, s in
                                            zip(shares["percent"], shares["se_percent"],
                                                strict=True)]})
    sec.table(tab[["state", "category", "n", "n_total", "percent ± SE"]])
    return [sec]


def _painted(out: Path, man: dict[str, Any]) -> list[Section]:
    outs = man.get("steps", {}).get("stats", {}).get("outputs", {})
    keys = [k for k in outs if k.startswith("paint_")]
    cm = man.get("steps", {}).get("stats", {}).get("summary", {}).get("change_map")
    if not keys and not cm:
        return []
    from electrode_ct.report.great2_plots import change_map_figure

    sec = Section("Particle properties in image space")
    for k in keys:
        col, state = k[len("paint_"):].rsplit("_", 1)
        vol = read(out / outs[k]).compute().numpy()
        sec.figure(change_map_figure(vol, diverging=col in DIVERGING, label=col,
                                     title=f"{col} per particle, state {state}"),
                   alt=f"{col} painted, state {state}")
    if cm and "change_map" in outs and (out / outs["change_map"]).exists():
        diff = read(out / outs["change_map"]).compute().numpy()
        sec.figure(change_map_figure(
            diff, title=f"change map of particle {cm['label']}, state {cm['state']} − "
            f"reference (ΔI = {cm['delta']:.4g}, z = {cm['z']:.3g})"),
            alt="intra-particle change map")
        sec.text("Registered, smoothed (σ = 1 voxel) and subtracted grey levels inside the "
                 "most darkened tracked particle; its rim (2 voxels) is left blank.",
                 note=True)
    return [sec]
