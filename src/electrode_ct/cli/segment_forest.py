"""CLI commands ``ect segment train-forest`` and ``ect scribbles``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

from electrode_ct.cli._common import (
    JSON_HELP,
    VOXEL_SIZE_HELP,
    emit_json,
    info,
    read_input,
    say,
)
from electrode_ct.cli.app import app, segment_app
from electrode_ct.errors import InputError

_FEATURES_HELP = ("Feature set: default | full | minimal, or filter:σ items, e.g. "
                  "'gaussian:0.7,ggm:1.6,hge:3.5' (filters: gaussian log ggm dog ste hge std).")
_TWO_D_HELP = "Compute features per 2-D z slice (required for single 2-D images)."


@segment_app.command("train-forest")
def train_forest_cmd(
    image: str = typer.Argument(..., help="Grey image or volume."),
    scribbles: str = typer.Argument(..., help="Labels of the same shape: 0 unlabelled, 1..K."),
    model: Path = typer.Option(..., "--model", help="Output model file (any name)."),
    features: str = typer.Option("default", "--features", help=_FEATURES_HELP),
    two_d: bool = typer.Option(False, "--2d", help=_TWO_D_HELP),
    trees: int = typer.Option(100, "--trees", help="Trees per forest."),
    class_names: str = typer.Option(None, "--class-names",
                                    help="Names of classes 1..K, comma-separated."),
    no_balance: bool = typer.Option(False, "--no-balance", help="Do not weight classes."),
    max_depth: int = typer.Option(14, "--max-depth", help="Tree depth limit (0 = none)."),
    normalise: str = typer.Option("auto", "--normalise",
                                  help="Per-image intensity normalisation: auto (shift; "
                                  "rescale only when the grey range differs from the "
                                  "training image's by > 1.5×) | percentile | offset | none."),
    augment: float = typer.Option(0.1, "--augment",
                                  help="Intensity augmentation: training copies with gains "
                                       "1 ± A and offsets ± A/2 of the range (0 = off)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train a random forest (ilastik-style) from sparse scribbles."""
    from electrode_ct.segment.features import parse_features
    from electrode_ct.segment.forest_train import train_forest

    img = read_input(image, voxel=voxel)
    lab = read_input(scribbles, role="labels")
    names = [n.strip() for n in class_names.split(",")] if class_names else None
    if names is not None and (not all(names) or len(set(names)) != len(names)):
        raise InputError(f"--class-names: expected distinct non-empty names, got {class_names!r}")
    mode = "2d" if (two_d or img.shape[0] == 1) else "3d"
    cfg = parse_features(features, mode=mode, normalise=normalise)
    info(f"training on {image} with {cfg.n_features} features ({mode})")
    t0 = time.perf_counter()
    m = train_forest(img.compute(), lab, features=cfg, class_names=names, n_trees=trees,
                     balance=not no_balance,
                     max_depth=max_depth or None, augment=augment, seed=seed)
    m.report["train_time_s"] = time.perf_counter() - t0
    m.report["inputs"] = {"image": image, "scribbles": scribbles}
    m.save(model)
    summary = {"model": str(model), "class_names": m.class_names,
               "class_values": m.class_values, "feature_config": cfg.to_dict(),
               "oob_accuracy": m.report["oob_accuracy"], "n_samples": m.report["n_samples"],
               "feature_importance": m.report["feature_importance"],
               "train_time_s": m.report["train_time_s"]}
    if as_json:
        emit_json(summary)
        return
    say(f"wrote {model}: classes {dict(zip(m.class_names, m.class_values, strict=True))}, "
        f"out-of-bag accuracy {100 * m.report['oob_accuracy']:.2f} %")
    top = list(m.report["feature_importance"].items())[:5]
    say("  most important: " + ", ".join(f"{k} {v:.3f}" for k, v in top))


@app.command("scribbles")
def scribbles_cmd(
    ref: str = typer.Argument(..., help="Dense reference labels."),
    out: Path = typer.Argument(..., help="Output scribbles (0 unlabelled, 1..K)."),
    coverage: float = typer.Option(0.1, "--coverage", help="Fraction of the slices' pixels."),
    slices: int = typer.Option(7, "--slices", help="Slices with strokes (central + spaced)."),
    style: str = typer.Option("perclass", "--style", help="perclass | uniform."),
    seed: int = typer.Option(0, "--seed", help="Random seed (one seed = one user)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Simulate a user's scribbles from a dense reference labelling."""
    from electrode_ct.io import write
    from electrode_ct.segment.scribbles import coverage_of, scribble_class_map, simulate_scribbles

    vol = read_input(ref, role="labels")
    arr = vol.numpy()
    s = simulate_scribbles(arr, coverage=coverage, n_slices=slices, style=style, seed=seed)
    cmap = scribble_class_map(vol.class_map, np.unique(arr).tolist())
    write(vol.with_data(s[0] if vol.is_2d else s).with_class_map(cmap), out)
    summary = {"output": str(out), "class_map": cmap, "style": style, "seed": seed,
               **coverage_of(s)}
    if as_json:
        emit_json(summary)
        return
    say(f"wrote {out}: {100 * summary['coverage_on_slices']:.2f} % of slices "
        f"{summary['slices']} labelled ({style}, seed {seed})")
