"""CLI commands ``ect particles``, ``ect psd``, ``ect coco`` and ``ect compare-instances``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from electrode_ct.cli import _compute as co
from electrode_ct.cli._common import (
    JSON_HELP,
    VOXEL_SIZE_HELP,
    emit_json,
    info,
    read_input,
    read_input_table,
    say,
)
from electrode_ct.cli.app import app
from electrode_ct.errors import InputError, ShapeError

_AXES = {"z": 0, "y": 1, "x": 2, "0": 0, "1": 1, "2": 2}


def _axis(text: str) -> int:
    key = str(text).strip().lower()
    if key not in _AXES:
        raise InputError(f"--axis: expected z, y or x (or 0, 1, 2), got {text!r}")
    return _AXES[key]


def _read_planes(
    planes: tuple[str | None, ...] | None, *, method: str, shape: tuple[int, ...]
) -> list[np.ndarray] | None:
    """Read the three ``--planes`` volumes (XY, XZ, YZ), checking method and shapes."""
    from electrode_ct.io import read

    paths = [p for p in (planes or ()) if p is not None]
    if not paths:
        return None
    if method != "triplanar":
        raise InputError(f"--planes: only used with --method triplanar, got --method {method}")
    if len(paths) != 3:
        raise InputError(f"--planes: expected 3 volumes (XY XZ YZ), got {len(paths)}")
    arrays = []
    for name, path in zip(("XY", "XZ", "YZ"), paths, strict=True):
        arr = read(path).numpy()
        if arr.shape != tuple(shape):
            raise ShapeError(f"{path}: {name} plane predictions of shape {arr.shape} differ "
                             f"from the phases' shape {tuple(shape)}")
        arrays.append(arr)
    return arrays


@app.command("particles")
def particles_cmd(
    phases: str = typer.Argument(..., help="Phase label volume (or particle probability map); "
                                 "with --method learned the grey volume."),
    out: Path = typer.Argument(..., help="Output particle labels (uint32, 0 = background)."),
    phase: str = typer.Option(
        None, "--phase",
        help="Particle phase: class name or value. Default: 'active' when the file's class "
        "map has it; required otherwise.",
    ),
    heal: float = typer.Option(
        0.0, "--heal-cracks-um", help="Close cracks up to this width (µm) before splitting."
    ),
    resplit: bool = typer.Option(
        True, "--resplit/--no-resplit",
        help="With --heal-cracks-um: re-split particles the healing bridged to a neighbour "
        "(shape cost; cracked particles stay whole).",
    ),
    h: float = typer.Option(
        None, "--h", help="h-maxima height of seeds, µm of distance (default: one voxel)."
    ),
    method: str = typer.Option("distance", "--method",
                               help="distance | triplanar | boundary | learned"),
    model: Path = typer.Option(
        None, "--model", help="Method learned: a particles-cnn model ('ect particles train "
        "GREY LABELS --model M'); default: the shipped model."),
    cut_phases: str = typer.Option(
        None, "--phases", help="Method learned: phase volume to cut the particles back to "
        "(default: the model's particle region)."),
    boundary: str = typer.Option(
        None, "--boundary", help="Boundary-probability volume (method boundary)."
    ),
    planes: tuple[str, str, str] | None = typer.Option(
        None, "--planes",
        help="Method triplanar: three volumes XY XZ YZ of slice-wise 2-D predictions made "
        "along z, y and x and stacked back into (z, y, x) (instance labels or foreground "
        "probabilities).",
    ),
    min_volume: float = typer.Option(
        0.0, "--min-volume-um3", help="Remove particles smaller than this (µm³)."
    ),
    compactness: float = typer.Option(0.0, "--compactness", help="Compact watershed (0 = off)."),
    remove_border: str = typer.Option(
        "none", "--remove-border",
        help="none | touch | truncated (section on a face > 20 % of the largest section).",
    ),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    halo: str = typer.Option(
        None, "--halo",
        help="Engine: halo each block reads around its own voxels, in voxels (40) or µm "
        "(20um); at least the largest particle's extent plus the healing width. Default: "
        "from a size estimate (4 x the largest distance to the background + healing).",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    scheduler: str = co.SCHEDULER, n_workers: int = co.N_WORKERS,
    threads_per_worker: int = co.THREADS, memory_limit: str = co.MEMORY,
    block_shape: str = co.BLOCKS,
) -> None:
    """Split the particle phase into particles, keeping cracked particles whole.

    --method learned takes the grey volume and a particle instance model (trained with
    'ect particles train GREY LABELS --model M'; default: the shipped one).

    Large volumes (or any compute option) run block by block on Dask: each block keeps the
    particles whose first voxel it holds; the labels equal the in-memory ones.
    """
    from electrode_ct.io import read, write
    from electrode_ct.particles import border_labels, separate_particles

    if remove_border not in ("none", "touch", "truncated"):
        raise InputError(
            f"--remove-border: expected none, touch or truncated, got {remove_border!r}"
        )
    if (model is not None or cut_phases is not None) and method != "learned":
        raise InputError(f"--model/--phases: only used with --method learned, got --method "
                         f"{method}")
    cfg, explicit = co.compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                                      block_shape)
    vol = read_input(phases, role="grey" if method == "learned" else "probability",
                     voxel=voxel, lazy=True)
    cmap = vol.class_map
    if method == "learned":
        return _learned(phases, out, model=model, cut=cut_phases, phase=phase, voxel=voxel,
                        h=h, min_volume=min_volume, compactness=compactness,
                        remove_border=remove_border, as_json=as_json, explicit=explicit)
    if phase is None and cmap and "active" in cmap:
        phase = "active"
    if phase is None and np.issubdtype(vol.dtype, np.integer):
        raise InputError(
            f"{phases}: no class map names the particle phase; give --phase NAME or VALUE"
        )
    params = {"method": method, "phase": phase, "heal_cracks_um": heal, "resplit": resplit,
              "h_um": h, "min_volume_um3": min_volume, "compactness": compactness,
              "remove_border": remove_border}
    if explicit or halo is not None:
        from electrode_ct.cli._particles_engine import parse_halo

        parse_halo(halo, vol.spacing)  # a bad --halo fails before any cluster starts
    from electrode_ct.particles.blockwise import BYTES_PER_VOXEL

    # in memory the separation needs about a block's working memory per voxel
    with co.session(cfg, vol.nbytes, explicit=explicit,
                    factor=BYTES_PER_VOXEL / vol.dtype.itemsize) as client:
        if client is not None:
            _refuse_on_engine(method, boundary, planes, remove_border)
            summary = _engine(vol, phases, out, cfg, client, params, halo)
            return _report(summary, out, as_json)
    vol = read_input(phases, role="probability", voxel=voxel)
    bnd = None
    if boundary is not None:
        from electrode_ct.particles.separate import check_boundary

        bnd = check_boundary(read(boundary).numpy(), name=boundary)
        if bnd.shape != vol.shape:
            raise ShapeError(f"{boundary}: shape {bnd.shape} differs from {phases} {vol.shape}")
    plane_arrays = _read_planes(planes, method=method, shape=vol.shape)
    info(f"separating particles of {phases} ({method})")
    sep = separate_particles(
        vol.numpy(), phase=phase, class_map=cmap, spacing=vol.spacing, heal_cracks_um=heal,
        h=h, method=method, boundary=bnd, planes=plane_arrays, min_volume_um3=min_volume,
        compactness=compactness, resplit=resplit,
    )
    labels, n_border_after, n_removed_border = _border_rule(sep.labels, remove_border)
    n_border = int(border_labels(sep.labels).size)
    meta = {"particles": {"method": method, "phase": phase, "heal_cracks_um": heal,
                          "resplit": resplit,
                          "planes": list(planes) if plane_arrays is not None else None,
                          "h_um": sep.h_um, "min_volume_um3": min_volume,
                          "remove_border": remove_border}}
    out_vol = vol.with_data(labels.astype(np.uint32), **meta).with_class_map(None)
    write(out_vol, out)
    summary = {
        "n_particles": int(labels.max()),
        "n_border": n_border if remove_border == "none" else n_border_after,
        "n_removed": sep.n_removed_small + n_removed_border,
        "n_removed_small": sep.n_removed_small,
        "n_removed_border": n_removed_border,
        "n_markers": sep.n_markers,
        "n_resplit": sep.n_resplit,
        "n_rehealed": sep.n_rehealed,
        "method": method,
        "heal_cracks_um": heal,
        "h_um": sep.h_um,
    }
    _report(summary, out, as_json)


def _learned(grey: str, out: Path, *, model: Path | None, cut: str | None, phase: str | None,
             voxel: str | None, h: float | None, min_volume: float, compactness: float,
             remove_border: str, as_json: bool, explicit: bool) -> None:
    """``--method learned`` (in memory): the grey volume through the instance model."""
    from electrode_ct.cli.particles_learned import separate_learned_cli
    from electrode_ct.io import write

    if explicit:
        raise InputError("--method learned: runs in memory only; give no compute options")
    sep, vol, meta = separate_learned_cli(grey, out, model=model, phases=cut, phase=phase,
                                          voxel=voxel, h=h, min_volume=min_volume,
                                          compactness=compactness)
    labels, n_border, n_removed_border = _border_rule(sep.labels, remove_border)
    meta = {"particles": {"method": "learned", **meta, "h_um": sep.h_um,
                          "min_volume_um3": min_volume, "remove_border": remove_border}}
    write(vol.with_data(labels.astype(np.uint32), **meta).with_class_map(None), out)
    _report({"n_particles": int(labels.max()), "n_border": n_border,
             "n_removed": sep.n_removed_small + n_removed_border,
             "n_removed_small": sep.n_removed_small, "n_removed_border": n_removed_border,
             "n_markers": sep.n_markers, "n_resplit": 0, "n_rehealed": 0,
             "method": "learned", "heal_cracks_um": 0.0, "h_um": sep.h_um,
             "model": meta["particles"]["model"]}, out, as_json)


def _border_rule(labels: np.ndarray, rule: str) -> tuple[np.ndarray, int, int]:
    """Sequential labels after ``--remove-border``; border count and particles removed."""
    from electrode_ct.particles import border_labels, relabel_sequential
    from electrode_ct.particles.cleanup import remove_border as drop_border

    labels = relabel_sequential(labels)  # ids in raster order of first voxels
    if rule == "none":
        return labels, int(border_labels(labels).size), 0
    before = int(labels.max())
    labels = relabel_sequential(drop_border(labels, rule=rule))
    return labels, int(border_labels(labels).size), before - int(labels.max())


def _refuse_on_engine(method: str, boundary: str | None, planes: Any,
                      remove_border: str) -> None:
    """The block engine separates with ``distance`` and drops border particles by touch."""
    if method != "distance" or boundary is not None or planes:
        raise InputError(f"--method: the block engine separates with 'distance' only, got "
                         f"{method!r}; run without compute options (in memory)")
    if remove_border == "truncated":
        raise InputError("--remove-border: the block engine drops border particles with "
                         "'touch' only, got 'truncated'; run in memory")


def _engine(vol: Any, phases: str, out: Path, cfg: Any, client: Any, params: dict[str, Any],
            halo: str | None) -> dict[str, Any]:
    """Run ``ect particles`` on the block engine (:mod:`electrode_ct.cli._particles_engine`)."""
    from electrode_ct.cli._particles_engine import run_on_engine
    from electrode_ct.particles.blockwise import ParticleSettings
    from electrode_ct.volume import resolve_phase

    value = None
    if np.issubdtype(vol.dtype, np.integer):
        value = resolve_phase(params["phase"], vol.class_map, where="--phase")
    settings = ParticleSettings(
        value, tuple(float(s) for s in vol.spacing), heal_cracks_um=params["heal_cracks_um"],
        h=params["h_um"], min_volume_um3=params["min_volume_um3"],
        compactness=params["compactness"], resplit=params["resplit"])
    info(f"separating particles of {phases} by blocks (ownership)")
    summary = run_on_engine(vol, phases, out, cfg, client, settings=settings, halo_text=halo,
                            remove_border=params["remove_border"] == "touch", params=params)
    summary.update({"method": "distance", "heal_cracks_um": params["heal_cracks_um"],
                    "h_um": settings.h_um})
    return summary


def _report(summary: dict[str, Any], out: Path, as_json: bool) -> None:
    summary["output"] = str(out)
    if as_json:
        emit_json(summary)
        return
    removed = summary["n_removed"] if summary["n_removed"] is not None else \
        summary["n_removed_border"]
    say(f"wrote {out}: {summary['n_particles']} particles ({summary['n_border']} on the border, "
        f"{removed} removed)")


@app.command("psd")
def psd_cmd(
    table: Path = typer.Argument(..., help="Morphology table (.parquet or .csv)."),
    min_diameter: float = typer.Option(
        0.0, "--min-diameter-um", help="Leave out smaller particles (µm, resolution limit)."
    ),
    exclude_border: bool = typer.Option(
        False, "--exclude-border", help="Leave out particles touching the volume border."
    ),
    plot: Path = typer.Option(None, "--plot", help="Write a histogram figure (.png/.svg)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples over "
                                  "particles for the _std/_ci95 companions (>= 1)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Particle-size distribution: number- and volume-weighted mean, d10, d50, d90, each
    with a 95 % bootstrap interval over particles."""
    from electrode_ct.measure.psd import plot_size_distribution, size_distribution
    from electrode_ct.uncertainty import check_bootstrap, interval_text

    check_bootstrap(bootstrap)
    dist = size_distribution(read_input_table(table, columns=["equivalent_diameter_um"]),
                             min_diameter_um=min_diameter, exclude_border=exclude_border,
                             bootstrap=bootstrap, seed=seed)
    if plot is not None:
        plot_size_distribution(dist, path=plot)
    if as_json:
        emit_json(dist)
        return
    say(f"{dist['n_particles']} particles ({dist['n_excluded']} excluded)")
    for kind in ("number", "volume"):
        d = dist[kind]
        say(f"  {kind:7s} " + "  ".join(
            f"{k[:-3]} {interval_text(d[k], None, d[k + '_ci95'], fmt='.3g')}"
            for k in ("mean_um", "d10_um", "d50_um", "d90_um")) + " µm (95 % bootstrap)")


@app.command("coco")
def coco_cmd(
    grey: str = typer.Argument(..., help="Grey volume."),
    labels: str = typer.Argument(..., help="Particle label volume of the same shape."),
    out_dir: Path = typer.Argument(..., help="Output folder (train/ and val/ datasets)."),
    axis: str = typer.Option("z", "--axis", help="Slicing axis: z (XY slices), y or x."),
    val: float = typer.Option(0.2, "--val", help="Fraction of slices for validation."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the split."),
    mask: bool = typer.Option(None, "--mask/--ids", help="LABELS is a binary mask (annotate "
                              "each slice's connected components) / holds particle ids. "
                              "Default: a mask when it holds one non-zero value."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Export slices and particle polygons as COCO instance-segmentation datasets."""
    from electrode_ct.particles.coco import export_coco

    g, lab = read_input(grey), read_input(labels, role="labels")
    if g.shape != lab.shape:
        raise ShapeError(f"{grey}: shape {g.shape} differs from {labels} {lab.shape}")
    res = export_coco(g.numpy(), lab.numpy(), out_dir, axis=_axis(axis), val=val, seed=seed,
                      binary=mask)
    if res["binary_mask"]:
        typer.echo(f"note: {labels} is read as a binary mask: each slice's connected "
                   "components are annotated (no 3-D particle_id); --ids to read it as ids",
                   err=True)
    if as_json:
        emit_json(res)
        return
    say(f"wrote {out_dir}: {res['n_train_images']} train / {res['n_val_images']} val images, "
        f"{res['n_train_annotations'] + res['n_val_annotations']} annotations")


def _figures(res: dict[str, Any], pred: np.ndarray, truth: np.ndarray, grey: Any, *,
             plot: Path | None, overlay: Path | None, axis: int) -> None:
    """``--plot`` / ``--overlay`` of ``compare-instances``."""
    from electrode_ct.metrics.instance_figures import overlay_figure, pr_figure

    if plot is not None:
        curves = {"3-D": res}
        if "slices" in res:
            curves[f"{len(res['slices']['slices'])} slices"] = res["slices"]
        pr_figure(curves, path=plot)
        res["plot"] = str(plot)
    if overlay is not None and pred.ndim == 3:
        overlay_figure(pred, truth, grey=grey, axis=axis, path=overlay)
        res["overlay"] = str(overlay)


@app.command("compare-instances")
def compare_instances_cmd(
    labels: str = typer.Argument(..., help="Predicted particle labels."),
    ref: str = typer.Argument(..., help="Reference particle labels."),
    slices: int = typer.Option(
        0, "--slices", help="Also evaluate N random 2-D slices (pooled), key 'slices'."
    ),
    axis: str = typer.Option("z", "--axis", help="Slicing axis of --slices."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the slice choice."),
    plot: Path = typer.Option(None, "--plot", help="Write the precision-recall curves at "
                              "IoU 0.5 (3-D, and the --slices pool) (.png/.svg)."),
    overlay: Path = typer.Option(None, "--overlay", help="Write a reference (green) vs "
                                 "prediction (magenta) outline overlay of the middle slice."),
    grey: str = typer.Option(None, "--grey", help="Grey volume under the --overlay."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Instance metrics: precision, recall, F1 and AP at IoU 0.5, AP@[.5:.95], splits, merges."""
    from electrode_ct.io import read
    from electrode_ct.labels import check_labels
    from electrode_ct.metrics.instances import match_instances, slice_instances

    pred = check_labels(read(labels).numpy(), name=labels)
    truth = check_labels(read(ref).numpy(), name=ref)
    if pred.shape != truth.shape:
        raise ShapeError(f"{labels}: shape {pred.shape} differs from {ref} {truth.shape}")
    under = None
    if grey is not None:
        under = read_input(grey).numpy()
        if under.shape != truth.shape:
            raise ShapeError(f"{grey}: shape {under.shape} differs from {ref} {truth.shape}")
    res = match_instances(pred, truth)
    if slices > 0:
        res["slices"] = slice_instances(pred, truth, n_slices=slices, axis=_axis(axis), seed=seed)
    _figures(res, pred, truth, under, plot=plot, overlay=overlay, axis=_axis(axis))
    if as_json:
        emit_json(res)
        return
    say(f"{res['n_pred']} predicted, {res['n_ref']} reference particles")
    say(f"  precision {res['precision']:.4f}  recall {res['recall']:.4f}  f1 {res['f1']:.4f}")
    say(f"  AP50 {res['ap50']:.4f}  AP {res['ap']:.4f}  splits {res['splits']}  "
        f"merges {res['merges']}")
