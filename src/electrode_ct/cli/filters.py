"""CLI commands ``ect filter``, ``ect crop`` and ``ect resample`` (no science in here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from electrode_ct.cli import _compute as co
from electrode_ct.cli._argv import parse_floats
from electrode_ct.cli._common import (
    VOXEL_SIZE_HELP,
    check_input,
    info,
    progress,
    read_input,
    say,
    voxel_size,
)
from electrode_ct.cli.app import app
from electrode_ct.errors import InputError

_UM_HELP = "Lengths (--sigma, --size, --radius) are in µm instead of voxels."


def _lengths(text: str, name: str) -> float | tuple[float, ...]:
    vals = parse_floats(text, name=name, count=(1, 3))
    return vals[0] if len(vals) == 1 else tuple(vals)


@app.command("filter")
def filter_cmd(
    src: str = typer.Argument(..., help="Input grey volume or image."),
    out: Path = typer.Argument(..., help="Output volume; its extension chooses the format."),
    method: str = typer.Option(
        ..., "--method", help="gaussian | median | nlm | unsharp | rings | normalise"
    ),
    sigma: str = typer.Option("1", "--sigma", help="gaussian: σ (1 value or Z Y X)."),
    size: str = typer.Option("3", "--size", help="median: box edge (1 value or Z Y X)."),
    radius: str = typer.Option("1", "--radius", help="unsharp: blur σ (1 value or Z Y X)."),
    amount: float = typer.Option(1.0, "--amount", help="unsharp: strength."),
    in_um: bool = typer.Option(False, "--um", help=_UM_HELP),
    h: float = typer.Option(None, "--h", help="nlm: strength in grey levels (default 0.8 σ)."),
    patch_size: int = typer.Option(5, "--patch-size", help="nlm: patch edge (voxels)."),
    patch_distance: int = typer.Option(6, "--patch-distance", help="nlm: search radius."),
    slab: int = typer.Option(64, "--slab", help="nlm: slices per slab."),
    workers: int = typer.Option(1, "--workers", help="nlm: slabs processed in parallel."),
    width: int = typer.Option(15, "--width", help="rings: radial median window (pixels)."),
    center: str = typer.Option(None, "--center", help="rings: rotation axis 'Y,X' (pixels)."),
    scale: str = typer.Option(
        "percentile", "--scale", help="normalise: percentile | minmax | zscore."
    ),
    low: float = typer.Option(0.5, "--low", help="normalise: lower percentile."),
    high: float = typer.Option(99.5, "--high", help="normalise: upper percentile."),
    dtype: str = typer.Option("float32", "--dtype", help="normalise: float32 | uint8 | uint16."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    scheduler: str = co.SCHEDULER, n_workers: int = co.N_WORKERS,
    threads_per_worker: int = co.THREADS, memory_limit: str = co.MEMORY,
    block_shape: str = co.BLOCKS,
) -> None:
    """Denoise, sharpen, remove rings or normalise a grey volume (block by block on Dask
    for large volumes or when a compute option is given; see docs/scale.md)."""
    from electrode_ct import filters
    from electrode_ct.io import read, write

    m = method.lower()
    if m not in filters.METHODS:
        raise InputError(f"--method: expected one of {', '.join(filters.METHODS)}, got {method!r}")
    cfg, explicit = co.compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                                      block_shape)
    vol = read(src, lazy=True, voxel_size=voxel_size(voxel))
    info(f"filter {m}: {src} {vol.shape}")
    opts = _filter_options(m, sigma=sigma, size=size, radius=radius, amount=amount, h=h,
                           patch_size=patch_size, patch_distance=patch_distance, slab=slab,
                           workers=workers, width=width, center=center, scale=scale, low=low,
                           high=high, dtype=dtype)
    if not vol.is_2d and co.use_engine(cfg, vol.nbytes, explicit=explicit):
        _filter_engine(vol, src, out, cfg, m, opts, in_um)
        say(f"wrote {out}")
        return
    img = filters.check_image(vol.numpy(), name=src)
    if vol.is_2d:
        img = img[0]
    res = filters.apply_filter(img, m, spacing=vol.spacing, in_um=in_um, **opts)
    write(vol.with_data(res, class_map=None), out)
    say(f"wrote {out}")


def _filter_options(m: str, **o: Any) -> dict[str, Any]:
    """The options of filter ``m`` from the command line's values."""
    sigma, size, radius, center = o["sigma"], o["size"], o["radius"], o["center"]
    if m == "gaussian":
        opts: dict = {"sigma": _lengths(sigma, "--sigma")}
    elif m == "median":
        opts = {"size": _lengths(size, "--size")}
    elif m == "unsharp":
        opts = {"radius": _lengths(radius, "--radius"), "amount": o["amount"]}
    elif m == "nlm":
        opts = {k: o[k] for k in ("h", "patch_size", "patch_distance", "slab", "workers")}
    elif m == "rings":
        c = parse_floats(center, name="--center", count=(2,)) if center else None
        opts = {"center": tuple(c) if c else None, "width": o["width"]}
    else:
        opts = {k: o[k] for k in ("scale", "low", "high", "dtype")}
    return opts


def _filter_engine(vol: Any, src: str, out: Path, cfg: Any, m: str, opts: dict[str, Any],
                   in_um: bool) -> None:
    """``ect filter`` on the block engine (see :mod:`electrode_ct.cli._engine`); blocks
    are checked before a cluster starts."""
    from electrode_ct.cli._engine import EngineJob, plan_blocks
    from electrode_ct.filters import blockwise as fb
    from electrode_ct.io.stream import choose_chunks

    halo = fb.filter_halo(m, vol.shape, spacing=vol.spacing, in_um=in_um, **opts)
    slab = m in ("rings", "nlm")
    blocks = plan_blocks(cfg, vol.shape, halo, fb.BYTES_PER_VOXEL[m], slab=slab)
    chunks = (blocks[0], *choose_chunks(vol.shape, 4)[1:]) if slab else blocks
    with co.session(cfg, vol.nbytes, explicit=True) as client:
        job = EngineJob.start(vol, src, out, cfg, client, {
            "command": "filter", "method": m, "in_um": in_um, "blocks": blocks,
            "spacing": vol.spacing, **opts})
        source = job.source()
        dst = job.target(vol, fb.output_dtype(m, vol.dtype, **opts), chunks)
        fb.filter_blockwise(source, dst, m, spacing=vol.spacing, in_um=in_um,
                            block_shape=blocks, client=client,
                            progress=lambda it: progress(it, desc=f"filter {m}"),
                            memory_limit=job.memory_limit, **opts)
        job.finish(dst)


@app.command("crop")
def crop_cmd(
    src: str = typer.Argument(..., help="Input volume."),
    out: Path = typer.Argument(..., help="Output volume."),
    z: str = typer.Option(None, "--z", help="Slices A:B (half-open, voxels)."),
    y: str = typer.Option(None, "--y", help="Rows A:B."),
    x: str = typer.Option(None, "--x", help="Columns A:B."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    scheduler: str = co.SCHEDULER, n_workers: int = co.N_WORKERS,
    threads_per_worker: int = co.THREADS, memory_limit: str = co.MEMORY,
    block_shape: str = co.BLOCKS,
) -> None:
    """Crop a region of interest (the origin moves by the cropped offset); only the
    region is read, block by block on the engine for large volumes."""
    from electrode_ct.filters import crop_window, parse_range
    from electrode_ct.io import read, write
    from electrode_ct.volume import Volume

    cfg, explicit = co.compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                                      block_shape)
    vol = read(src, lazy=True, voxel_size=voxel_size(voxel))
    arr = vol.data[0] if vol.is_2d else vol.data
    ranges = {k: parse_range(v, name=f"--{k}") for k, v in (("z", z), ("y", y), ("x", x))}
    window, off = crop_window(tuple(arr.shape), **ranges)
    origin = tuple(o + i * s for o, i, s in zip(vol.origin, off, vol.spacing, strict=True))
    res = Volume(arr[window], spacing=vol.spacing, origin=origin, metadata=dict(vol.metadata))
    if not vol.is_2d and co.use_engine(cfg, res.nbytes, explicit=explicit):
        _crop_engine(vol, res, src, out, cfg, off)
    else:
        write(res.compute(), out)
    say(f"wrote {out} {res.shape}")


def _crop_engine(vol: Any, res: Any, src: str, out: Path, cfg: Any,
                 offset: tuple[int, int, int]) -> None:
    """``ect crop`` on the engine: blocks copy their window from a Zarr input; other
    inputs have only the window streamed."""
    from electrode_ct.cli._engine import EngineJob, plan_blocks
    from electrode_ct.compute.engine import ZarrRef
    from electrode_ct.filters.blockwise import BYTES_PER_VOXEL, crop_blockwise
    from electrode_ct.io.stream import own_store, stream_to_ome_zarr

    blocks = plan_blocks(cfg, res.shape, (0, 0, 0), BYTES_PER_VOXEL["crop"])
    with co.session(cfg, res.nbytes, explicit=True) as client:
        job = EngineJob.start(vol, src, out, cfg, client, {
            "command": "crop", "offset": offset, "shape": res.shape, "blocks": blocks})
        bar = lambda it: progress(it, desc="crop")  # noqa: E731
        own = own_store(vol)
        if own is None:  # only the window is streamed: the copy is the crop
            path = job.work / "output.ome.zarr"
            stream_to_ome_zarr(res, path, chunks=blocks, memory_limit=job.memory_limit,
                               pyramid=0, progress=bar)
            job.finish(ZarrRef(str(path), "0"))
            return
        dst = job.target(res, res.dtype, blocks, class_map=res.class_map)
        crop_blockwise(own, dst, offset=offset, block_shape=blocks, client=client,
                       progress=bar, memory_limit=job.memory_limit)
        job.finish(dst)


@app.command("resample")
def resample_cmd(
    src: str = typer.Argument(..., help="Input volume."),
    out: Path = typer.Argument(..., help="Output volume."),
    target: str = typer.Option(
        ..., "--voxel-size", help="Target voxel size in µm: one value or three (Z Y X)."
    ),
    order: str = typer.Option("linear", "--order", help="Grey interpolation: linear | cubic."),
    labels: bool = typer.Option(
        False, "--labels", help="Label volume: nearest neighbour (default when it has a class map)."
    ),
    spacing_in: str = typer.Option(
        None, "--input-voxel-size", help="Voxel size of the input in µm (default: from the file)."
    ),
    scheduler: str = co.SCHEDULER, n_workers: int = co.N_WORKERS,
    threads_per_worker: int = co.THREADS, memory_limit: str = co.MEMORY,
    block_shape: str = co.BLOCKS,
) -> None:
    """Resample to another voxel size (anisotropic -> isotropic, up or down); block by
    block on the engine for large volumes (linear or labels)."""
    from electrode_ct.filters import resample
    from electrode_ct.io import write
    from electrode_ct.volume import Volume

    orders = {"linear": 1, "cubic": 3}
    if order not in orders:
        raise InputError(f"--order: expected linear or cubic, got {order!r}")
    cfg, explicit = co.compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                                      block_shape)
    vol = read_input(src, role="any", voxel=spacing_in, lazy=True)
    is_labels = labels or vol.class_map is not None
    if not vol.is_2d and co.use_engine(cfg, vol.nbytes, explicit=explicit):
        shape, new_sp = _resample_engine(vol, src, out, cfg, voxel_size(target),
                                         orders[order], is_labels)
    else:
        if not is_labels:  # grey is interpolated: finite values only
            check_input(vol, src, "grey")
        arr = vol.numpy()[0] if vol.is_2d else vol.numpy()
        res, new_sp = resample(arr, spacing=vol.spacing, voxel_size=voxel_size(target),
                               order=orders[order], labels=is_labels)
        shape = res.shape
        write(Volume(res, spacing=new_sp, origin=vol.origin, metadata=dict(vol.metadata)), out)
    say(f"wrote {out} {shape} at " + " x ".join(f"{v:.4g}" for v in new_sp) + " µm")


def _resample_engine(vol: Any, src: str, out: Path, cfg: Any, target: Any, order: int,
                     is_labels: bool) -> tuple[tuple[int, ...], Any]:
    """``ect resample`` on the engine: each output block reads the input box it maps to."""
    import math

    import dask.array as da

    from electrode_ct.cli._engine import EngineJob, plan_blocks
    from electrode_ct.filters.blockwise import BYTES_PER_VOXEL, resample_blockwise
    from electrode_ct.filters.geometry import resample_shape
    from electrode_ct.volume import Volume

    if order == 3 and not is_labels:
        raise InputError("--order cubic: splines need whole lines and do not run block by "
                         "block; use --order linear, or no compute option for a small volume")
    shape, new_sp = resample_shape(vol.shape, spacing=vol.spacing, voxel_size=target)
    ratio = max(1.0, math.prod(vol.shape) / math.prod(shape))  # input voxels per output
    blocks = plan_blocks(cfg, shape, (0, 0, 0), BYTES_PER_VOXEL["resample"] * ratio)
    like = Volume(da.zeros(shape, chunks=blocks), spacing=new_sp, origin=vol.origin)
    with co.session(cfg, vol.nbytes, explicit=True) as client:
        job = EngineJob.start(vol, src, out, cfg, client, {
            "command": "resample", "shape": shape, "spacing": vol.spacing, "order": order,
            "labels": is_labels, "blocks": blocks})
        dtype = vol.dtype if is_labels else "float32"
        dst = job.target(like, dtype, blocks, class_map=vol.class_map if is_labels else None)
        resample_blockwise(job.source(), dst, order=order, labels=is_labels,
                           block_shape=blocks, client=client,
                           progress=lambda it: progress(it, desc="resample"),
                           memory_limit=job.memory_limit)
        job.finish(dst)
    return shape, new_sp
