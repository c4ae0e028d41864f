"""``ect metrics``: volume fractions, surface areas, connectivity and tortuosity of phases."""

from __future__ import annotations

from typing import Any

import typer

from electrode_ct.cli._common import (
    JSON_HELP,
    VOXEL_SIZE_HELP,
    emit_json,
    info,
    read_input,
    say,
    voxel_size,
)
from electrode_ct.cli.app import app


@app.command("metrics")
def metrics_cmd(
    phases: str = typer.Argument(..., help="Phase label volume (any readable format)."),
    phase: str = typer.Option(
        None, "--phase",
        help="Phase for tortuosity/percolation: class name or value. Default: 'pore' when "
        "the class map names it.",
    ),
    tortuosity_axes: str = typer.Option(
        "x,y,z", "--tortuosity", help="Directions for tortuosity: any of x,y,z, or 'none'."
    ),
    surface_method: str = typer.Option(
        "marching_cubes", "--surface-method", help="face | marching_cubes | gradient."
    ),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    tol: float = typer.Option(
        None, "--tol", help="Relative residual at which the tortuosity solve stops (1e-6)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Volume fractions, specific surface areas, percolation and tortuosity factor."""
    from electrode_ct.metrics.microstructure import microstructure_metrics

    spacing_opt = voxel_size(voxel)
    vol = read_input(phases, role="labels", voxel=voxel)
    info(f"{phases}: shape {vol.shape}, spacing {vol.spacing} µm")
    metrics = microstructure_metrics(
        vol, phase=phase, tortuosity=tortuosity_axes, surface_method=surface_method, tol=tol,
        report=info,
    )
    result: dict[str, Any] = {
        "input": phases,
        "shape": list(vol.shape),
        "spacing_um": list(vol.spacing),
        "spacing_from": "option" if spacing_opt is not None else "file",
        **metrics,
    }
    if as_json:
        emit_json(result)
        return
    say(f"{phases}  phase {result['phase']!r} (value {result['phase_value']}), spacing "
        + " x ".join(f"{s:g}" for s in vol.spacing) + " µm")
    say("  volume fraction      " + "  ".join(
        f"{k} {v:.4f}" for k, v in result["volume_fraction"].items()))
    say(f"  specific surface ({surface_method}, µm⁻¹)  " + "  ".join(
        f"{k} {v:.4g}" for k, v in result["specific_surface_area_per_um"].items()))
    say("  percolating fraction " + "  ".join(
        f"{k} {v:.4f}" for k, v in result["percolating_fraction"].items()))
    for ax, r in result["tortuosity_details"].items():
        say(f"  tortuosity {ax}         {r['tortuosity']:.4f}  "
            f"(D_eff/D {r['effective_diffusivity_ratio']:.4g}, {r['iterations']} CG "
            f"iterations, residual {r['relative_residual']:.1e})")
