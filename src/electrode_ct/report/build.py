"""Assemble ``report.html`` from a pipeline output folder (provenance.json, tables, volumes).

The report reads only what the run wrote, so it can be rebuilt at any time
(``build_report(folder)``). Sections without data are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from electrode_ct.io import read, read_table
from electrode_ct.report.cnn_forest import cnn_forest_sections
from electrode_ct.report.figures import bars, histogram, orthoslices, rve_curve
from electrode_ct.report.html import Section, write_report
from electrode_ct.report.segmentpy import segmentpy_sections


def _vol(out: Path, rel: str | None) -> Any:
    if not rel or not (out / rel).exists():
        return None
    return read(out / rel).compute()


def _cropped(vol: Any, roi: dict[str, list[int]] | None) -> Any:
    if not roi or vol is None:
        return vol
    from electrode_ct.filters import crop

    data, _ = crop(vol.numpy(), **{k: tuple(v) for k, v in roi.items()})
    return vol.with_data(data)


def _ref(man: dict[str, Any]) -> int:
    """The run's reference state (``input.reference_state``; 0 for older runs)."""
    return int(man.get("config", {}).get("input", {}).get("reference_state") or 0)


def _dataset(out: Path, man: dict[str, Any]) -> list[Section]:
    cfg = man.get("config", {})
    steps = man.get("steps", {})
    inp = cfg.get("input", {})
    greys = inp.get("grey", []) or inp.get("phases") or []
    sec = Section("Dataset")
    if not greys:
        return []
    from electrode_ct.inspect import summary

    ref = _ref(man)
    g = _cropped(read(greys[ref], voxel_size=inp.get("voxel_size")).compute(),
                 inp.get("crop"))
    s = summary(g)
    sec.table({"input": greys[ref], "states": len(greys), "reference state": ref,
               "crop": str(inp.get("crop") or "none"),
               "kind": "grey scan" if inp.get("grey") else "phase segmentation",
               "shape (z, y, x)": str(tuple(s["shape"])),
               "voxel size (µm)": " × ".join(f"{v:g}" for v in s["spacing_um"])
               + (" (ASSUMED: no voxel size in the file; set input.voxel_size)"
                  if s["spacing_source"] == "assumed" else ""),
               "dtype": s["dtype"], "grey range": f"{s['min']:.4g} … {s['max']:.4g}",
               "noise σ (grey levels)": s["noise_sigma"]})
    ph = _vol(out, steps.get("segment", {}).get("outputs", {}).get(f"phases_{ref}"))
    if ph is None and cfg.get("input", {}).get("phases"):
        ph = _cropped(read(cfg["input"]["phases"][ref]).compute(), inp.get("crop"))
    par = _vol(out, steps.get("particles", {}).get("outputs", {}).get("particles"))
    arr = g.numpy()
    if ph is not None and ph.shape == g.shape:
        sec.figure(orthoslices(arr, overlay=ph.numpy(), spacing=g.spacing,
                               title="Orthoslices with phases"), alt="orthoslices with phases")
    else:
        sec.figure(orthoslices(arr, spacing=g.spacing, title="Orthoslices"), alt="orthoslices")
    if par is not None and par.shape == g.shape:
        sec.figure(orthoslices(arr, overlay=par.numpy(), overlay_kind="particles",
                               spacing=g.spacing, title="Orthoslices with particles"),
                   alt="orthoslices with particles")
    if inp.get("grey"):
        seg = steps.get("segment", {}).get("summary", {}).get(f"state_{ref}", {})
        sec.figure(histogram(arr, thresholds=seg.get("thresholds")),
                   alt="histogram with thresholds")
    return [sec]


def _segmentation(man: dict[str, Any]) -> list[Section]:
    seg = man.get("steps", {}).get("segment", {}).get("summary", {})
    if not seg:
        return []
    sec = Section("Segmentation")
    s0 = seg.get(f"state_{_ref(man)}", {})
    sec.text(f"Method: {s0.get('method')}; thresholds: {s0.get('thresholds')}; "
             f"class map: {s0.get('class_map')}.")
    if s0.get("volume_fraction"):
        ci = man.get("steps", {}).get("metrics", {}).get("summary", {}).get(
            "volume_fraction_ci95")
        sec.figure(bars(s0["volume_fraction"], ylabel="volume fraction", intervals=ci,
                        title="Phase volume fractions" + (
                            " (bars: 95 % CI over sub-volumes)" if ci else "")),
                   alt="volume fractions")
        if not ci:
            sec.text("No interval for these fractions: the metrics step (which gives the "
                     "sub-volume spread) did not run.", note=True)
    q = seg.get("quality")
    if q:
        sec.text("Against the reference labels:")
        sec.table(pd.DataFrame({"class": q["classes"],
                                "IoU": [q["iou"][c] for c in q["classes"]],
                                "Dice": [q["dice"][c] for c in q["classes"]],
                                "fraction": [q["volume_fraction"][c] for c in q["classes"]],
                                "fraction (reference)": [q["volume_fraction_ref"][c]
                                                         for c in q["classes"]]}))
        sec.table({"accuracy": q["accuracy"], "mean IoU": q["mean_iou"],
                   "% voxels different": q["percent_different"]})
    return [sec, *cnn_forest_sections(man)]


def _metrics(man: dict[str, Any]) -> list[Section]:
    m = man.get("steps", {}).get("metrics", {}).get("summary", {})
    if not m:
        return []
    from electrode_ct.report.intervals import metrics_table

    sec = Section("Microstructure metrics")
    for key, label in (("volume_fraction", "volume fraction"),
                       ("specific_surface_area_per_um", "specific surface (µm⁻¹)")):
        if m.get(key):
            sec.figure(bars(m[key], ylabel=label, intervals=m.get(f"{key}_ci95"),
                            title=f"{label}, 95 % CI over sub-volumes"), alt=label)
    sec.table(metrics_table(m, ("volume_fraction", "specific_surface_area_per_um",
                                "specific_interfacial_area_per_um", "interface_voxel_percent",
                                "tortuosity", "effective_diffusivity_ratio")))
    sub = m.get("subvolumes")
    if sub:
        sec.text(f"Value: the whole volume. ± std and 95 % CI: {sub['n']} sub-volumes of "
                 f"{sub['size_um']:g} µm ({sub['method']}); tortuosity over at most 8 of them, "
                 "the non-percolating ones left out.", note=True)
    flat = {}
    for k, v in (m.get("percolating_fraction") or {}).items():
        flat[f"percolating_fraction [{k}]"] = v
    for key in ("phase", "surface_method", "tortuosity_solver", "solver_tolerance"):
        if key in m:
            flat[key] = m[key]
    sec.table(flat)
    if m.get("tortuosity_rve"):
        sec.figure(rve_curve(m["tortuosity_rve"]), alt="tortuosity against sub-volume size")
        sec.text("Tortuosity of the sub-volume cubes of each edge: mean ± standard deviation "
                 "over the percolating cubes (steps.metrics.subvolumes).", note=True)
    return [sec]


def _particles(out: Path, man: dict[str, Any]) -> list[Section]:
    outs = man.get("steps", {}).get("measure", {}).get("outputs", {})
    key = f"particles_{_ref(man)}"
    if key not in outs:
        return []
    from electrode_ct.measure.psd import plot_size_distribution, size_distribution
    from electrode_ct.report.intervals import psd_table

    table = read_table(out / outs[key])
    secs = []
    sec = Section("Particle size distribution")
    if len(table) and "equivalent_diameter_um" in table:
        cfg = man.get("config", {})
        dist = size_distribution(
            table, seed=int(cfg.get("seed") or 0),
            bootstrap=int(cfg.get("steps", {}).get("measure", {}).get("bootstrap") or 1000))
        fig, ax = plt.subplots(figsize=(7, 3.5))
        plot_size_distribution(dist, ax=ax)
        sec.figure(fig, alt="particle size distribution")
        sec.table(psd_table(dist))
        sec.text(f"{dist['n_particles']} particles; intervals: {dist['bootstrap']['method']} "
                 f"({dist['bootstrap']['n']} resamples, seed {dist['bootstrap']['seed']}).",
                 note=True)
    secs.append(sec)
    summ = Section("Particle table")
    n_border = int(table["touches_border"].sum()) if "touches_border" in table else 0
    keep = man.get("config", {}).get("steps", {}).get("stats", {}).get("keep_border", False)
    where = (f" ({'kept in' if keep else 'left out of'} the population statistics)"
             if "stats" in man.get("steps", {}) else "")
    summ.text(f"{len(table)} particles of the reference state, {n_border} touching a face of "
              f"the volume{where}. Full table: {outs[key]}.")
    cols = [c for c in ("volume_um3", "equivalent_diameter_um", "surface_area_um2",
                        "sphericity", "grey_mean", "roi_mean", "sem", "n_neighbours")
            if c in table]
    if cols and len(table):
        summ.table(table[cols].describe().T.reset_index().rename(columns={"index": "column"}))
    secs.append(summ)
    return secs


def _radial(out: Path, man: dict[str, Any]) -> list[Section]:
    outs = man.get("steps", {}).get("measure", {}).get("outputs", {})
    keys = sorted((k for k in outs if k.startswith("radial_")), key=lambda k: int(k[7:]))
    if not keys:
        return []
    from electrode_ct.report.great2_plots import radial_profile_plot
    from electrode_ct.stats import aggregate_radial

    frames = []
    for k in keys:
        agg = aggregate_radial(read_table(out / outs[k]))
        agg["state"] = int(k[7:])
        frames.append(agg)
    sec = Section("Radial grey-level profiles (GREAT2)")
    sec.figure(radial_profile_plot(pd.concat(frames, ignore_index=True), k=2.0,
                                   title="mean normalised radial profile per state, ±2 SE"),
               alt="radial profiles")
    sec.text("Layer 1 is the particle surface shell; grey levels are normalised per particle "
             "(surface layer 0, brightest layer 1).", note=True)
    _subset_profiles(out, man, sec)
    return [sec]


def _subset_profiles(out: Path, man: dict[str, Any], sec: Section) -> None:
    """One figure per stats grouping of the stats step's radial profiles (±2 SE bands)."""
    from electrode_ct.report.great2_plots import radial_profile_plot

    rel = man.get("steps", {}).get("stats", {}).get("outputs", {}).get("radial_profiles")
    if not rel or not (out / rel).exists():
        return
    prof = read_table(out / rel)
    size = (man["steps"]["stats"].get("summary", {}).get("size_subset") or {}).get("spec")
    within = f" within size subset {size}" if size else ""
    if size:
        n = man["steps"]["stats"]["summary"]["size_subset"]["n_selected"]
        sec.text(f"Profiles below: particles within size subset {size} only "
                 f"({', '.join(map(str, n))} per state), by subset, ±2 SE bands.", note=True)
    for grouping, part in prof.groupby("grouping", sort=False):
        if grouping == "all" and not size:
            continue  # the per-state figure above
        sec.figure(radial_profile_plot(part, k=2.0, title=f"radial profiles by {grouping}"
                                       f"{within} (state / subset), ±2 SE"),
                   alt=f"radial profiles by {grouping}")


def _cracks(out: Path, man: dict[str, Any]) -> list[Section]:
    summ = man.get("steps", {}).get("cracks", {}).get("summary", {})
    if not summ:
        return []
    from electrode_ct.report.cracks_figures import add_cracks_figures
    from electrode_ct.report.intervals import flawed_cell

    sec = Section("Cracks and flaws")
    rows = [{"state": k, "% flawed ± std [95 % Wilson CI]": flawed_cell(v),
             **{kk: vv for kk, vv in v.items()
                if np.isscalar(vv) and not kk.startswith("percent_flawed")}}
            for k, v in summ.items()]
    sec.table(pd.DataFrame(rows))
    add_cracks_figures(sec, out, man, state=_ref(man))
    return [sec]


def _stats(out: Path, man: dict[str, Any]) -> list[Section]:
    outs = man.get("steps", {}).get("stats", {}).get("outputs", {})
    if "stats" not in outs:
        return []
    from electrode_ct.report.great2_plots import state_plot

    st = read_table(out / outs["stats"])
    summ = man["steps"]["stats"].get("summary", {})
    sec = Section("Population statistics")
    notes = [n for n in (summ.get("pairing_note") if st["state"].nunique() > 1 else None,
                         summ.get("border_note")) if n]
    if notes:
        sec.text("; ".join(notes) + ".", note=True)
    if st["state"].nunique() > 1:
        sec.figure(state_plot(st, value="I_mean", k=2.0), alt="mean grey level per state")
        if "dI" in st:
            sec.figure(state_plot(st, value="dI", k=2.0), alt="change vs reference per state")
    sec.table(st, max_rows=40)
    return [sec]


def _provenance(man: dict[str, Any]) -> list[Section]:
    sec = Section("Provenance")
    steps = man.get("steps", {})
    sec.table(pd.DataFrame([{"step": k, "time_s": v.get("time_s"), "key": v.get("key", "")[:12]}
                            for k, v in steps.items()]))
    sec.table(man.get("versions", {}))
    sec.text("Every parameter and input hash is in provenance.json beside this report.",
             note=True)
    import html as _html

    sec.parts.append("<details><summary>configuration</summary><pre>"
                     + _html.escape(json.dumps(man.get("config", {}), indent=1))
                     + "</pre></details>")
    return [sec]


def report_sections(folder: str | Path, *, prefix: str = "") -> list[Section]:
    """The report sections of a pipeline output folder (titles prefixed with ``prefix``)."""
    out = Path(folder)
    man = json.loads((out / "provenance.json").read_text())
    from electrode_ct.report import variability as bailey
    from electrode_ct.report.great2_report import great2_sections
    from electrode_ct.report.instances import instance_sections

    sections = (_dataset(out, man) + _segmentation(man) + segmentpy_sections(man)
                + _metrics(man) + bailey.report_sections(out, man) + _particles(out, man)
                + instance_sections(out, man) + _radial(out, man) + _cracks(out, man)
                + _stats(out, man) + great2_sections(out, man) + _provenance(man))
    for sec in sections:
        sec.title = prefix + sec.title
    return sections


def build_report(folder: str | Path, *, title: str = "electrode-ct report") -> Path:
    """Write ``report.html`` into a pipeline output folder and return its path."""
    out = Path(folder)
    man = json.loads((out / "provenance.json").read_text())
    sections = report_sections(out)
    greys = man.get("config", {}).get("input", {}).get("grey", [])
    return write_report(out / "report.html", sections, title=title,
                        subtitle=", ".join(Path(g).name for g in greys))
