"""CLI command ``ect segment predict``: segment an image with a saved model of any kind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from electrode_ct.cli._common import (
    JSON_HELP,
    VOXEL_SIZE_HELP,
    emit_json,
    progress,
    read_input,
    say,
)
from electrode_ct.cli.app import segment_app


@segment_app.command("predict")
def predict_cmd(
    model: Path = typer.Argument(..., help="Model file (forest or CNN)."),
    image: str = typer.Argument(..., help="Grey image or volume."),
    out: Path = typer.Argument(..., help="Output labels (the model's class values, uint8)."),
    probabilities: Path = typer.Option(None, "--probabilities",
                                       help="Also write per-class probabilities (K,z,y,x)."),
    uncertainty: Path = typer.Option(None, "--uncertainty",
                                     help="Also write the entropy uncertainty map (0..1)."),
    two_d: bool = typer.Option(False, "--2d",
                               help="Segment every z slice on its own (a forest must have "
                                    "been trained with --2d)."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Segment an image with a saved model (any kind: forest, CNN)."""
    from electrode_ct.segment.models import load_model

    m = load_model(model)
    vol = read_input(image, voxel=voxel)
    t0 = time.perf_counter()
    pred = m.predict(vol, probabilities=probabilities is not None,
                     uncertainty=uncertainty is not None, two_d=two_d,
                     progress=lambda it: progress(it, desc="predict"))
    dt = time.perf_counter() - t0
    cmap = dict(zip(m.class_names, m.class_values, strict=True))
    written = _write_outputs(vol, pred, cmap, m.class_names,
                             {"labels": out, "probabilities": probabilities,
                              "uncertainty": uncertainty})
    counts = np.bincount(pred.labels.ravel(), minlength=max(m.class_values) + 1)
    fractions = {n: float(counts[v]) / pred.labels.size for n, v in cmap.items()}
    summary = {"outputs": written, "class_map": cmap, "volume_fraction": fractions,
               "time_s": dt, "mvoxel_per_s": pred.labels.size / dt / 1e6, "kind": m.kind}
    if pred.uncertainty is not None:
        summary["mean_uncertainty"] = float(pred.uncertainty.mean())
    if pred.intensity_range is not None:
        summary["intensity_range"] = [float(v) for v in pred.intensity_range]
    if as_json:
        emit_json(summary)
        return
    say(f"wrote {out}: " + ", ".join(f"{k} {100 * f:.2f} %" for k, f in fractions.items()))


def _write_outputs(vol: Any, pred: Any, cmap: dict[str, int], class_names: list[str],
                   paths: dict[str, Path | None]) -> dict[str, str]:
    """Write the labels and the requested maps (a 2-D image gives 2-D files)."""
    from electrode_ct.io import write

    def plane(a: np.ndarray) -> np.ndarray:  # drop the z axis of a single 2-D image
        return a[..., 0, :, :] if vol.is_2d else a

    write(vol.with_data(plane(pred.labels)).with_class_map(cmap), paths["labels"])
    written = {"labels": str(paths["labels"])}
    if paths["probabilities"] is not None and pred.probabilities is not None:
        p = plane(pred.probabilities)
        write(vol.with_data(p.reshape(-1, *p.shape[-2:]), class_names=class_names),
              paths["probabilities"])
        written["probabilities"] = str(paths["probabilities"])
    if paths["uncertainty"] is not None and pred.uncertainty is not None:
        write(vol.with_data(plane(pred.uncertainty)), paths["uncertainty"])
        written["uncertainty"] = str(paths["uncertainty"])
    return written
