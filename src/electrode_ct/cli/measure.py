"""``ect measure``: per-particle morphology + grey-level table and radial-layer table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from electrode_ct.cli import _compute as co
from electrode_ct.cli._common import (
    JSON_HELP,
    VOXEL_SIZE_HELP,
    emit_json,
    say,
)
from electrode_ct.cli.app import app


@app.command("measure")
def measure_cmd(
    labels: str = typer.Argument(..., help="Particle label volume (uint32 ids, 0 = background)."),
    grey: str = typer.Option(None, "--grey", help="Grey volume of the same shape."),
    out: Path = typer.Option(..., "--out", help="Per-particle table (.parquet or .csv)."),
    radial: Path = typer.Option(None, "--radial", help="Long radial-layer table (.parquet)."),
    exclude_layers: int = typer.Option(
        5, "--exclude-layers", help="Outer layers left out of the roi_* columns."
    ),
    properties: str = typer.Option("all", "--properties", help="Morphology columns: basic|all."),
    normalise: str = typer.Option(
        "radial_max", "--normalise", help="Radial grey_norm: radial_max|surface."
    ),
    background: str = typer.Option(
        None, "--background", help="Background (pore/empty) mask volume for σ_bg of the SEM."
    ),
    background_sigma: float = typer.Option(
        None, "--background-sigma", help="σ_bg in grey levels (default: label-0 histogram peak)."
    ),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    csv: bool = typer.Option(False, "--csv", help="Also write CSV beside each Parquet table."),
    bootstrap: int = typer.Option(
        1000, "--bootstrap", help="Bootstrap resamples over particles for the size "
        "distribution's _std/_ci95 (>= 1)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    paint: tuple[str, str] | None = typer.Option(
        None, "--paint", metavar="COLUMN OUT", help="Also write COLUMN of the table "
        "painted into the particles as a float32 volume OUT (NaN outside particles)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    scheduler: str = co.SCHEDULER,
    n_workers: int = co.N_WORKERS,
    threads_per_worker: int = co.THREADS,
    memory_limit: str = co.MEMORY,
    block_shape: str = co.BLOCKS,
) -> None:
    """Measure every particle: morphology, grey statistics (GREAT2) and radial layers
    (block by block on Dask for large volumes or when a compute option is given; see
    docs/scale.md)."""
    from electrode_ct.cli._measure_engine import MeasureInputs, measure_engine, measure_memory
    from electrode_ct.errors import InputError
    from electrode_ct.io import write_table
    from electrode_ct.measure.psd import psd_summary
    from electrode_ct.measure.table import IN_MEMORY_FACTOR
    from electrode_ct.provenance import record
    from electrode_ct.uncertainty import check_bootstrap

    check_bootstrap(bootstrap)
    if radial is not None and grey is None:
        raise InputError("--radial needs --grey (the radial table holds grey levels)")
    cfg, explicit = co.compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                                      block_shape)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    inputs = MeasureInputs.read(labels, grey, background if background_sigma is None else None,
                                voxel=voxel)
    spacing = inputs.spacing
    opts = {"properties": properties, "exclude_layers": exclude_layers,
            "background_sigma": background_sigma, "normalise": normalise}
    if not inputs.labels.is_2d and co.use_engine(cfg, inputs.nbytes, explicit=explicit,
                                                 factor=IN_MEMORY_FACTOR):
        table, radial_df = measure_engine(inputs, out, cfg, opts, timings)
    else:
        table, radial_df = measure_memory(inputs, opts, timings)
    sigma = table.attrs.get("background_sigma")
    params = {"exclude_layers": exclude_layers, "properties": properties,
              "normalise": normalise, "spacing_um": list(spacing),
              "background_sigma": sigma, "layer_um": min(spacing[1:] if inputs.labels.is_2d
                                                         else spacing)}
    if paint is not None and (paint[0] not in table.columns or paint[0] == "label"
                                 or table[paint[0]].dtype.kind not in "biuf"):
        raise InputError(f"--paint: column {paint[0]!r} is not a numeric column of the "
                         "particle table; available: " + ", ".join(
                             c for c in table.columns if table[c].dtype.kind in "biuf"
                             and c != "label"))
    timings["total"] = time.perf_counter() - t0
    meta = record(command="measure", inputs={"labels": labels, "grey": grey,
                                             "background": background},
                  parameters=params, timings_s=timings)
    write_table(table, out, metadata=meta, csv=csv)
    if radial is not None and radial_df is not None:
        write_table(radial_df, radial, metadata=meta, csv=csv)
    if paint is not None:
        _paint(inputs.labels, table, paint[0], paint[1])
    n_border = int(table["touches_border"].sum()) if "touches_border" in table else 0
    result = {
        "n_particles": len(table), "n_border": n_border, "table": str(out),
        "radial": str(radial) if radial is not None else None,
        "radial_rows": len(radial_df) if radial_df is not None else 0,
        "background_sigma": sigma, "spacing_um": list(spacing), "timings_s": timings,
        "size_distribution": psd_summary(table, bootstrap, seed),
        "painted": {"column": paint[0], "out": paint[1]} if paint is not None else None,
    }
    if as_json:
        emit_json(result)
    else:
        say(f"{len(table)} particles ({n_border} touching the border) -> {out}")
        if radial is not None:
            say(f"radial layers: {result['radial_rows']} rows -> {radial}")
        _say_psd(result["size_distribution"])


def _paint(labels: Any, table: Any, column: str, out: str) -> None:
    """``column`` painted into the particles, block by block (the labels stay lazy)."""
    import dask.array as da
    import numpy as np

    from electrode_ct.io import write
    from electrode_ct.report.great2_plots import paint_property

    sub = table[["label", column]]
    img = da.asarray(labels.data).map_blocks(lambda b: paint_property(b, sub, column),
                                             dtype=np.float32)
    write(labels.with_data(img, painted_column=column).with_class_map(None), out)


def _say_psd(dist: dict[str, Any] | None) -> None:
    """One line: volume-weighted d10/d50/d90 with their 95 % bootstrap intervals."""
    if not dist or dist["n_particles"] < 2:
        return
    say("volume-weighted " + "  ".join(
        f"{k[:-3]} {dist[k]:.3g} µm [{dist[k + '_ci95'][0]:.3g}, {dist[k + '_ci95'][1]:.3g}]"
        for k in ("d10_um", "d50_um", "d90_um")) + " (95 % bootstrap)")
