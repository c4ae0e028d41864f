"""CLI commands ``ect segment search-cnn`` (hyper-parameter search with repeats),
``ect segment curves`` (a trained CNN's learning curves) and ``ect segment
interface-positions`` (histogram and FWHM of interface positions); no science in here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from electrode_ct.cli._common import JSON_HELP, emit_json, info, say
from electrode_ct.cli.app import segment_app
from electrode_ct.errors import InputError


def parse_space(items: list[str] | None) -> dict[str, list[Any]]:
    """``--space name=v1,v2`` options as ``{name: [v1, v2]}`` (ints, floats, true/false or
    words)."""
    if not items:
        raise InputError("--space: give at least one parameter and its values, e.g. "
                         "--space lr=1e-3,3e-3 --space channels=8,16")
    space: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name.strip() or not vals:
            raise InputError(f"--space {item!r}: expected NAME=V1,V2,... (e.g. lr=1e-3,3e-3)")
        space[name.strip()] = [_value(v) for v in vals]
    return space


def _value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@segment_app.command("search-cnn")
def search_cnn_cmd(
    image: str = typer.Argument(..., help="Grey image or volume to train on."),
    labels: str = typer.Argument(..., help="Training labels: 0 = unlabelled, 1..K."),
    val: tuple[str, str] = typer.Option(..., "--val", help="Validation IMAGE and LABELS: the "
                                        "ranking criterion (validation mean IoU)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    space: list[str] = typer.Option(None, "--space", help="NAME=V1,V2,... (repeatable): "
                                    "training parameter and the values tried."),
    repeats: int = typer.Option(3, "--repeats", help="Trainings per combination (seeds SEED, "
                                "SEED+1, ...): mean ± std over them."),
    strategy: str = typer.Option("grid", "--strategy", help="grid | random."),
    trials: int = typer.Option(8, "--trials", help="Combinations drawn by --strategy random."),
    arch: str = typer.Option("unet", "--arch", help="unet | lrcs."),
    epochs: int = typer.Option(None, "--epochs", help="Maximum epochs per training [20]."),
    patch: int = typer.Option(None, "--patch", help="Patch edge in pixels [96]."),
    patches_per_epoch: int = typer.Option(None, "--patches-per-epoch",
                                          help="Patches per epoch [256]."),
    channels: int = typer.Option(None, "--channels", help="Base channels."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first repeat and the draws."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch [2]."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Hyper-parameter search ranked by validation mean IoU (mean ± std over repeats)."""
    from electrode_ct.cli.segment_cnn import _config, _read_pair, _train_with_warnings, _val_pair
    from electrode_ct.segment.cnn._torch import resolve_device
    from electrode_ct.segment.cnn.search import search

    grid = parse_space(space)
    if repeats < 1:
        raise InputError(f"--repeats: expected at least 1 training per combination, got "
                         f"{repeats}")
    resolve_device(device)
    cfg = _config(arch=arch, epochs=epochs, patch=patch, patches_per_epoch=patches_per_epoch,
                  channels=channels, device=device, seed=seed, threads=threads, members=1)
    _, img, lab = _read_pair(image, labels)
    valpair = _val_pair(val, None, None)
    rows: list[dict[str, Any]] = []
    table = _train_with_warnings(
        search, img, lab, val=valpair, space=grid, config=cfg, strategy=strategy,
        n_trials=trials, seed=seed, repeats=repeats, trials=rows,
        callback=lambda r: info(f"trial {len(rows)}: " + ", ".join(
            f"{k}={r[k]}" for k in grid) + f", seed {r['seed']}: val mIoU "
            f"{r['val_mean_iou']:.4f}"))
    summary = write_search(table, rows, list(grid), out, inputs={"image": image,
                                                                 "labels": labels},
                            params={"space": grid, "repeats": repeats, "strategy": strategy,
                                    "seed": seed})
    if as_json:
        emit_json(summary)
        return
    best = summary["ranked"][0]
    say(f"best: {', '.join(f'{k}={best[k]}' for k in grid)}: val mean IoU "
        f"{best['val_mean_iou']:.4f} ± {best['val_mean_iou_std'] or 0:.4f} "
        f"({best['repeats']} repeats); wrote {out}")


def write_search(table: Any, rows: list[dict[str, Any]], keys: list[str], out: Path, *,
                  inputs: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """Write a search's results to ``out``: search.parquet/.csv (ranked), trials.parquet/.csv,
    search.png and search.json (what ``steps.segment.search`` reads); returns the JSON."""
    import pandas as pd

    from electrode_ct.io import write_json, write_table
    from electrode_ct.io.tables import clean_json
    from electrode_ct.provenance import record
    from electrode_ct.report.segmentpy import save_png, search_figure

    out.mkdir(parents=True, exist_ok=True)
    trials = pd.DataFrame([{k: v for k, v in r.items() if k != "history"} for r in rows])
    prov = record(command="segment search-cnn", inputs=inputs, parameters=params,
                  seed=params["seed"])
    write_table(table, out / "search.parquet", metadata=prov, csv=True)
    write_table(trials, out / "trials.parquet", metadata=prov, csv=True)
    save_png(search_figure(table, trials, keys), out / "search.png")
    summary = clean_json({"out": str(out), "parameters": keys,
                          "ranked": table.to_dict(orient="records"),
                          "trials": rows,
                          "provenance": prov})
    write_json(summary, out / "search.json")
    return summary


@segment_app.command("curves")
def curves_cmd(
    model: str = typer.Argument(..., help="A trained CNN model file."),
    out: Path = typer.Option(None, "--out", help="Write the learning-curve plot (PNG)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Learning curves of a trained CNN: training and validation loss and IoU per epoch."""
    from electrode_ct.segment.models import read_header

    head = read_header(model)
    if head.get("kind") != "cnn":
        raise InputError(f"{model}: expected a 'cnn' model, got kind {head.get('kind')!r}")
    history = (head.get("training") or {}).get("history")
    if not history:
        raise InputError(f"{model}: the model has no learning curves (trained before they "
                         "were recorded); retrain it with `ect segment train-cnn`")
    if out is not None:
        from electrode_ct.report.segmentpy import learning_curves_figure, save_png

        save_png(learning_curves_figure(history, title=Path(model).name), out)
    if as_json:
        emit_json({"model": model, "plot": str(out) if out else None, "history": history})
        return
    last = history[-1]
    say(f"{len(history)} epochs; last: training loss {last.get('train_loss')}, validation "
        f"loss {last.get('val_loss')}, validation mean IoU {last.get('val_mean_iou')}"
        + (f"; wrote {out}" if out else ""))


@segment_app.command("interface-positions")
def interface_positions_cmd(
    reference: str = typer.Argument(..., help="Reference phase labels (e.g. expert labels)."),
    segs: list[str] = typer.Argument(..., help="Segmentation(s) whose interfaces are placed "
                                     "(pooled, e.g. ensemble members or users)."),
    two_d: bool = typer.Option(False, "--2d", help="Independent z-slices."),
    bin_um: float = typer.Option(None, "--bin-um", help="Bin width, µm [half the smallest "
                                 "voxel edge]."),
    range_um: float = typer.Option(None, "--range-um", help="Half-range of the histogram, µm "
                                   "[10 voxels]."),
    plot: Path = typer.Option(None, "--plot", help="Write the histograms (PNG)."),
    voxel: str = typer.Option(None, "--voxel-size", help="Voxel size (µm): one value or Z Y X."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Interface-position histogram and FWHM of segmentations against a reference, per pair."""
    from electrode_ct.cli._common import read_input
    from electrode_ct.metrics.interface_position import pair_histograms

    ref = read_input(reference, role="labels", voxel=voxel)
    arrays = []
    for path in segs:
        seg = read_input(path, role="labels")
        if seg.shape != ref.shape:
            raise InputError(f"{path}: segmentation of shape {seg.shape} does not match the "
                             f"reference {reference} of shape {ref.shape}")
        arrays.append(seg.numpy())
    cmap = ref.class_map or {str(int(v)): int(v) for v in np.unique(ref.numpy())}
    hists = pair_histograms(arrays, ref.numpy(), cmap, spacing=ref.spacing, two_d=two_d,
                            bin_um=bin_um, range_um=range_um)
    if plot is not None:
        from electrode_ct.report.segmentpy import interface_position_figure, save_png

        save_png(interface_position_figure(hists, title=f"against {Path(reference).name}"),
                 plot)
    if as_json:
        emit_json({"reference": reference, "segmentations": segs, "class_map": cmap,
                   "interface_position": hists, "plot": str(plot) if plot else None})
        return
    for pair, h in hists.items():
        say(f"{pair}: {h['n_faces']} faces, mean {h['mean_um']} µm, FWHM {h['fwhm_um']} µm")
