"""CLI commands ``ect filter``, ``ect crop`` and ``ect resample`` (no science in here)."""

from __future__ import annotations

from pathlib import Path

import typer

from electrode_ct.cli._argv import parse_floats
from electrode_ct.cli._common import VOXEL_SIZE_HELP, info, read_input, say, voxel_size
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
) -> None:
    """Denoise, sharpen, remove rings or normalise a grey volume."""
    from electrode_ct import filters
    from electrode_ct.io import read, write

    m = method.lower()
    if m not in filters.METHODS:
        raise InputError(f"--method: expected one of {', '.join(filters.METHODS)}, got {method!r}")
    vol = read(src, voxel_size=voxel_size(voxel))
    img = filters.check_image(vol.numpy(), name=src)
    if vol.is_2d:
        img = img[0]
    info(f"filter {m}: {src} {vol.shape}")
    if m == "gaussian":
        opts: dict = {"sigma": _lengths(sigma, "--sigma")}
    elif m == "median":
        opts = {"size": _lengths(size, "--size")}
    elif m == "unsharp":
        opts = {"radius": _lengths(radius, "--radius"), "amount": amount}
    elif m == "nlm":
        opts = {"h": h, "patch_size": patch_size, "patch_distance": patch_distance,
                "slab": slab, "workers": workers}
    elif m == "rings":
        c = parse_floats(center, name="--center", count=(2,)) if center else None
        opts = {"center": tuple(c) if c else None, "width": width}
    else:
        opts = {"scale": scale, "low": low, "high": high, "dtype": dtype}
    res = filters.apply_filter(img, m, spacing=vol.spacing, in_um=in_um, **opts)
    write(vol.with_data(res, class_map=None), out)
    say(f"wrote {out}")


@app.command("crop")
def crop_cmd(
    src: str = typer.Argument(..., help="Input volume."),
    out: Path = typer.Argument(..., help="Output volume."),
    z: str = typer.Option(None, "--z", help="Slices A:B (half-open, voxels)."),
    y: str = typer.Option(None, "--y", help="Rows A:B."),
    x: str = typer.Option(None, "--x", help="Columns A:B."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
) -> None:
    """Crop a region of interest (the origin moves by the cropped offset)."""
    from electrode_ct.filters import crop, parse_range
    from electrode_ct.io import read, write
    from electrode_ct.volume import Volume

    vol = read(src, lazy=True, voxel_size=voxel_size(voxel))
    arr = vol.data[0] if vol.is_2d else vol.data
    ranges = {k: parse_range(v, name=f"--{k}") for k, v in (("z", z), ("y", y), ("x", x))}
    cropped, off = crop(arr, **ranges)
    origin = tuple(o + i * s for o, i, s in zip(vol.origin, off, vol.spacing, strict=True))
    res = Volume(cropped, spacing=vol.spacing, origin=origin, metadata=dict(vol.metadata))
    write(res, out)
    say(f"wrote {out} {res.shape}")


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
) -> None:
    """Resample to another voxel size (anisotropic -> isotropic, up or down)."""
    from electrode_ct.filters import resample
    from electrode_ct.io import write

    orders = {"linear": 1, "cubic": 3}
    if order not in orders:
        raise InputError(f"--order: expected linear or cubic, got {order!r}")
    vol = read_input(src, role="any", voxel=spacing_in)
    if not (labels or vol.class_map is not None):  # grey: interpolated, so finite values only
        vol = read_input(src, voxel=spacing_in)
    arr = vol.numpy()[0] if vol.is_2d else vol.numpy()
    is_labels = labels or vol.class_map is not None
    res, new_sp = resample(arr, spacing=vol.spacing, voxel_size=voxel_size(target),
                           order=orders[order], labels=is_labels)
    meta = dict(vol.metadata)
    from electrode_ct.volume import Volume

    write(Volume(res, spacing=new_sp, origin=vol.origin, metadata=meta), out)
    say(f"wrote {out} {res.shape} at " + " x ".join(f"{v:.4g}" for v in new_sp) + " µm")
