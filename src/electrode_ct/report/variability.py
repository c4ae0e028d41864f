"""Report sections of Bailey et al.'s yardsticks: image quality (SNR / CNR per phase) and
the variability of segmentations between users and methods.

Both read the run's ``provenance.json`` summaries (``steps.metrics.summary.image_quality``,
``steps.variability.summary``) and, for the subtraction images, the step's slice file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from electrode_ct.report.figures import PHASE_COLOURS
from electrode_ct.report.html import Section


def quality_figure(quality: dict[str, Any]) -> Figure:
    """SNR (mean / σ) of each phase and CNR of each pair of phases, as bars."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
    ph, pairs = quality["phases"], quality["pairs"]
    a.bar(list(ph), [_finite(v["snr"]) for v in ph.values()],
          color=PHASE_COLOURS[: len(ph)])
    a.set_ylabel("SNR = mean / σ")
    a.set_title("per phase")
    b.bar(list(pairs), [_finite(v["cnr"]) for v in pairs.values()], color="#607090")
    b.set_ylabel("CNR = |Δmean| / pooled σ")
    b.set_title("per pair of phases")
    b.tick_params(axis="x", labelrotation=20)
    return fig


def _finite(v: Any) -> float:
    """A bar height: inf (a noise-free phase) and None drawn as 0."""
    f = float(v) if v is not None and v != "inf" else float("nan")
    return f if np.isfinite(f) else 0.0


def quality_sections(man: dict[str, Any]) -> list[Section]:
    """The "Image quality" section from the metrics step's ``image_quality``."""
    q = man.get("steps", {}).get("metrics", {}).get("summary", {}).get("image_quality")
    if not q:
        return []
    sec = Section("Image quality (SNR / CNR)")
    if "note" in q:
        return [sec.text(f"SNR / CNR {q['note']}.", note=True)]
    sec.figure(quality_figure(q), alt="SNR per phase and CNR per pair of phases")
    sec.table(pd.DataFrame([{"phase": k, "voxels": v["n_voxels"], "mean": v["mean"],
                             "σ": v["std"], "SNR": v["snr"]} for k, v in q["phases"].items()]))
    sec.table(pd.DataFrame([{"pair": k, "contrast": v["contrast"], "CNR": v["cnr"],
                             "SNR (σ of the first)": v["snr"]} for k, v in q["pairs"].items()]))
    sec.text("Grey levels of the unfiltered input inside each segmented phase: SNR = mean/σ, "
             "CNR = |mean a − mean b| / √((σa² + σb²)/2). The σ includes the partial-volume "
             "voxels at the phase borders.", note=True)
    return [sec]


def report_sections(out: Path, man: dict[str, Any]) -> list[Section]:
    """Every section of this module (the hook of :mod:`electrode_ct.report.build`)."""
    return quality_sections(man) + variability_sections(out, man)


def variability_sections(out: Path, man: dict[str, Any]) -> list[Section]:
    """Placeholder until the variability step is written."""
    return []
