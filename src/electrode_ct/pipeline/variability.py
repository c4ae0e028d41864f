"""The pipeline's ``variability`` step: segmentations of the run's volume by several users
and methods compared as in Bailey et al. (spread of a phase fraction, pairwise subtraction
images, difference from a reference value)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from electrode_ct.errors import ConfigError
from electrode_ct.io import read, write, write_json
from electrode_ct.pipeline.runner import StepResult
from electrode_ct.volume import Volume

if TYPE_CHECKING:
    from electrode_ct.pipeline.runner import Run


def _groups(run: Run) -> tuple[dict[str, list[np.ndarray]], Any]:
    """The configured segmentations (cropped as the input), by method, and a class map."""
    from electrode_ct.pipeline.steps import _crop

    p = run.cfg.steps.variability
    if not p.segmentations:
        raise ConfigError("steps.variability.segmentations: expected {method: [file, file, "
                          "...]} with at least 2 files per method")
    groups: dict[str, list[np.ndarray]] = {}
    cmap = run.cfg.input.class_map
    for method, paths in p.segmentations.items():
        vols = [_crop(run, read(path)) for path in paths]
        cmap = cmap or next((v.class_map for v in vols if v.class_map), None)
        groups[method] = [v.numpy() for v in vols]
    return groups, cmap


def step_variability(run: Run) -> StepResult:
    """Per method: phase fraction mean ± std over users, pairwise % differing, reference
    difference; the subtraction images of the central z slice for the report."""
    from electrode_ct.metrics.variability import method_variability, subtraction
    from electrode_ct.volume import resolve_phase

    p = run.cfg.steps.variability
    groups, cmap = _groups(run)
    shapes = {a.shape for segs in groups.values() for a in segs}
    if len(shapes) != 1:
        raise ConfigError(f"steps.variability.segmentations: expected one shape, got "
                          f"{sorted(shapes)}")
    methods = method_variability(groups, phase=p.phase, reference=p.reference, class_map=cmap)
    value = resolve_phase(p.phase, cmap, where="steps.variability.phase")
    z = next(iter(shapes))[0] // 2
    titles, images, pct = [], [], []
    for name, segs in groups.items():
        m = methods[name]
        for (i, j), d in zip(m["phase_pairs"], m["phase_percent_different"], strict=True):
            titles.append(f"{name}\nuser {i + 1} − user {j + 1}")
            images.append(subtraction(segs[i][z], segs[j][z], value))
            pct.append(d)
    write(Volume(np.stack(images)), run.path("volumes/variability_subtraction_z.tif"))
    write_json(methods, run.path("tables/variability.json"))
    return StepResult(
        {"variability": "tables/variability.json",
         "subtraction_slices": "volumes/variability_subtraction_z.tif"},
        {"methods": methods, "phase": p.phase, "reference": p.reference, "z": int(z),
         "subtraction_titles": titles, "subtraction_percent": pct})
