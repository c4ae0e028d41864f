"""CLI commands ``ect segment train-forest`` and ``ect scribbles``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

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
from electrode_ct.errors import ConfigError, InputError

_FEATURES_HELP = ("Feature set: default | full | minimal, or filter:σ items, e.g. "
                  "'gaussian:0.7,ggm:1.6,hge:3.5' (filters: gaussian log ggm dog ste hge std).")
_TWO_D_HELP = "Compute features per 2-D z slice (required for single 2-D images)."


@segment_app.command("train-forest")
def train_forest_cmd(
    image: str = typer.Argument(..., help="Grey image or volume."),
    scribbles: str = typer.Argument(None, help="Labels of the same shape: 0 unlabelled, "
                                    "1..K (optional with --seeded)."),
    more: list[str] = typer.Argument(None, help="Further labelled slices: IMAGE SCRIBBLES "
                                     "pairs of the same (y, x) size (trained with 2-D "
                                     "features on the stack; not with --seeded / --add)."),
    model: Path = typer.Option(..., "--model", help="Output model file (any name)."),
    add: list[str] = typer.Option(None, "--add", help="Further strokes (same shape) drawn "
                                  "over the scribbles: the correction loop; repeatable."),
    seeded: str = typer.Option(None, "--seeded", help="Threshold-seeded training labels "
                               "(Bailey et al.): ML1 | ML2 | ML3; scribbles and --add are "
                               "drawn over them."),
    seed_thresholds: str = typer.Option(
        "multiotsu", "--seed-thresholds", help="Cut values of the seeds: grey levels "
        "'85,160', or a method: multiotsu (classes: --class-names, else 3) | otsu | li | "
        "triangle."),
    seed_slices: str = typer.Option(
        None, "--seed-slices", help="Slices with seeds: central | first (the paper's ML1) | "
        "all | N equally spaced (6: the paper's ML2, 7: ours) | z indices; default the "
        "variant's (ML1 central, ML2 7, ML3 all)."),
    seed_margin: float = typer.Option(None, "--seed-margin", help="Grey levels a seed "
                                      "keeps from every cut (default a quarter of the "
                                      "smallest gap)."),
    labels_out: Path = typer.Option(None, "--labels-out", help="Write the training labels "
                                    "used (seeds, scribbles and added strokes merged)."),
    next_regions: Path = typer.Option(
        None, "--next-regions", help="Where to label next, from the model's uncertainty on "
        "the image: a points table (.csv/.parquet: z, y, x, rank) or a volume (windows "
        "painted with their rank)."),
    next_n: int = typer.Option(5, "--next-n", help="Regions to label next."),
    next_size: int = typer.Option(32, "--next-size", help="Edge (voxels) of each region."),
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
    from electrode_ct.cli._forest_labels import SeedOptions, next_regions_out
    from electrode_ct.segment.features import parse_features
    from electrode_ct.segment.forest_train import train_forest

    names = [n.strip() for n in class_names.split(",")] if class_names else None
    if names is not None and (not all(names) or len(set(names)) != len(names)):
        raise InputError(f"--class-names: expected distinct non-empty names, got {class_names!r}")
    seeds = SeedOptions(seeded, seed_thresholds, seed_slices, seed_margin, names)
    img, lab, labels_info, two_d = _labelled(image, scribbles, more or [], add or [], seeds,
                                             voxel, two_d)
    mode = "2d" if (two_d or img.shape[0] == 1) else "3d"
    cfg = parse_features(features, mode=mode, normalise=normalise)
    info(f"training on {image} with {cfg.n_features} features ({mode})")
    t0 = time.perf_counter()
    m = train_forest(img, lab, features=cfg, class_names=names, n_trees=trees,
                     balance=not no_balance,
                     max_depth=max_depth or None, augment=augment, seed=seed)
    m.report["train_time_s"] = time.perf_counter() - t0
    m.report["inputs"] = {"image": image, "scribbles": scribbles, "add": list(add or []),
                          "more": list(more or [])}
    m.report["training_labels"] = labels_info
    if labels_out is not None:
        from electrode_ct.io import write

        write(img.with_data(lab[0] if img.is_2d else lab).with_class_map(
            dict(zip(m.class_names, m.class_values, strict=True))), labels_out)
    regions = (next_regions_out(m, img, next_regions, n=next_n, size=next_size)
               if next_regions is not None else None)
    m.save(model)
    summary = {"model": str(model), "class_names": m.class_names,
               "class_values": m.class_values, "feature_config": m.config.to_dict(),
               "oob_accuracy": m.report["oob_accuracy"], "n_samples": m.report["n_samples"],
               "feature_importance": m.report["feature_importance"],
               "train_time_s": m.report["train_time_s"], "training_labels": labels_info,
               **({"next_regions": regions} if regions is not None else {})}
    if as_json:
        emit_json(summary)
        return
    say(f"wrote {model}: classes {dict(zip(m.class_names, m.class_values, strict=True))}, "
        f"out-of-bag accuracy {100 * m.report['oob_accuracy']:.2f} %")
    top = list(m.report["feature_importance"].items())[:5]
    say("  most important: " + ", ".join(f"{k} {v:.3f}" for k, v in top))
    if regions is not None:
        say(f"  regions to label next: {regions['output']} (" + "; ".join(
            f"z {r['z']} y {r['y']} x {r['x']}" for r in regions["regions"]) + ")")


def _labelled(image: str, scribbles: str | None, more: list[str], add: list[str],
              seeds: Any, voxel: str | None, two_d: bool
              ) -> tuple[Any, Any, dict[str, Any], bool]:
    """Grey image, training labels, their description and the 2-D flag: several IMAGE
    SCRIBBLES pairs stacked, or one image with seeds, scribbles and added strokes."""
    from electrode_ct.cli._forest_labels import training_labels

    if not more:
        img = read_input(image, voxel=voxel).compute()
        lab, labels_info = training_labels(img, scribbles, add, seeds)
        return img, lab, labels_info, two_d
    if seeds.variant is not None or add:
        raise InputError("train-forest: several IMAGE SCRIBBLES pairs cannot be combined with "
                         "--seeded or --add (one image only)")
    if scribbles is None:
        raise InputError("SCRIBBLES: expected a scribbles file before further IMAGE "
                         "SCRIBBLES pairs")
    img, lab, two_d = _training_inputs([image, scribbles, *more], voxel, two_d)
    return img, lab.numpy(), {"sources": [scribbles, *more[1::2]]}, two_d


def _training_inputs(paths: list[str], voxel: str | None,
                     two_d: bool) -> tuple[Any, Any, bool]:
    """The grey image and scribbles to train on: one pair, or several stacked along z.

    Several IMAGE SCRIBBLES pairs must share one (y, x) size; they are trained with 2-D
    features (a 3-D volume among them needs ``--2d``).
    """
    from electrode_ct.segment.forest_train import stack_slices

    if len(paths) % 2:
        raise InputError(f"train-forest: expected IMAGE SCRIBBLES pairs, got {len(paths)} "
                         f"paths (the last, {paths[-1]!r}, has no partner)")
    imgs = [read_input(p, voxel=voxel) for p in paths[0::2]]
    labs = [read_input(p, role="labels") for p in paths[1::2]]
    if len(imgs) == 1:
        return imgs[0].compute(), labs[0], two_d
    if not two_d and any(v.shape[0] > 1 for v in imgs):
        raise ConfigError(f"{paths[0]}: several labelled volumes are stacked along z; "
                          "expected 2-D images or --2d")
    img, lab = stack_slices(imgs, labs)
    return img, lab, True


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
