"""CLI commands ``ect segment threshold|watershed|kmeans`` (no science in here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import typer

from electrode_ct.cli._argv import parse_floats
from electrode_ct.cli._common import JSON_HELP, VOXEL_SIZE_HELP, emit_json, info, say, voxel_size
from electrode_ct.cli._compute import BLOCKS, MEMORY, N_WORKERS, SCHEDULER, THREADS
from electrode_ct.cli.app import segment_app
from electrode_ct.volume import Volume

_TWO_D_HELP = "Treat the stack as independent 2-D slices (thresholds per slice)."
_FILL_HELP = "Fill holes enclosed by the brightest phase (e.g. voids inside particles)."
_ISLAND_HELP = "Remove islands of any phase smaller than this volume (µm³)."
_MAJORITY_HELP = "Majority filter box edge (odd voxels, >= 3); 0 = none."


def _load(vol: Volume, src: str) -> np.ndarray:
    from electrode_ct.cli._engine import in_memory
    from electrode_ct.filters import check_image

    img = check_image(in_memory(vol).numpy(), name=src)
    return img[0] if vol.is_2d else img


def _open(src: str, voxel: str | None, compute: tuple[Any, ...]
          ) -> tuple[Volume, Any, bool]:
    """The input read lazily, the compute settings, and whether to use the engine."""
    from electrode_ct.cli._compute import compute_config, use_engine
    from electrode_ct.io import read

    vol = read(src, voxel_size=voxel_size(voxel), lazy=True)
    cfg, explicit = compute_config(*compute)
    return vol, cfg, use_engine(cfg, vol.nbytes, explicit=explicit)


def _no_cleanup(fill: bool, islands: float | None, majority: int) -> None:
    from electrode_ct.errors import InputError

    if fill or islands or majority:
        raise InputError("--fill-holes/--min-island-um3/--majority: the clean-up reads the "
                         "whole volume and does not run with the compute options; run "
                         "`ect segment` in memory or clean the labels separately")


def _on_engine(vol: Volume, src: str, out: Path, cfg: Any, *, classes: int,
               halo: int, bytes_per_voxel: float, slab: bool, as_json: bool,
               params: dict[str, Any], compute: Callable[..., dict[str, Any]]) -> None:
    """Labels on the block engine: ``compute(source, target, blocks, client)`` writes
    them and returns the summary's method keys; ``params`` key the resumable work folder."""
    from electrode_ct.cli._compute import session
    from electrode_ct.cli._engine import EngineJob, label_fractions, plan_blocks, refuse_2d
    from electrode_ct.segment.blockwise import slab_shape
    from electrode_ct.segment.classes import class_map

    refuse_2d(vol, "segmentation")
    blocks = plan_blocks(cfg, vol.shape, (halo,) * 3, bytes_per_voxel)
    blocks = slab_shape(vol.shape, blocks) if slab else blocks
    cmap = class_map(classes)
    with session(cfg, vol.nbytes, explicit=True) as client:
        job = EngineJob.start(vol, src, out, cfg, client,
                              {"command": "segment", "blocks": blocks, **params})
        source = job.source()
        target = job.target(vol, np.uint8, blocks, class_map=cmap)
        extra = compute(source, target, blocks, client)
        fractions = label_fractions(target, cmap, block_shape=blocks, client=client)
        job.finish(target)
    _report(extra, cmap, fractions, out, as_json)


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
    _report(extra, cmap, fractions, out, as_json)


def _report(extra: dict[str, Any], cmap: dict[str, int], fractions: dict[str, float],
            out: Path, as_json: bool) -> None:
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
    scheduler: str = SCHEDULER, n_workers: int = N_WORKERS,
    threads_per_worker: int = THREADS, memory_limit: str = MEMORY, block_shape: str = BLOCKS,
) -> None:
    """Segment phases with a global threshold (codes 0..N-1 by increasing grey level)."""
    from electrode_ct.segment.blockwise import (
        check_engine_threshold,
        threshold_blockwise,
        threshold_bytes_per_voxel,
    )
    from electrode_ct.segment.threshold import phase_count, threshold_with_cuts

    vol, cfg, engine = _open(src, voxel, (scheduler, n_workers, threads_per_worker,
                                          memory_limit, block_shape))
    kw = {"method": method, "classes": classes, "offset": offset,
          "thresholds": parse_floats(thresholds, name="--thresholds") or None,
          "fractions": parse_floats(fractions, name="--fractions") or None}
    n = phase_count(method, classes=classes, thresholds=kw["thresholds"],
                    fractions=kw["fractions"])
    info(f"threshold {method}: {src} {vol.shape}")

    def extra(cuts: np.ndarray) -> dict[str, Any]:
        return {"method": method, "classes": n, "thresholds": np.asarray(cuts).tolist(),
                "two_d": bool(two_d)}

    if engine:
        _no_cleanup(fill, islands, majority)
        check_engine_threshold(method, two_d)

        def compute(source: Any, target: Any, blocks: tuple[int, ...],
                    client: Any) -> dict[str, Any]:
            from electrode_ct.cli._engine import bar

            return extra(threshold_blockwise(source, target, two_d=two_d, block_shape=blocks,
                                             client=client, progress=bar("threshold"), **kw))

        _on_engine(vol, src, out, cfg, classes=n, halo=0, slab=two_d,
                   bytes_per_voxel=threshold_bytes_per_voxel(vol.dtype),
                   as_json=as_json, params={**kw, "two_d": two_d}, compute=compute)
        return
    labels, cuts = threshold_with_cuts(_load(vol, src), two_d=two_d, **kw)
    _finish(vol, labels, out, fill=fill, islands=islands, majority=majority, as_json=as_json,
            extra=extra(cuts))


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
    scheduler: str = SCHEDULER, n_workers: int = N_WORKERS,
    threads_per_worker: int = THREADS, memory_limit: str = MEMORY, block_shape: str = BLOCKS,
) -> None:
    """Seeded watershed: below LOW one phase, above HIGH the other, gradient watershed between.

    Runs in memory only: the flooding of a window region can cross the whole volume, so
    no halo bounds it (docs/scale.md); the compute options are refused.
    """
    from electrode_ct.cli._compute import compute_config
    from electrode_ct.errors import ConfigError
    from electrode_ct.io import read
    from electrode_ct.segment.watershed import seeded_watershed

    if compute_config(scheduler, n_workers, threads_per_worker, memory_limit, block_shape)[1]:
        raise ConfigError("--scheduler/--block-shape: the seeded watershed floods regions "
                          "that can cross the whole volume, so it has no blockwise form; "
                          "run it in memory (omit the compute options) or use threshold")
    vol = read(src, voxel_size=voxel_size(voxel))
    img = _load(vol, src)
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
    scheduler: str = SCHEDULER, n_workers: int = N_WORKERS,
    threads_per_worker: int = THREADS, memory_limit: str = MEMORY, block_shape: str = BLOCKS,
) -> None:
    """k-means on (grey level, Sobel gradient) for N phases, ordered by grey level."""
    from electrode_ct.segment import kmeans as km
    from electrode_ct.segment.blockwise import kmeans_blockwise
    from electrode_ct.segment.classes import check_classes

    vol, cfg, engine = _open(src, voxel, (scheduler, n_workers, threads_per_worker,
                                          memory_limit, block_shape))
    check_classes(classes)
    info(f"kmeans: {src} {vol.shape}")
    extra = {"method": "kmeans", "classes": classes, "seed": seed,
             "gradient_weight": gradient_weight}
    if engine:
        _no_cleanup(fill, islands, majority)

        def compute(source: Any, target: Any, blocks: tuple[int, ...],
                    client: Any) -> dict[str, Any]:
            from electrode_ct.cli._engine import bar

            kmeans_blockwise(source, target, classes=classes, seed=seed,
                             gradient_weight=gradient_weight, block_shape=blocks,
                             client=client, progress=bar("kmeans"))
            return extra

        _on_engine(vol, src, out, cfg, classes=classes, halo=km.halo(1.0),
                   bytes_per_voxel=km.BYTES_PER_VOXEL, slab=False, as_json=as_json,
                   params=extra, compute=compute)
        return
    labels = km.kmeans(_load(vol, src), classes=classes, seed=seed,
                       gradient_weight=gradient_weight)
    _finish(vol, labels, out, fill=fill, islands=islands, majority=majority, as_json=as_json,
            extra=extra)
