"""The demo run on the embedded real samples (extended as the pipeline grows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from electrode_ct import data
from electrode_ct.inspect import summary
from electrode_ct.io.tables import write_json


def run_demo(out: str | Path) -> dict[str, Any]:
    """Run the demo and write its outputs to ``out``.

    Returns
    -------
    dict
        What was done, with the path of the written summary.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    grey, scribbles = data.nmc_microct()
    s = summary(grey)
    s["scribbles"] = {
        "labelled_voxels": int((scribbles.numpy() > 0).sum()),
        "class_map": scribbles.class_map,
    }
    path = write_json(s, out / "summary.json")
    return {
        "sample": "NREL NMC-1-cal micro-CT crop",
        "shape": s["shape"],
        "spacing_um": s["spacing_um"],
        "grey_range": [s["min"], s["max"]],
        "noise_sigma": s["noise_sigma"],
        "summary": str(path),
    }
