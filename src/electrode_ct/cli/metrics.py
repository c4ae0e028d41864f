"""``ect metrics``: volume fractions, surface areas, connectivity and tortuosity of phases."""

from __future__ import annotations

from typing import Any

import typer

from electrode_ct.cli._common import JSON_HELP, VOXEL_SIZE_HELP, emit_json, info, say, voxel_size
from electrode_ct.cli.app import app
from electrode_ct.errors import InputError

TAU_CONVENTION = (
    "tau = eps * D / D_eff; eps = volume fraction of the whole phase; D_eff/D = F*L/(A*dc) "
    "with A the full cross-section; fixed values on the two faces, no flux elsewhere"
)


def _axes(text: str) -> list[str]:
    if text.strip().lower() in ("", "none", "no", "off"):
        return []
    axes = [t.strip().lower() for t in text.replace(" ", ",").split(",") if t.strip()]
    bad = [a for a in axes if a not in ("x", "y", "z")]
    if bad or len(set(axes)) != len(axes):
        raise InputError(f"--tortuosity: expected axes among x,y,z (or 'none'), got {text!r}")
    return axes


def _default_phase(class_map: dict[str, int] | None, source: str) -> str:
    if class_map and "pore" in class_map:
        return "pore"
    raise InputError(
        f"{source}: no class map naming a 'pore' phase; choose the phase with --phase "
        "NAME_OR_VALUE"
    )


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
    from electrode_ct.io import read
    from electrode_ct.metrics._phase import phase_mask
    from electrode_ct.metrics.connectivity import connectivity
    from electrode_ct.metrics.fractions import phase_keys, volume_fractions
    from electrode_ct.metrics.quality import interface_percentage
    from electrode_ct.metrics.surface import METHODS, surface_areas
    from electrode_ct.metrics.tortuosity import DEFAULT_RTOL, SOLVER_NAME, tortuosity
    from electrode_ct.volume import resolve_phase

    if surface_method not in METHODS:
        raise InputError(
            f"--surface-method: expected one of {', '.join(METHODS)}, got {surface_method!r}"
        )
    axes = _axes(tortuosity_axes)
    rtol = DEFAULT_RTOL if tol is None else float(tol)
    if not 0 < rtol < 1:
        raise InputError(f"--tol: expected a relative tolerance in (0, 1), got {tol!r}")
    spacing_opt = voxel_size(voxel)
    vol = read(phases, voxel_size=spacing_opt)
    labels = vol.numpy()
    cmap = vol.class_map
    if axes and vol.is_2d:
        raise InputError(
            f"{phases}: a 2-D image; tortuosity needs a 3-D volume (use --tortuosity none)"
        )
    chosen = phase if phase is not None else _default_phase(cmap, phases)
    value = resolve_phase(chosen, cmap, where="--phase")
    mask = phase_mask(labels, value, class_map=cmap, name=phases)
    key = phase_keys([value], cmap)[0]

    info(f"{phases}: shape {vol.shape}, spacing {vol.spacing} µm, phase {key!r} = {value}")
    fractions = volume_fractions(labels, class_map=cmap)
    info(f"surface areas ({surface_method})")
    surf = surface_areas(labels, method=surface_method, spacing=vol.spacing, class_map=cmap)
    conn = connectivity(mask)
    taus: dict[str, Any] = {}
    for ax in axes:
        info(f"tortuosity along {ax}")
        taus[ax] = tortuosity(mask, axis=ax, spacing=vol.spacing, rtol=rtol)

    result: dict[str, Any] = {
        "input": phases,
        "shape": list(vol.shape),
        "spacing_um": list(vol.spacing),
        "spacing_from": "option" if spacing_opt is not None else "file",
        "phase": key,
        "phase_value": value,
        "volume_fraction": fractions,
        "specific_surface_area_per_um": surf["specific_surface_area_per_um"],
        "specific_interfacial_area_per_um": surf["specific_interfacial_area_per_um"],
        "surface_area_um2": surf["area_um2"],
        "interfacial_area_um2": surf["interfacial_area_um2"],
        "surface_method": surface_method,
        "interface_voxel_percent": interface_percentage(labels, class_map=cmap),
        "tortuosity": {ax: r.tortuosity for ax, r in taus.items()},
        "effective_diffusivity_ratio": {ax: r.effective_diffusivity_ratio
                                        for ax, r in taus.items()},
        "percolating_fraction": conn["percolating_fraction"],
        "isolated_fraction": conn["isolated_fraction"],
        "n_clusters": conn["n_clusters"],
        "n_isolated_clusters": conn["n_isolated"],
        "tortuosity_convention": TAU_CONVENTION,
        "tortuosity_solver": SOLVER_NAME,
        "solver_tolerance": rtol,
        "tortuosity_details": {ax: r.to_dict() for ax, r in taus.items()},
    }
    if as_json:
        emit_json(result)
        return
    say(f"{phases}  phase {key!r} (value {value}), spacing "
        + " x ".join(f"{s:g}" for s in vol.spacing) + " µm")
    say("  volume fraction      " + "  ".join(f"{k} {v:.4f}" for k, v in fractions.items()))
    say(f"  specific surface ({surface_method}, µm⁻¹)  " + "  ".join(
        f"{k} {v:.4g}" for k, v in surf["specific_surface_area_per_um"].items()))
    say("  percolating fraction " + "  ".join(
        f"{k} {v:.4f}" for k, v in conn["percolating_fraction"].items()))
    for ax, r in taus.items():
        say(f"  tortuosity {ax}         {r.tortuosity:.4f}  "
            f"(D_eff/D {r.effective_diffusivity_ratio:.4g}, {r.iterations} CG iterations, "
            f"residual {r.relative_residual:.1e})")
