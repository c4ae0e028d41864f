"""``ect demo``: the full pipeline on the embedded real samples and an operando phantom.

Three runs, one report:
1. the NREL NMC-1-cal micro-CT crop (real scan): random forest from its own ilastik
   scribbles, particles, GREAT2 tables, microstructure metrics;
2. the real NMC-1-cal 3-phase packing (NREL MATBOX): particles, size distribution,
   surface areas, tortuosity;
3. a generated operando phantom series (3 states of charge, hundreds of particles, 60 %
   of them cracking, a planted scanner drift between the scans): grey-level calibration,
   tracking, GREAT2 statistics (a significant ΔĪ, |Z| >= 5), condition pies, painted
   changes, an intra-particle change map, crack classification.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from electrode_ct import data
from electrode_ct.io import write
from electrode_ct.pipeline import parse_config, run_pipeline


def _configs(out: Path) -> dict[str, dict[str, Any]]:
    inputs = out / "inputs"
    return {
        "micro-CT (NREL NMC-1-cal crop, real)": {
            "input": {"grey": [str(inputs / "nmc1cal.tif")], "voxel_size": data.NMC_VOXEL_UM},
            "output": str(out / "microct"),
            "steps": {
                "segment": {"method": "forest", "scribbles": str(inputs / "nmc1cal_labels.tif"),
                            "class_names": ["active", "pore_cbd"], "trees": 50},
                "particles": {"phase": "active", "min_volume_um3": 2.0},
                "measure": {"exclude_layers": 2},
                "metrics": {"phase": "pore_cbd", "tortuosity": ["z"]},
                "report": {"enabled": False},
            },
        },
        "packing (NREL MATBOX NMC-1-cal, real)": {
            "input": {"phases": [str(inputs / "nmc1cal_phases.tif")],
                      "voxel_size": data.NMC_VOXEL_UM,
                      # a 51 × 76 × 76 µm crop keeps the demo within minutes on a laptop
                      "crop": {"z": [0, 128], "y": [0, 192], "x": [0, 192]}},
            "output": str(out / "packing"),
            "steps": {
                "segment": {"enabled": False},
                "particles": {"phase": "active", "min_volume_um3": 5.0},
                "measure": {"properties": "all", "radial": False},
                "metrics": {"phase": "pore", "tortuosity": ["x", "y", "z"]},
                "stats": {"enabled": False},
                "report": {"enabled": False},
            },
        },
        "operando phantom (3 states)": operando_config(out),
    }


OPERANDO_SHAPE = (72, 144, 144)
"""Voxels (z, y, x) of each operando state (0.5 µm voxels)."""

OPERANDO_SERIES = {"states": 3, "voxel_size": 0.5, "active_fraction": 0.35,
                   "cbd_fraction": 0.1, "radius_mean_um": 2.4, "radius_sd_um": 0.4,
                   "cracked_fraction": 0.6, "crack_width_um": 0.5, "snr": 40.0}
"""The operando phantom: sparse enough that most particles are tracked, many enough (and
quiet enough, SNR 40) that the cracking of 60 % of them gives a significant ΔĪ."""

OPERANDO_DRIFT = (0.0, 600.0, -400.0)
"""Scanner offset added to each state's grey (grey levels of 16 bits): the drift the track
step's calibration (pore peak) measures and removes."""


def operando_config(out: Path) -> dict[str, Any]:
    """The pipeline configuration of the demo's operando series (inputs under
    ``out/inputs/operando``, outputs in ``out/operando``, no report of its own)."""
    inputs = Path(out) / "inputs"
    return {
        "input": {"grey": [str(inputs / f"operando/state_{i}/grey.tif") for i in range(3)]},
        "output": str(Path(out) / "operando"),
        "steps": {
            "filter": {"enabled": True, "method": "gaussian", "sigma": 0.7},
            "segment": {"method": "threshold", "threshold_method": "multiotsu", "classes": 3,
                        "cleanup_min_island_um3": 1.0},
            "particles": {"phase": "active", "heal_cracks_um": 0.6, "min_volume_um3": 5.0},
            "track": {"calibrate": ["pore"], "volume_tolerance": 0.5},
            "measure": {"exclude_layers": 1},
            "cracks": {"enabled": True},
            "metrics": {"enabled": False},
            "stats": {"by": "volume_um3:2", "size_subset": "q2-q4", "paint": ["z"]},
            "report": {"enabled": False},
        },
    }


def operando_inputs(out: Path, *, seed: int = 0) -> None:
    """Write the operando series (with its scanner drift) into ``out/inputs/operando``,
    unless the same parameters were written there before."""
    from dataclasses import replace

    import numpy as np

    from electrode_ct.synth import operando_series

    folder = Path(out) / "inputs" / "operando"
    params = {"shape": list(OPERANDO_SHAPE), **OPERANDO_SERIES, "seed": seed,
              "drift": list(OPERANDO_DRIFT)}
    stamp = folder / "params.json"
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return
    series = operando_series(OPERANDO_SHAPE, **OPERANDO_SERIES, seed=seed)
    for i, (ph, off) in enumerate(zip(series, OPERANDO_DRIFT, strict=True)):
        g = ph.grey.numpy().astype(np.float64) + off
        info = np.iinfo(ph.grey.numpy().dtype)
        drifted = ph.grey.with_data(np.clip(g, info.min, info.max).astype(ph.grey.numpy().dtype))
        replace(ph, grey=drifted).save(folder / f"state_{i}")
    stamp.write_text(json.dumps(params))


def _inputs(out: Path, *, seed: int) -> None:
    inputs = out / "inputs"
    grey, scribbles = data.nmc_microct()
    write(grey, inputs / "nmc1cal.tif")
    write(scribbles, inputs / "nmc1cal_labels.tif")
    write(data.nmc_phases(), inputs / "nmc1cal_phases.tif")
    operando_inputs(out, seed=seed)


def run_demo(out: str | Path, *, seed: int = 0, quiet: bool = False) -> dict[str, Any]:
    """Run the demo into ``out`` and write ``out/report.html``.

    Returns
    -------
    dict
        ``report`` path, per-dataset output folders, and the total time in seconds.
    """
    from electrode_ct.report.build import report_sections
    from electrode_ct.report.html import write_report

    t0 = time.perf_counter()
    out = Path(out).resolve()
    _inputs(out, seed=seed)
    sections = []
    folders = {}
    for name, cfg in _configs(out).items():
        result = run_pipeline(parse_config(cfg, source=f"demo:{name}"), quiet=quiet)
        folders[name] = result["output"]
        sections += report_sections(result["output"], prefix=f"{name}: ")
    report = write_report(out / "report.html", sections, title="electrode-ct demo",
                          subtitle="embedded real samples and a generated operando series")
    return {"report": str(report), "outputs": folders, "time_s": time.perf_counter() - t0}
