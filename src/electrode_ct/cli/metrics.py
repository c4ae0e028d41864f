"""``ect metrics``: volume fractions, surface areas, connectivity and tortuosity of phases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from electrode_ct.cli._common import (
    JSON_HELP,
    VOXEL_SIZE_HELP,
    check_input,
    emit_json,
    info,
    progress,
    read_input,
    say,
    voxel_size,
)
from electrode_ct.cli._compute import BLOCKS, MEMORY, N_WORKERS, SCHEDULER, THREADS
from electrode_ct.cli.app import app
from electrode_ct.volume import Volume


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
    subvolume_um: float = typer.Option(
        None, "--subvolume-um", help="Edge (µm) of the sub-volumes whose spread gives the "
        "_std/_ci95 companions (default: half the shortest extent, at most 256 voxels)."),
    subvolumes: str = typer.Option(
        None, "--subvolumes",
        help="Representative-volume curve: cube edges in voxels, e.g. 64,128,256; τ mean ± "
        "std over the cubes of each size (JSON key tortuosity_rve).",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    scheduler: str = SCHEDULER, n_workers: int = N_WORKERS, threads_per_worker: int = THREADS,
    memory_limit: str = MEMORY, block_shape: str = BLOCKS,
) -> None:
    """Volume fractions, specific surface areas, percolation and tortuosity factor.

    Large volumes (or any compute option) run on the block engine: the same JSON, the
    tortuosity solve staying in memory (refused above the in-memory size).
    """
    from electrode_ct.cli._compute import compute_config, session
    from electrode_ct.metrics.microstructure import microstructure_metrics
    from electrode_ct.uncertainty import interval_text

    cfg, explicit = compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                                   block_shape)
    spacing_opt = voxel_size(voxel)
    vol = read_input(phases, role="labels", voxel=voxel, lazy=True)
    info(f"{phases}: shape {vol.shape}, spacing {vol.spacing} µm")
    opts = {"phase": phase, "tortuosity": tortuosity_axes, "surface_method": surface_method,
            "tol": tol, "report": info, "subvolume_um": subvolume_um,
            "subvolumes": subvolumes or ()}
    with session(cfg, vol.nbytes, explicit=explicit) as client:
        if client is None:
            import dask

            with dask.config.set(scheduler="synchronous"):  # never a Dask client's
                vol = vol.compute()
            check_input(vol, phases, "labels")
            metrics = microstructure_metrics(vol, **opts)
        else:
            metrics = _on_engine(vol, cfg, client, Path(phases), opts)
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
        f"{k} {interval_text(v, *_spread(result, 'volume_fraction', k), '.4f')}"
        for k, v in result["volume_fraction"].items()))
    say(f"  specific surface ({surface_method}, µm⁻¹)  " + "  ".join(
        f"{k} {interval_text(v, *_spread(result, 'specific_surface_area_per_um', k))}"
        for k, v in result["specific_surface_area_per_um"].items()))
    say("  percolating fraction " + "  ".join(
        f"{k} {v:.4f}" for k, v in result["percolating_fraction"].items()))
    for ax, r in result["tortuosity_details"].items():
        n = result["tortuosity_subvolumes"][ax]
        tau = interval_text(r["tortuosity"], *_spread(result, "tortuosity", ax), ".4f",
                            why=f"no interval: {n['n_percolating']} of {n['n']} sub-volumes "
                            "percolate")
        say(f"  tortuosity {ax}         {tau}  "
            f"(D_eff/D {r['effective_diffusivity_ratio']:.4g}, {r['iterations']} CG "
            f"iterations, residual {r['relative_residual']:.1e})")
    sub = result["subvolumes"]
    say(f"  ± std [95 % CI] over {sub['n']} sub-volumes of {sub['size_um']:g} µm "
        "(t-interval)")


def _spread(result: dict[str, Any], key: str, name: str) -> tuple[Any, Any]:
    """The ``_std`` and ``_ci95`` companions of one figure."""
    return (result.get(f"{key}_std") or {}).get(name), (result.get(f"{key}_ci95") or {}).get(name)
    for ax, rows in (result.get("tortuosity_rve") or {}).items():
        if ax in ("x", "y", "z"):
            say(f"  tortuosity {ax} by sub-volume  " + "  ".join(
                f"{row['size_voxels']}: {_mean_std(row)}" for row in rows))


def _mean_std(row: dict[str, Any]) -> str:
    if row["mean"] is None:
        return f"none of {row['n']} percolates"
    return f"{row['mean']:.3f} ± {row['std']:.3f} (n {row['n_percolating']}/{row['n']})"


def _on_engine(vol: Volume, cfg: Any, client: Any, path: Path,
               opts: dict[str, Any]) -> dict[str, Any]:
    """The metrics on the block engine, the labels copied to a temporary OME-Zarr."""
    import tempfile

    from electrode_ct.compute.engine import check_blocks, default_block_shape
    from electrode_ct.metrics.microstructure import (
        METRICS_BYTES_PER_VOXEL,
        microstructure_metrics_blockwise,
    )

    blocks = tuple(cfg.block_shape) if cfg.block_shape else default_block_shape(
        vol.shape, halo=(1, 1, 1), bytes_per_voxel=METRICS_BYTES_PER_VOXEL,
        memory_limit=cfg.worker_memory())
    check_blocks(vol.shape, blocks, (1, 1, 1), bytes_per_voxel=METRICS_BYTES_PER_VOXEL,
                 memory_limit=cfg.worker_memory())  # before anything is copied
    with tempfile.TemporaryDirectory(prefix=".ect-metrics-", dir=path.parent) as tmp:
        src = _zarr_copy(vol, Path(tmp) / "phases.ome.zarr", blocks)
        return microstructure_metrics_blockwise(
            vol, src, block_shape=blocks, client=client,
            progress=lambda name: (lambda it: progress(it, desc=name)), **opts)


def _zarr_copy(vol: Volume, path: Path, chunks: tuple[int, ...]) -> Any:
    """Copy a (lazy) label volume into an OME-Zarr, one chunk-deep z slab at a time."""
    import numpy as np

    from electrode_ct.io.zarr import create_ome_zarr

    ref = create_ome_zarr(path, vol, dtype=vol.dtype, chunks=chunks, class_map=vol.class_map)
    arr = ref.open("r+")
    for z in progress(range(0, vol.shape[0], chunks[0]), desc="copy"):
        part = vol.data[z:z + chunks[0]]
        arr[z:z + chunks[0]] = np.asarray(part.compute(scheduler="synchronous")
                                          if hasattr(part, "compute") else part)
    return ref
