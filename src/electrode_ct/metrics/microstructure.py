"""All microstructure metrics of a phase volume in one call (used by ``ect metrics`` and
the pipeline): volume fractions, specific surface areas, interface voxels, percolation
and the tortuosity factor of a chosen phase."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from electrode_ct.errors import InputError
from electrode_ct.volume import Volume, resolve_phase

TAU_CONVENTION = (
    "tau = eps * D / D_eff; eps = volume fraction of the whole phase; D_eff/D = F*L/(A*dc) "
    "with A the full cross-section; fixed values on the two faces, no flux elsewhere"
)


def parse_axes(text: str | Sequence[str], *, name: str = "--tortuosity") -> list[str]:
    """Tortuosity directions from ``"x,y,z"``/``"none"`` or a sequence of axis names."""
    if isinstance(text, str):
        if text.strip().lower() in ("", "none", "no", "off"):
            return []
        axes = [t.strip().lower() for t in text.replace(" ", ",").split(",") if t.strip()]
    else:
        axes = [str(t).lower() for t in text]
    bad = [a for a in axes if a not in ("x", "y", "z")]
    if bad or len(set(axes)) != len(axes):
        raise InputError(f"{name}: expected axes among x,y,z (or 'none'), got {text!r}")
    return axes


def default_phase(class_map: dict[str, int] | None, source: str) -> str:
    """The phase whose transport is measured by default: ``pore`` when the map names it."""
    if class_map and "pore" in class_map:
        return "pore"
    raise InputError(
        f"{source}: no class map naming a 'pore' phase; choose the phase with --phase "
        "NAME_OR_VALUE"
    )


def microstructure_metrics(
    volume: Volume,
    *,
    phase: str | int | None = None,
    tortuosity: str | Sequence[str] = ("x", "y", "z"),
    surface_method: str = "marching_cubes",
    tol: float | None = None,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Volume fractions, surface areas, percolation and tortuosity of a phase volume.

    Parameters
    ----------
    volume : Volume
        Phase labels with spacing (µm) and, ideally, a class map.
    phase : str or int, optional
        Phase for tortuosity and percolation (class name or value); default ``pore``.
    tortuosity : str or sequence of str
        Directions among x, y, z (array axes 2, 1, 0); empty/"none" skips the solve.
    surface_method : {"face", "marching_cubes", "gradient"}
        Surface-area method (see :mod:`electrode_ct.metrics.surface`).
    tol : float, optional
        Relative residual at which the tortuosity solve stops (default 1e-6).
    report : callable, optional
        Receives progress lines.

    Returns
    -------
    dict
        ``phase``, ``phase_value``, ``volume_fraction``, ``specific_surface_area_per_um``,
        ``specific_interfacial_area_per_um``, ``surface_area_um2``, ``interfacial_area_um2``,
        ``surface_method``, ``interface_voxel_percent``, ``tortuosity`` (x/y/z → τ, inf when
        the phase does not percolate), ``effective_diffusivity_ratio``,
        ``percolating_fraction``, ``isolated_fraction``, ``n_clusters``,
        ``n_isolated_clusters``, ``tortuosity_convention``, ``tortuosity_solver``,
        ``solver_tolerance``, ``tortuosity_details``.
    """
    from electrode_ct.metrics._phase import phase_mask
    from electrode_ct.metrics.connectivity import connectivity
    from electrode_ct.metrics.fractions import phase_keys, volume_fractions
    from electrode_ct.metrics.quality import interface_percentage
    from electrode_ct.metrics.surface import METHODS, surface_areas
    from electrode_ct.metrics.tortuosity import DEFAULT_RTOL, SOLVER_NAME
    from electrode_ct.metrics.tortuosity import tortuosity as solve_tortuosity

    say = report or (lambda _msg: None)
    if surface_method not in METHODS:
        raise InputError(
            f"--surface-method: expected one of {', '.join(METHODS)}, got {surface_method!r}"
        )
    axes = parse_axes(tortuosity)
    rtol = DEFAULT_RTOL if tol is None else float(tol)
    if not 0 < rtol < 1:
        raise InputError(f"--tol: expected a relative tolerance in (0, 1), got {tol!r}")
    labels = volume.numpy()
    cmap = volume.class_map
    if axes and volume.is_2d:
        raise InputError(
            f"{volume.source}: a 2-D image; tortuosity needs a 3-D volume (use --tortuosity none)"
        )
    chosen = phase if phase is not None else default_phase(cmap, volume.source)
    value = resolve_phase(chosen, cmap, where="--phase")
    mask = phase_mask(labels, value, class_map=cmap, name=volume.source)
    key = phase_keys([value], cmap)[0]
    fractions = volume_fractions(labels, class_map=cmap)
    say(f"surface areas ({surface_method})")
    surf = surface_areas(labels, method=surface_method, spacing=volume.spacing, class_map=cmap)
    conn = connectivity(mask)
    taus: dict[str, Any] = {}
    for ax in axes:
        say(f"tortuosity along {ax}")
        taus[ax] = solve_tortuosity(mask, axis=ax, spacing=volume.spacing, rtol=rtol)
    return {
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
