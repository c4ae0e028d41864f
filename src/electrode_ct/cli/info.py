"""``ect info``, ``ect convert`` and ``ect demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from electrode_ct.cli import _compute as co
from electrode_ct.cli._argv import parse_ints
from electrode_ct.cli._common import (
    JSON_HELP,
    VOXEL_SIZE_HELP,
    emit_json,
    info,
    progress,
    say,
    voxel_size,
)
from electrode_ct.cli.app import app
from electrode_ct.errors import InputError

SHAPE_HELP = "Raw files: array shape Z Y X (or Y X) in voxels."
DTYPE_HELP = "Raw files: sample type, e.g. uint8, uint16, float32."
BYTE_ORDER_HELP = "Raw files: byte order, little (default) or big."
HEADER_BYTES_HELP = "Raw files: bytes to skip before the data."


def raw_options(
    shape: str | None, dtype: str | None, byte_order: str | None, header_bytes: int | None
) -> dict:
    """Reader options from the raw-layout CLI options (empty when none were given)."""
    opts: dict = {}
    if shape:
        opts["shape"] = tuple(parse_ints(shape, name="--shape", count=(2, 3)))
    if dtype:
        opts["dtype"] = dtype
    if byte_order:
        opts["byte_order"] = byte_order
    if header_bytes:
        opts["offset"] = int(header_bytes)
    return opts


@app.command("info")
def info_cmd(
    path: str = typer.Argument(..., help="Volume file, slice folder, glob or file.h5::/dataset."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    shape: str = typer.Option(None, "--shape", help=SHAPE_HELP),
    dtype: str = typer.Option(None, "--dtype", help=DTYPE_HELP),
    byte_order: str = typer.Option(None, "--byte-order", help=BYTE_ORDER_HELP),
    header_bytes: int = typer.Option(None, "--header-bytes", help=HEADER_BYTES_HELP),
) -> None:
    """Describe a volume: format, shape, dtype, spacing, value range, histogram, noise."""
    from electrode_ct.inspect import summary
    from electrode_ct.io import read

    raw = raw_options(shape, dtype, byte_order, header_bytes)
    vol = read(path, lazy=True, voxel_size=voxel_size(voxel), **raw)
    s = summary(vol)
    if as_json:
        emit_json(s)
        return
    say(f"{path}")
    say(f"  format     {s['format']}")
    say(f"  shape      {tuple(s['shape'])} (z, y, x)  dtype {s['dtype']}")
    assumed = " — ASSUMED: no voxel size in the file, pass --voxel-size" \
        if s["spacing_source"] == "assumed" else ""
    say("  spacing    " + " x ".join(f"{v:g}" for v in s["spacing_um"]) + " µm (z, y, x)"
        + assumed)
    say("  extent     " + " x ".join(f"{v:.4g}" for v in s["size_um"]) + " µm")
    say(f"  memory     {s['size_mb']:.2f} MB")
    if s.get("min") is not None:
        say(f"  range      {s['min']:g} .. {s['max']:g}  mean {s['mean']:.4g}  std {s['std']:.4g}")
        p = s["percentiles"]
        say(f"  percentile 0.5%={p['p0.5']:.4g} 50%={p['p50']:.4g} 99.5%={p['p99.5']:.4g}")
        say(f"  noise σ    {s['noise_sigma']:.4g} (flattest 5 % of 8³ blocks)")
        counts = s["histogram"]["counts"]
        peak = max(counts) or 1
        bars = "".join(" ▁▂▃▄▅▆▇█"[int(round(8 * c / peak))] for c in counts)
        say(f"  histogram  {bars}")
    if s.get("unique_values") is not None:
        say(f"  values     {s['unique_values']}")
    if s.get("class_map"):
        say(f"  classes    {s['class_map']}")


@app.command("convert")
def convert_cmd(
    src: str = typer.Argument(..., help="Input volume (any readable format)."),
    out: Path = typer.Argument(..., help="Output path; its extension chooses the format."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    chunks: str = typer.Option(None, "--chunks", help="Chunk shape Z Y X for Zarr/HDF5 outputs."),
    shape: str = typer.Option(None, "--shape", help=SHAPE_HELP),
    dtype: str = typer.Option(None, "--dtype", help=DTYPE_HELP),
    byte_order: str = typer.Option(None, "--byte-order", help=BYTE_ORDER_HELP),
    header_bytes: int = typer.Option(None, "--header-bytes", help=HEADER_BYTES_HELP),
    pyramid: int = typer.Option(
        None, "--pyramid", help="OME-Zarr output: extra resolution levels (2x block mean "
        "for grey, nearest for labels). Default: down to ~256 voxels a side above 256^3 "
        "voxels, else none."),
    scheduler: str = co.SCHEDULER, n_workers: int = co.N_WORKERS,
    threads_per_worker: int = co.THREADS, memory_limit: str = co.MEMORY,
    block_shape: str = co.BLOCKS,
) -> None:
    """Convert a volume between formats (TIFF, OME-Zarr, HDF5, npy, ...).

    The input is read lazily. An OME-Zarr output is streamed slab by slab (memory bounded
    by a slab within --memory-limit, not by the volume) with a viewing pyramid; HDF5 and
    TIFF outputs are written block by block.
    """
    from electrode_ct.io import read, write

    raw = raw_options(shape, dtype, byte_order, header_bytes)
    vol = read(src, lazy=True, voxel_size=voxel_size(voxel), **raw)
    cfg, explicit = co.compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                                      block_shape)
    chunk_shape = tuple(parse_ints(chunks, name="--chunks", count=(3,))) if chunks else None
    info(f"converting {src} -> {out}")
    if not str(out).lower().rstrip("/").endswith((".zarr", ".zr")):
        if pyramid:
            raise InputError(f"--pyramid: only OME-Zarr outputs hold a pyramid, not {out}")
        write(vol, out, **({"chunks": chunk_shape} if chunk_shape else {}))
        say(f"wrote {out}")
        return
    from electrode_ct.io.stream import stream_to_ome_zarr

    # streaming reads one input in this process; a cluster (when asked for) builds the pyramid
    with co.session(cfg, 0, explicit=explicit) as client:
        stream_to_ome_zarr(vol, out, chunks=chunk_shape or cfg.block_shape,
                           memory_limit=cfg.worker_memory(), pyramid=pyramid,
                           progress=lambda it: progress(it, desc="convert"), client=client)
    say(f"wrote {out}")


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("ect-demo"), "--out", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run the pipeline on the embedded real sample and write a report."""
    from electrode_ct.cli._argv import quiet
    from electrode_ct.demo import run_demo

    result = run_demo(out, quiet=quiet() or as_json)
    if as_json:
        emit_json(result)
    else:
        say(f"demo finished in {result['time_s']:.0f} s")
        say(f"report: {result['report']}")
