"""CLI commands ``ect compare`` and ``ect variability`` (no science in here)."""

from __future__ import annotations

from pathlib import Path

import typer

from electrode_ct.cli._common import JSON_HELP, check_input, emit_json, read_input, say
from electrode_ct.cli.app import app
from electrode_ct.errors import InputError
from electrode_ct.volume import Volume


def _labels(paths: list[str]) -> list[Volume]:
    """Label volumes of the same shape (shapes compared first, then values checked)."""
    vols = [read_input(p, role="any") for p in paths]
    for p, v in zip(paths[1:], vols[1:], strict=True):
        if v.shape != vols[0].shape:
            raise InputError(f"{p} has shape {v.shape} but {paths[0]} has shape {vols[0].shape}")
    for p, v in zip(paths, vols, strict=True):
        check_input(v, p, "labels")
    return vols


def _reference(text: str | None) -> tuple[str, float] | None:
    if text is None:
        return None
    phase, sep, value = text.partition("=")
    try:
        frac = float(value.strip().rstrip("%"))
    except ValueError:
        frac = float("nan")
    if not sep or not phase.strip() or frac != frac:
        raise InputError(f"--reference: expected PHASE=FRACTION (e.g. active=0.508), got {text!r}")
    if value.strip().endswith("%"):
        frac /= 100.0
    if not 0 < frac <= 1:
        raise InputError(f"--reference: expected a volume fraction in (0, 1] (or 0-100 %), "
                         f"got {text!r}")
    return phase.strip(), frac


@app.command("compare")
def compare_cmd(
    seg: str = typer.Argument(..., help="Segmentation (label volume)."),
    ref: str = typer.Argument(..., help="Reference labels of the same shape."),
    ignore: int = typer.Option(None, "--ignore", help="Reference value to leave out (e.g. 0)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Compare a segmentation with reference labels: accuracy, IoU, Dice, volume fractions."""
    from electrode_ct.metrics.compare import compare

    s, r = _labels([seg, ref])
    cmap = s.class_map or r.class_map
    res = compare(s.numpy(), r.numpy(), ignore=ignore, class_map=cmap)
    if as_json:
        emit_json(res)
        return
    say(f"accuracy {res['accuracy']:.4f}  mean IoU {res['mean_iou']:.4f}  "
        f"differing {res['percent_different']:.2f} %")
    for k in res["classes"]:
        say(f"  {k:>10}: IoU {res['iou'][k]:.4f}  Dice {res['dice'][k]:.4f}  "
            f"fraction {res['volume_fraction'][k]:.4f} (ref {res['volume_fraction_ref'][k]:.4f})")


@app.command("variability")
def variability_cmd(
    segs: list[str] = typer.Argument(..., help="Two or more segmentations of the same volume."),
    agreement: Path = typer.Option(
        None, "--agreement", help="Write the per-voxel agreement map (float32) here."
    ),
    reference: str = typer.Option(
        None, "--reference",
        help="PHASE=FRACTION measured by another technique, e.g. active=0.508 or active=50.8%.",
    ),
    methods: str = typer.Option(
        None, "--methods", help="Method of each segmentation, comma-separated in order (e.g. "
        "thr,thr,thr,ml1,ml1,ml1): the spread is also given per method (key methods)."),
    phase: str = typer.Option(
        None, "--phase", help="Phase of the per-method fraction spread and subtraction "
        "images (default: --reference's phase, else 'active' when named)."),
    subtraction: Path = typer.Option(
        None, "--subtraction", help="Folder for the subtraction images (int8 phase mask of "
        "user a − user b) of every pair within each method."),
    figure: Path = typer.Option(None, "--figure", help="PNG of the per-method spread and "
                                "pairwise % differing."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Volume-fraction mean/σ and pairwise voxel differences between segmentations."""
    from electrode_ct.io import write
    from electrode_ct.metrics.quality import fraction_vs_reference
    from electrode_ct.metrics.variability import variability

    if len(segs) < 2:
        raise InputError(f"variability: need at least 2 segmentations, got {len(segs)}")
    vols = _labels(segs)
    cmap = vols[0].class_map
    arrays = [v.numpy() for v in vols]
    ref = _reference(reference)
    res = variability(*arrays, class_map=cmap, agreement=agreement is not None)
    res["inputs"] = list(segs)
    if ref is not None:
        res["reference"] = fraction_vs_reference(arrays, phase=ref[0], reference=ref[1],
                                                 class_map=cmap)
    if methods is not None or subtraction is not None or figure is not None:
        res.update(_by_method(segs, vols, arrays, methods, phase, ref, subtraction, figure))
    if agreement is not None:
        write(vols[0].with_data(res.pop("agreement")).with_class_map(None), agreement)
    if as_json:
        emit_json(res)
        return
    say(f"{len(segs)} segmentations; mean % voxels different {res['mean_percent_different']:.2f}")
    for k in res["classes"]:
        say(f"  {k:>10}: fraction {res['volume_fraction_mean'][k]:.4f} "
            f"± {res['volume_fraction_std'][k]:.4f}")
    for name, m in (res.get("methods") or {}).items():
        say(f"  method {name}: {m['phase']} fraction {m['phase_fraction_mean']:.4f} ± "
            f"{m['phase_fraction_std']:.4f} over {m['n_users']} users; % differing "
            + ", ".join(f"{d:.2f}" for d in m["phase_percent_different"]))
    if ref is not None:
        m = res["reference"]["mean"]
        say(f"  {ref[0]} vs reference {ref[1]:.4f}: {m['absolute_difference']:+.4f} "
            f"({m['relative_difference_percent']:+.2f} %)")


def _by_method(paths: list[str], vols: list[Volume], arrays: list, methods: str | None,
               phase: str | None, ref: tuple[str, float] | None, subtraction: Path | None,
               figure: Path | None) -> dict:
    """The ``methods`` key (and the subtraction files and figure) of ``ect variability``."""
    from electrode_ct.cli._variability import (
        by_method,
        method_names,
        save_figure,
        write_subtractions,
    )
    from electrode_ct.metrics.variability import method_variability

    cmap = vols[0].class_map
    phase = phase or (ref[0] if ref else ("active" if cmap and "active" in cmap else None))
    if phase is None:
        raise InputError("--phase: expected the phase to compare (no --reference and no "
                         "'active' in the class map)")
    if ref is not None and ref[0] != phase:
        raise InputError(f"--reference names phase {ref[0]!r} but --phase is {phase!r}")
    groups = by_method(method_names(methods, len(paths)), arrays)
    per = method_variability(groups, phase=phase, reference=ref[1] if ref else None,
                             class_map=cmap)
    for name, m in per.items():
        m["inputs"] = [p for p, n in zip(paths, method_names(methods, len(paths)),
                                         strict=True) if n == name]
    out: dict = {"methods": per}
    if subtraction is not None:
        out["subtraction_files"] = write_subtractions(subtraction, groups, per, vols[0])
    if figure is not None:
        out["figure"] = save_figure(figure, per, ref[1] if ref else None)
    return out
