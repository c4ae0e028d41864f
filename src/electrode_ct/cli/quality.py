"""``ect quality``: signal- and contrast-to-noise ratios of each phase of a grey image."""

from __future__ import annotations

import typer

from electrode_ct.cli._common import JSON_HELP, VOXEL_SIZE_HELP, emit_json, read_input, say
from electrode_ct.cli.app import app
from electrode_ct.errors import ShapeError


@app.command("quality")
def quality_cmd(
    grey: str = typer.Argument(..., help="Grey image or volume."),
    phases: str = typer.Argument(..., help="Phase labels of the same shape (e.g. a "
                                 "segmentation of it)."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """SNR and CNR per phase: grey mean and σ of each phase, contrast of each pair.

    Every phase of the labels' class map must hold voxels, and at least two phases.
    """
    from electrode_ct.metrics.quality import image_quality

    img = read_input(grey, voxel=voxel)
    lab = read_input(phases, role="labels")
    if img.shape != lab.shape:
        raise ShapeError(f"{phases} has shape {lab.shape} but {grey} has shape {img.shape}; "
                         "expected the same shape")
    res = image_quality(img.numpy(), lab.numpy(), class_map=lab.class_map, require_all=True)
    result = {"grey": grey, "phases_file": phases, **res}
    if as_json:
        emit_json(result)
        return
    for k, v in res["phases"].items():
        say(f"  {k:>10}: mean {v['mean']:.4g}  σ {v['std']:.4g}  SNR {v['snr']:.3g}  "
            f"({v['n_voxels']} voxels)")
    for k, v in res["pairs"].items():
        say(f"  {k:>21}: contrast {v['contrast']:.4g}  CNR {v['cnr']:.3g}  SNR {v['snr']:.3g}")
