"""All microstructure metrics of a phase volume in one call (used by ``ect metrics`` and
the pipeline): volume fractions, specific surface areas, interface voxels, percolation
and the tortuosity factor of a chosen phase."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from electrode_ct.errors import InputError
from electrode_ct.metrics.spread import subvolume_grid
from electrode_ct.volume import Volume, resolve_phase

METRICS_BYTES_PER_VOXEL = 20.0
"""Peak working memory of a metrics block task per voxel of its read region (uint8 labels;
measured 17 for marching cubes, 16 for interface voxels, 10 for components)."""

TORTUOSITY_BYTES_PER_VOXEL = 190.0
"""Peak memory of the in-memory tortuosity solve per voxel of the phase (AMG-preconditioned
CG, measured at 512³, docs/metrics.md)."""

LEAN_TORTUOSITY_BYTES_PER_VOXEL = 42.0
"""Peak memory of the lean (float32, geometric multigrid) solve per phase voxel, used from
:data:`~electrode_ct.metrics.tortuosity.LEAN_ABOVE` voxels (measured 36.0 at 512³, 36.7 at
256³ and 39.2 at 192³ with the matrix-free finest level, set-up included, docs/scale.md;
65 with a CSR finest level)."""

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
    subvolume_um: float | None = None,
    subvolumes: Sequence[int] | str = (),
    client: Any = None,
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
    subvolume_um : float, optional
        Edge of the sub-volumes (µm) whose spread gives the ``_std`` / ``_ci95``
        companions (:mod:`electrode_ct.metrics.spread`; default half the shortest extent).
    subvolumes : sequence of int or str, optional
        Cube edges in voxels for the representative-volume curve of τ
        (:mod:`electrode_ct.metrics.tortuosity_rve`); empty: none.
    client : distributed.Client, optional
        Runs the sub-volume solves as parallel tasks; None solves them here.

    Returns
    -------
    dict
        ``phase``, ``phase_value``, ``volume_fraction``, ``specific_surface_area_per_um``,
        ``specific_interfacial_area_per_um``, ``surface_area_um2``, ``interfacial_area_um2``,
        ``surface_method``, ``interface_voxel_percent``, ``tortuosity`` (x/y/z → τ, inf when
        the phase does not percolate), ``effective_diffusivity_ratio``,
        ``percolating_fraction``, ``isolated_fraction``, ``n_clusters``,
        ``n_isolated_clusters``, ``tortuosity_convention``, ``tortuosity_solver``,
        ``solver_tolerance``, ``tortuosity_details``; the companions ``<key>_std`` and
        ``<key>_ci95`` of the fractions, specific surfaces, interface % and tortuosity
        (:func:`electrode_ct.metrics.spread.metrics_spread`), ``tortuosity_subvolumes``
        and ``subvolumes`` (the grid and the interval's method); ``tortuosity_rve`` when
        ``subvolumes`` is given.
    """
    from electrode_ct.metrics._phase import phase_mask
    from electrode_ct.metrics.connectivity import connectivity
    from electrode_ct.metrics.fractions import volume_fractions
    from electrode_ct.metrics.quality import interface_percentage
    from electrode_ct.metrics.surface import surface_areas

    axes, rtol, value, key = _checked(volume, phase, tortuosity, surface_method, tol)
    grid = subvolume_grid(volume.shape, volume.spacing, subvolume_um)
    sizes = _rve_sizes(subvolumes, axes, volume.shape)
    labels = volume.numpy()
    cmap = volume.class_map
    mask = phase_mask(labels, value, class_map=cmap, name=volume.source)
    fractions = volume_fractions(labels, class_map=cmap)
    (report or (lambda _msg: None))(f"surface areas ({surface_method})")
    surf = surface_areas(labels, method=surface_method, spacing=volume.spacing, class_map=cmap)
    parts = {"fractions": fractions, "surfaces": surf,
             "interfaces": interface_percentage(labels, class_map=cmap),
             "connectivity": connectivity(mask)}
    taus = _tortuosities(mask, axes, volume.spacing, rtol, report)
    out = _result(key, value, surface_method, parts, taus, rtol)
    if sizes:
        out["tortuosity_rve"] = _rve(mask, None, sizes, axes, volume, rtol, client, report)
    return _with_spread(out, labels, mask, grid, volume, axes, rtol, report)


def _with_spread(result: dict[str, Any], src: Any, mask: Any, grid: tuple[float, list[Any]],
                 volume: Volume, axes: list[str], rtol: float,
                 report: Callable[[str], None] | None, client: Any = None) -> dict[str, Any]:
    """The metrics with their sub-volume companions (same on both paths)."""
    from electrode_ct.metrics import spread

    (report or (lambda _msg: None))(f"spread over {len(grid[1])} sub-volumes of {grid[0]:g} µm")
    extra = spread.metrics_spread(result, src, grid[1], spacing=volume.spacing,
                                  class_map=volume.class_map,
                                  surface_method=result["surface_method"], client=client)
    if axes:
        extra.update(spread.tortuosity_spread(mask, grid[1], axes, spacing=volume.spacing,
                                              rtol=rtol))
    return {**result, **extra, "subvolumes": spread.spread_info(*grid)}


def _rve_sizes(subvolumes: Sequence[int] | str, axes: list[str],
               shape: Sequence[int]) -> list[int]:
    """Checked sub-volume edges (before any work is done)."""
    from electrode_ct.metrics.tortuosity_rve import check_sizes, parse_sizes

    if isinstance(subvolumes, str) and subvolumes.strip().lower() in ("", "none"):
        return []
    if not isinstance(subvolumes, str) and not list(subvolumes):
        return []
    sizes = parse_sizes(subvolumes)
    if not axes:
        raise InputError("--subvolumes: needs tortuosity directions (--tortuosity x,y,z)")
    check_sizes(sizes, shape)
    return sizes


def _rve(src: Any, value: int | None, sizes: list[int], axes: list[str], volume: Volume,
         rtol: float, client: Any, report: Callable[[str], None] | None) -> dict[str, Any]:
    from electrode_ct.metrics.tortuosity_rve import tortuosity_rve

    if report is not None:
        report("tortuosity of sub-volumes " + ", ".join(map(str, sizes)) + " voxels")
    return tortuosity_rve(src, sizes, value=value, axes=axes, spacing=volume.spacing,
                          rtol=rtol, client=client)


def _checked(volume: Volume, phase: str | int | None, tortuosity: str | Sequence[str],
             surface_method: str, tol: float | None) -> tuple[list[str], float, int, str]:
    """Checked options: tortuosity axes, solver tolerance, phase value and key."""
    from electrode_ct.metrics.fractions import phase_keys
    from electrode_ct.metrics.surface import METHODS
    from electrode_ct.metrics.tortuosity import DEFAULT_RTOL

    if surface_method not in METHODS:
        raise InputError(
            f"--surface-method: expected one of {', '.join(METHODS)}, got {surface_method!r}"
        )
    axes = parse_axes(tortuosity)
    rtol = DEFAULT_RTOL if tol is None else float(tol)
    if not 0 < rtol < 1:
        raise InputError(f"--tol: expected a relative tolerance in (0, 1), got {tol!r}")
    if axes and volume.is_2d:
        raise InputError(
            f"{volume.source}: a 2-D image; tortuosity needs a 3-D volume (use --tortuosity none)"
        )
    chosen = phase if phase is not None else default_phase(volume.class_map, volume.source)
    value = resolve_phase(chosen, volume.class_map, where="--phase")
    return axes, rtol, value, phase_keys([value], volume.class_map)[0]


def _tortuosities(mask: Any, axes: list[str], spacing: Any, rtol: float,
                  report: Callable[[str], None] | None) -> dict[str, Any]:
    from electrode_ct.metrics.tortuosity import tortuosity as solve_tortuosity

    taus: dict[str, Any] = {}
    for ax in axes:
        if report is not None:
            report(f"tortuosity along {ax}")
        taus[ax] = solve_tortuosity(mask, axis=ax, spacing=spacing, rtol=rtol)
    return taus


def _result(key: str, value: int, surface_method: str, parts: dict[str, Any],
            taus: dict[str, Any], rtol: float) -> dict[str, Any]:
    """The result dict (keys documented in :func:`microstructure_metrics`)."""
    from electrode_ct.metrics.tortuosity import SOLVER_NAME

    surf, conn = parts["surfaces"], parts["connectivity"]
    return {
        "phase": key,
        "phase_value": value,
        "volume_fraction": parts["fractions"],
        "specific_surface_area_per_um": surf["specific_surface_area_per_um"],
        "specific_interfacial_area_per_um": surf["specific_interfacial_area_per_um"],
        "surface_area_um2": surf["area_um2"],
        "interfacial_area_um2": surf["interfacial_area_um2"],
        "surface_method": surface_method,
        "interface_voxel_percent": parts["interfaces"],
        "tortuosity": {ax: r.tortuosity for ax, r in taus.items()},
        "effective_diffusivity_ratio": {ax: r.effective_diffusivity_ratio
                                        for ax, r in taus.items()},
        "percolating_fraction": conn["percolating_fraction"],
        "isolated_fraction": conn["isolated_fraction"],
        "n_clusters": conn["n_clusters"],
        "n_isolated_clusters": conn["n_isolated"],
        "tortuosity_convention": TAU_CONVENTION,
        "tortuosity_solver": ", ".join(sorted({r.solver for r in taus.values()}))
        or SOLVER_NAME,
        "solver_tolerance": rtol,
        "tortuosity_details": {ax: r.to_dict() for ax, r in taus.items()},
    }


def microstructure_metrics_blockwise(
    volume: Volume,
    src: Any,
    *,
    block_shape: Sequence[int],
    client: Any = None,
    progress: Callable[[str], Any] | None = None,
    phase: str | int | None = None,
    tortuosity: str | Sequence[str] = ("x", "y", "z"),
    surface_method: str = "marching_cubes",
    tol: float | None = None,
    tortuosity_memory: int | None = None,
    report: Callable[[str], None] | None = None,
    subvolume_um: float | None = None,
    subvolumes: Sequence[int] | str = (),
) -> dict[str, Any]:
    """:func:`microstructure_metrics` on the block engine: the same keys and values
    (within 1e-9 relative), the volume read block by block.

    Volume fractions, surface areas, interface voxels and percolation are exact reductions
    over blocks (:mod:`electrode_ct.metrics.blockwise`). The tortuosity solve stays in
    memory, on the phase mask, when it fits ``tortuosity_memory`` (at
    :data:`TORTUOSITY_BYTES_PER_VOXEL` per phase voxel); else the call is refused after
    the first (counting) pass, before the other metrics run.

    Parameters
    ----------
    volume : Volume
        The phase volume (its spacing, class map, shape and source name; its voxels are
        read from ``src`` only, unless tortuosity is solved).
    src : ZarrRef or numpy.ndarray
        The same voxels as a block source.
    block_shape : sequence of int
        Block shape in voxels.
    client : distributed.Client, optional
        One task per block on the cluster; None runs the blocks serially.
    progress : callable, optional
        ``progress(step_name)`` gives the wrapper of that step's iteration over blocks.
    phase, tortuosity, surface_method, tol, report, subvolume_um
        As for :func:`microstructure_metrics` (the sub-volume companions computed one
        task per sub-volume on ``client``, with the same values).
    subvolumes
        Cube edges of the representative-volume curve of τ; the sub-volume solves run on
        ``client``, each worker reading its cube from ``src``.
    tortuosity_memory : int, optional
        Bytes the tortuosity solve may use (default: 80 % of this machine's memory).

    Raises
    ------
    InputError
        Tortuosity asked for on a phase too large to solve in memory (naming
        ``steps.metrics.tortuosity: []`` / ``--tortuosity none``), or a bad option.
    """
    from electrode_ct.metrics import blockwise as bw
    from electrode_ct.metrics.components_blockwise import percolation_blockwise

    axes, rtol, value, key = _checked(volume, phase, tortuosity, surface_method, tol)
    grid = subvolume_grid(volume.shape, volume.spacing, subvolume_um)
    sizes = _rve_sizes(subvolumes, axes, volume.shape)
    cmap = volume.class_map
    say = report or (lambda _msg: None)
    opts = {"block_shape": block_shape, "client": client}

    def bar(name: str) -> Any:
        return None if progress is None else progress(name)

    present, counts = bw.value_counts_blockwise(src, progress=bar("fractions"), **opts)
    if value not in present:
        raise InputError(f"--phase: phase {key!r} (value {value}) is absent from "
                         f"{volume.source}; values present: {present.tolist()[:20]}")
    if axes:
        _check_tortuosity_memory(volume.source, int(counts[present == value].sum()),
                                 tortuosity_memory)
    say(f"surface areas ({surface_method}) and interface voxels")
    surfaces, interfaces = bw.surfaces_and_interfaces_blockwise(
        src, present, method=surface_method, spacing=volume.spacing, class_map=cmap,
        progress=bar("surfaces"), **opts)
    parts = {"fractions": bw.fractions_of_counts(present, counts, class_map=cmap),
             "surfaces": surfaces, "interfaces": interfaces,
             "connectivity": percolation_blockwise(src, value, progress=bar("percolation"),
                                                   **opts)}
    taus, mask = {}, None
    if axes:
        labels = np.asarray(src.open("r")[...] if hasattr(src, "open") else src)
        mask = labels == value
        taus = _tortuosities(mask, axes, volume.spacing, rtol, report)
    result = _result(key, value, surface_method, parts, taus, rtol)
    if sizes:
        result["tortuosity_rve"] = _rve(src, value, sizes, axes, volume, rtol, client, report)
    return _with_spread(result, src, mask, grid, volume, axes, rtol, report, client)


def _check_tortuosity_memory(source: str, n_phase: int, budget: int | None) -> None:
    """Refuse a tortuosity solve whose phase does not fit the memory budget."""
    if budget is None:
        from electrode_ct.compute.config import machine_memory

        budget = int(0.8 * machine_memory())
    from electrode_ct.metrics.tortuosity import LEAN_ABOVE

    per_voxel = (TORTUOSITY_BYTES_PER_VOXEL if n_phase < LEAN_ABOVE
                 else LEAN_TORTUOSITY_BYTES_PER_VOXEL)
    need = n_phase * per_voxel
    if need > budget:
        raise InputError(
            f"{source}: tortuosity is solved in memory only and would need {need / 1e9:.1f} GB "
            f"({n_phase} phase voxels), above {budget / 1e9:.1f} GB; skip it with "
            "steps.metrics.tortuosity: [] (ect metrics --tortuosity none) or crop")
