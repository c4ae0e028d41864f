"""CLI commands ``ect segment threshold|watershed|kmeans`` (no science in here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from electrode_ct.cli._argv import parse_floats
from electrode_ct.cli._common import JSON_HELP, VOXEL_SIZE_HELP, emit_json, info, say, voxel_size
from electrode_ct.cli.app import segment_app
from electrode_ct.volume import Volume

_TWO_D_HELP = "Treat the stack as independent 2-D slices (thresholds per slice)."
_FILL_HELP = "Fill holes enclosed by the brightest phase (e.g. voids inside particles)."
_ISLAND_HELP = "Remove islands of any phase smaller than this volume (µm³)."
_MAJORITY_HELP = "Majority filter box edge (odd voxels, >= 3); 0 = none."


def _load(src: str, voxel: str | None) -> tuple[Volume, np.ndarray]:
    from electrode_ct.filters import check_image
    from electrode_ct.io import read

    vol = read(src, voxel_size=voxel_size(voxel))
    img = check_image(vol.numpy(), name=src)
    return vol, (img[0] if vol.is_2d else img)


def _finish(
    vol: Volume, labels: np.ndarray, out: Path, *, fill: bool, islands: float | None,
    majority: int, as_json: bool, extra: dict[str, Any],
) -> None:
    from electrode_ct.io import write
    from electrode_ct.segment.classes import class_map
    from electrode_ct.segment.cleanup import fill_holes, majority_filter, remove_islands

    n = int(extra["classes"])
    if majority:
        labels = majority_filter(labels, size=majority)
    if islands:
        labels = remove_islands(labels, min_volume_um3=islands, spacing=vol.spacing)
    if fill:
        labels = fill_holes(labels)
    cmap = class_map(n)
    counts = np.bincount(labels.ravel(), minlength=n)[:n]
    fractions = {k: float(counts[v]) / labels.size for k, v in cmap.items()}
    res = vol.with_data(labels.astype(np.uint8)).with_class_map(cmap)
    write(res, out)
    summary = {**extra, "class_map": cmap, "volume_fraction": fractions, "output": str(out)}
    if as_json:
        emit_json(summary)
        return
    say(f"wrote {out}: " + ", ".join(f"{k} {100 * f:.2f} %" for k, f in fractions.items()))


@segment_app.command("threshold")
def threshold_cmd(
    src: str = typer.Argument(..., help="Input grey volume or image."),
    out: Path = typer.Argument(..., help="Output phase labels (uint8, class map stored)."),
    method: str = typer.Option(
        "multiotsu", "--method",
        help="manual | otsu | multiotsu | triangle | li | hysteresis | fraction",
    ),
    classes: int = typer.Option(None, "--classes", help="Number of phases (multiotsu: 3)."),
    thresholds: str = typer.Option(
        None, "--thresholds", help="manual: cut values; hysteresis: LOW HIGH (grey levels)."
    ),
    fractions: str = typer.Option(
        None, "--fractions", help="fraction: expected fractions, darkest phase first."
    ),
    offset: float = typer.Option(0.0, "--offset", help="Grey levels added to every cut value."),
    two_d: bool = typer.Option(False, "--2d", help=_TWO_D_HELP),
    fill: bool = typer.Option(False, "--fill-holes", help=_FILL_HELP),
    islands: float = typer.Option(None, "--min-island-um3", help=_ISLAND_HELP),
    majority: int = typer.Option(0, "--majority", help=_MAJORITY_HELP),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Segment phases with a global threshold (codes 0..N-1 by increasing grey level)."""
    from electrode_ct.segment.threshold import slice_thresholds, threshold, threshold_values

    vol, img = _load(src, voxel)
    kw = {"method": method, "classes": classes, "offset": offset,
          "thresholds": parse_floats(thresholds, name="--thresholds") or None,
          "fractions": parse_floats(fractions, name="--fractions") or None}
    info(f"threshold {method}: {src} {img.shape}")
    labels = threshold(img, two_d=two_d, **kw)
    per_slice = two_d and img.ndim == 3
    cuts = slice_thresholds(img, **kw) if per_slice else threshold_values(img, **kw)
    n = 2 if method.lower() == "hysteresis" else int(np.asarray(cuts).shape[-1]) + 1
    extra = {"method": method, "classes": n, "thresholds": np.asarray(cuts).tolist(),
             "two_d": bool(two_d)}
    _finish(vol, labels, out, fill=fill, islands=islands, majority=majority, as_json=as_json,
            extra=extra)


@segment_app.command("watershed")
def watershed_cmd(
    src: str = typer.Argument(..., help="Input grey volume or image."),
    out: Path = typer.Argument(..., help="Output phase labels (uint8, class map stored)."),
    low: str = typer.Option(..., "--low", help="Upper grey level of the darker seeds (one per "
                            "boundary)."),
    high: str = typer.Option(..., "--high", help="Lower grey level of the brighter seeds."),
    sigma: float = typer.Option(0.5, "--sigma", help="Smoothing before the gradient (voxels)."),
    two_d: bool = typer.Option(False, "--2d", help="Independent 2-D slices."),
    fill: bool = typer.Option(False, "--fill-holes", help=_FILL_HELP),
    islands: float = typer.Option(None, "--min-island-um3", help=_ISLAND_HELP),
    majority: int = typer.Option(0, "--majority", help=_MAJORITY_HELP),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Seeded watershed: below LOW one phase, above HIGH the other, gradient watershed between."""
    from electrode_ct.segment.watershed import seeded_watershed

    vol, img = _load(src, voxel)
    lows, highs = parse_floats(low, name="--low"), parse_floats(high, name="--high")
    info(f"watershed: {src} {img.shape}")
    labels = seeded_watershed(img, low=lows, high=highs, sigma=sigma, two_d=two_d)
    extra = {"method": "watershed", "classes": len(lows) + 1, "low": lows, "high": highs,
             "two_d": bool(two_d)}
    _finish(vol, labels, out, fill=fill, islands=islands, majority=majority, as_json=as_json,
            extra=extra)


@segment_app.command("kmeans")
def kmeans_cmd(
    src: str = typer.Argument(..., help="Input grey volume or image."),
    out: Path = typer.Argument(..., help="Output phase labels (uint8, class map stored)."),
    classes: int = typer.Option(3, "--classes", help="Number of phases."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    gradient_weight: float = typer.Option(
        0.5, "--gradient-weight", help="Weight of the Sobel-gradient feature (0 = grey only)."
    ),
    fill: bool = typer.Option(False, "--fill-holes", help=_FILL_HELP),
    islands: float = typer.Option(None, "--min-island-um3", help=_ISLAND_HELP),
    majority: int = typer.Option(0, "--majority", help=_MAJORITY_HELP),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """k-means on (grey level, Sobel gradient) for N phases, ordered by mean grey level."""
    from electrode_ct.segment.kmeans import kmeans

    vol, img = _load(src, voxel)
    info(f"kmeans: {src} {img.shape}")
    labels = kmeans(img, classes=classes, seed=seed, gradient_weight=gradient_weight)
    extra = {"method": "kmeans", "classes": classes, "seed": seed,
             "gradient_weight": gradient_weight}
    _finish(vol, labels, out, fill=fill, islands=islands, majority=majority, as_json=as_json,
            extra=extra)
