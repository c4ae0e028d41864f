"""``ect demo``: the full pipeline on the embedded real samples and an operando phantom.

Three runs, one report:
1. the NREL NMC-1-cal micro-CT crop (real scan): random forest from its own ilastik
   scribbles, particles, GREAT2 tables, microstructure metrics, SNR / CNR per phase,
   Bailey et al.'s user variability (three simulated users of a threshold and of an
   ML1 threshold-seeded forest); a three-member CNN ensemble trained on perturbed
   scribbles gives the labeller-uncertainty spread and a small learning-rate search its
   ranking (SegmentPy);
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

import numpy as np

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
                            "class_names": ["active", "pore_cbd"], "trees": 50,
                            "next_regions": 3,  # the correction loop: where to label next
                            "ensemble": _members(inputs),
                            "search": _searched(inputs)},
                "particles": {"phase": "active", "min_volume_um3": 2.0},
                "measure": {"exclude_layers": 2},
                "metrics": {"phase": "pore_cbd", "tortuosity": ["z"]},
                "variability": _variability(inputs),
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
            "cracks": {"enabled": True,  # the phantom's truth: ROC, precision-recall
                       "method": "cnn",  # the shipped CNN: training curves, m-sweep
                       "truth": [str(inputs / f"operando/state_{i}/truth.parquet")
                                 for i in range(3)],
                       "truth_labels": [str(inputs / f"operando/state_{i}/particles.tif")
                                        for i in range(3)]},
            "metrics": {"enabled": False},
            "stats": {"by": "volume_um3:2", "size_subset": "q2-q4", "paint": ["z"]},
            "report": {"enabled": False},
        },
    }


USERS = (-1, 0, 1)
"""Simulated users of the micro-CT crop: the Otsu cut moved by k × 3 % of the grey range."""

METHODS = {"threshold": "threshold", "ML1 forest (first slice)": "ml1"}
"""The user study's methods (report name -> file name)."""


def _variability(inputs: Path) -> dict[str, Any]:
    users = inputs / "users"
    return {"enabled": True, "phase": "active",
            "segmentations": {m: [str(users / f"{f}_{k}.tif") for k in range(len(USERS))]
                              for m, f in METHODS.items()},
            # NREL's MATBOX segmentation of the whole electrode stands in for a FIB-SEM value
            "reference": float(np.mean(data.nmc_phases().numpy() == 1))}


def _users(inputs: Path, grey: Any) -> None:
    """Bailey et al.'s user study on the micro-CT crop: three users' threshold cuts, and a
    forest seeded from each cut on the first slice (ML1 as published)."""
    from electrode_ct.segment.forest_train import train_forest
    from electrode_ct.segment.scribbles import threshold_seeds
    from electrode_ct.segment.threshold import threshold_values

    a = grey.numpy().astype(np.float32)
    cut = float(threshold_values(a, method="otsu")[0])
    step = 0.03 * float(np.ptp(np.percentile(a, [1, 99])))
    cmap = {"pore_cbd": 1, "active": 2}
    for k, off in enumerate(USERS):  # three users, two methods
        seeds = threshold_seeds(a, [cut + off * step], slices=[0])
        forest = train_forest(grey, seeds, n_trees=8, features="minimal", max_depth=8,
                              augment=0.0, seed=k)
        for name, lab in (("threshold", 1 + (a > cut + off * step)),
                          ("ml1", forest.predict(grey).labels)):
            write(grey.with_data(lab.astype(np.uint8)).with_class_map(cmap),
                  inputs / "users" / f"{name}_{k}.tif")
def _searched(inputs: Path) -> str | None:
    """The demo's CNN search folder, when torch could run it."""
    folder = inputs / "cnn_search"
    return str(folder) if (folder / "search.json").exists() else None


def _members(inputs: Path) -> list[str] | None:
    """The demo's perturbed-label CNN ensemble (a folder), when torch could train it."""
    folder = inputs / "cnn_ensemble"
    return [str(folder)] if len(list(folder.glob("member_*.model"))) >= 2 else None


def _train_members(inputs: Path, grey: Any, scribbles: Any, *, seed: int) -> None:
    """Three small CNNs on perturbed copies of the micro-CT scribbles (SegmentPy's labeller
    uncertainty), saved once as ``inputs/cnn_ensemble/member_NN.model``; skipped without
    torch (the ``dl`` extra)."""
    try:
        from electrode_ct.segment.cnn.config import TrainConfig
        from electrode_ct.segment.cnn.ensemble import train_ensemble
    except ImportError:
        return
    folder = inputs / "cnn_ensemble"
    if _members(inputs):
        return
    cfg = TrainConfig(channels=8, depth=2, patch=48, patches_per_epoch=64, epochs=20,
                      members=1, seed=seed)
    res = train_ensemble(grey.numpy(), scribbles.numpy(), n=3, config=cfg, seed=seed,
                         class_names=["active", "pore_cbd"], spacing=grey.spacing)
    folder.mkdir(parents=True, exist_ok=True)
    for i, model in enumerate(res.models):
        model.save(folder / f"member_{i:02d}.model")


def _search(inputs: Path, grey: Any, scribbles: Any, *, seed: int) -> str | None:
    """A small learning-rate search (2 values × 2 repeats of a small CNN) on the micro-CT
    crop: trained on the scribbles of the central labelled slice, ranked on those of the
    first and last; written once to ``inputs/cnn_search`` (None without torch)."""
    folder = inputs / "cnn_search"
    if (folder / "search.json").exists():
        return str(folder)
    try:
        from electrode_ct.cli.segment_segpy import write_search
        from electrode_ct.segment.cnn.config import TrainConfig
        from electrode_ct.segment.cnn.search import search
    except ImportError:
        return None
    g, s = grey.numpy(), scribbles.numpy()
    z = np.flatnonzero(s.reshape(len(s), -1).any(axis=1))
    train_lab, val_lab = s.copy(), s.copy()
    train_lab[[z[0], z[-1]]] = 0
    val_lab[z[1:-1]] = 0
    cfg = TrainConfig(channels=8, depth=2, patch=48, patches_per_epoch=48, epochs=4,
                      members=1, seed=seed)
    rows: list[dict[str, Any]] = []
    table = search(g, train_lab, val=(g, val_lab), space={"lr": [1e-3, 3e-3]}, config=cfg,
                   repeats=2, seed=seed, trials=rows)
    write_search(table, rows, ["lr"], folder,
                 inputs={"image": "nmc1cal.tif", "labels": "nmc1cal_labels.tif"},
                 params={"space": {"lr": [1e-3, 3e-3]}, "repeats": 2, "strategy": "grid",
                         "seed": seed})
    return str(folder)


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
    _train_members(inputs, grey, scribbles, seed=seed)
    _search(inputs, grey, scribbles, seed=seed)
    write(data.nmc_phases(), inputs / "nmc1cal_phases.tif")
    if not (inputs / "users" / f"threshold_{len(USERS) - 1}.tif").exists():
        _users(inputs, grey)
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
