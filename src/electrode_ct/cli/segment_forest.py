"""CLI commands ``ect segment train-forest``, ``ect segment predict`` and ``ect scribbles``."""

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
    progress,
    say,
    voxel_size,
)
from electrode_ct.cli.app import app, segment_app
from electrode_ct.errors import InputError, ModelError

_FEATURES_HELP = ("Feature set: default | full | minimal, or filter:σ items, e.g. "
                  "'gaussian:0.7,ggm:1.6,hge:3.5' (filters: gaussian log ggm dog ste hge std).")
_TWO_D_HELP = "Compute features per 2-D z slice (required for single 2-D images)."
_ADAPT_HELP = ("Re-estimate each image's class priors by EM and adjust the probabilities "
               "to them (label-shift correction; off: lowered SegmentPy IoU).")


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
    context: bool = typer.Option(False, "--auto-context/--no-auto-context",
                                 help="Add a second auto-context forest (off by default: "
                                      "no measured gain, half the speed)."),
    no_balance: bool = typer.Option(False, "--no-balance", help="Do not weight classes."),
    max_depth: int = typer.Option(14, "--max-depth", help="Tree depth limit (0 = none)."),
    normalise: str = typer.Option("auto", "--normalise",
                                  help="Per-image intensity normalisation: auto (shift; "
                                  "rescale only when the grey range differs from the "
                                  "training image's by > 1.5×) | percentile | offset | none."),
    augment: float = typer.Option(0.1, "--augment",
                                  help="Intensity augmentation: training copies with gains "
                                       "1 ± A and offsets ± A/2 of the range (0 = off)."),
    adapt_priors: bool = typer.Option(False, "--adapt-priors/--no-adapt-priors",
                                      help=_ADAPT_HELP + " Stored as the model's default."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train a random forest (ilastik-style) from sparse scribbles."""
    from electrode_ct.io import read
    from electrode_ct.segment.features import parse_features
    from electrode_ct.segment.forest import train_forest

    img = read(image, voxel_size=voxel_size(voxel))
    lab = read(scribbles)
    names = [n.strip() for n in class_names.split(",")] if class_names else None
    if names is not None and (not all(names) or len(set(names)) != len(names)):
        raise InputError(f"--class-names: expected distinct non-empty names, got {class_names!r}")
    mode = "2d" if (two_d or img.shape[0] == 1) else "3d"
    cfg = parse_features(features, mode=mode, normalise=normalise)
    info(f"training on {image} with {cfg.n_features} features ({mode})")
    t0 = time.perf_counter()
    m = train_forest(img.compute(), lab, features=cfg, class_names=names, n_trees=trees,
                     auto_context=context, balance=not no_balance,
                     max_depth=max_depth or None, augment=augment, seed=seed)
    m.adapt_priors = adapt_priors
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


@segment_app.command("predict")
def predict_cmd(
    model: Path = typer.Argument(..., help="Model file (forest or CNN)."),
    image: str = typer.Argument(..., help="Grey image or volume."),
    out: Path = typer.Argument(..., help="Output labels (the model's class values, uint8)."),
    probabilities: Path = typer.Option(None, "--probabilities",
                                       help="Also write per-class probabilities (K,z,y,x)."),
    uncertainty: Path = typer.Option(None, "--uncertainty",
                                     help="Also write the entropy uncertainty map (0..1)."),
    two_d: bool = typer.Option(False, "--2d", help="Require a model working per 2-D slice."),
    adapt_priors: bool = typer.Option(None, "--adapt-priors/--no-adapt-priors",
                                      help=_ADAPT_HELP + " Default: the model's setting."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Segment an image with a saved model (any kind: forest, CNN)."""
    from electrode_ct.io import read, write
    from electrode_ct.segment.models import load_model

    m = load_model(model)
    mode = getattr(getattr(m, "config", None), "mode", None)
    if two_d and mode == "3d":
        raise ModelError(f"{model}: --2d given but the model was trained with 3-D features")
    vol = read(image, voxel_size=voxel_size(voxel))
    extra = {}
    if adapt_priors is not None:  # forest: adapt_priors; CNN: its priors option
        extra = ({"priors": "em" if adapt_priors else "none"} if getattr(m, "kind", None) == "cnn"
                 else {"adapt_priors": adapt_priors})
    t0 = time.perf_counter()
    pred = m.predict(vol, probabilities=probabilities is not None,
                     uncertainty=uncertainty is not None,
                     progress=lambda it: progress(it, desc="predict"), **extra)
    dt = time.perf_counter() - t0
    cmap = dict(zip(m.class_names, m.class_values, strict=True))
    labels = pred.labels[0] if vol.is_2d else pred.labels
    write(vol.with_data(labels).with_class_map(cmap), out)
    written = {"labels": str(out)}
    if probabilities is not None and pred.probabilities is not None:
        p = pred.probabilities[:, 0] if vol.is_2d else pred.probabilities
        write(vol.with_data(p.reshape(-1, *p.shape[-2:]), class_names=m.class_names),
              probabilities)
        written["probabilities"] = str(probabilities)
    if uncertainty is not None and pred.uncertainty is not None:
        u = pred.uncertainty[0] if vol.is_2d else pred.uncertainty
        write(vol.with_data(u), uncertainty)
        written["uncertainty"] = str(uncertainty)
    counts = np.bincount(pred.labels.ravel(), minlength=max(m.class_values) + 1)
    fractions = {n: float(counts[v]) / pred.labels.size for n, v in cmap.items()}
    summary = {"outputs": written, "class_map": cmap, "volume_fraction": fractions,
               "time_s": dt, "mvoxel_per_s": pred.labels.size / dt / 1e6,
               "kind": getattr(m, "kind", None)}
    if pred.uncertainty is not None:
        summary["mean_uncertainty"] = float(pred.uncertainty.mean())
    if getattr(m, "last_range", None) is not None:
        summary["intensity_range"] = [float(v) for v in m.last_range]
    if getattr(m, "last_priors", None) and (adapt_priors or getattr(m, "adapt_priors", False)):
        summary["priors"] = dict(zip(m.class_names, m.last_priors["estimated"], strict=True))
    if as_json:
        emit_json(summary)
        return
    say(f"wrote {out}: " + ", ".join(f"{k} {100 * f:.2f} %" for k, f in fractions.items()))


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
    from electrode_ct.io import read, write
    from electrode_ct.segment.scribbles import coverage_of, scribble_class_map, simulate_scribbles

    vol = read(ref)
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
