"""CLI commands ``ect cracks classify`` and ``ect cracks train`` (registered on cracks_app)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from electrode_ct.cli import _compute as co
from electrode_ct.cli._common import (
    JSON_HELP,
    VOXEL_SIZE_HELP,
    emit_json,
    info,
    read_input,
    say,
    voxel_size,
)
from electrode_ct.cli.app import cracks_app
from electrode_ct.errors import InputError

_AXES = {"z": 0, "y": 1, "x": 2}


def _read_pair(grey: str, labels: str, voxel: str | None):
    sp = voxel_size(voxel)
    g = read_input(grey, voxel=voxel)
    lab = read_input(labels, role="labels", voxel=voxel)
    return g, lab, (sp or g.spacing)


def _read_truth(path: str):
    from electrode_ct.io import read_table

    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such truth table (expected CSV or Parquet with 'label' "
                         "and 'flawed' or 'cracked')")
    return read_table(p)


def _method(text: str | None) -> str | None:
    if text is not None and text not in ("features", "cnn"):
        raise InputError(f"--method: expected features or cnn, got {text!r}")
    return text


def _check_min_slices(mdl, min_slices: int | None, slices: int | None) -> None:
    """``--min-slices`` against the model, before any work (one error line)."""
    if min_slices is None:
        return
    if mdl.method != "cnn":
        raise InputError("--min-slices: only the cnn method classifies slices")
    from electrode_ct.cracks.cnn_model import check_min_slices

    check_min_slices(min_slices, (slices or mdl.k) * len(mdl.axes))


@cracks_app.command("classify")
def classify_cmd(
    grey: str = typer.Argument(..., help="Grey volume."),
    labels: str = typer.Argument(..., help="Particle labels (uint, 0 = background)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    model: str = typer.Option(None, "--model", help="Cracks model (default: the shipped "
                              "features classifier; the shipped CNN with --method cnn)."),
    method: str = typer.Option(None, "--method", help="features | cnn (checked against the "
                               "model)."),
    slices: int = typer.Option(None, "--slices", help="CNN: slices per axis (default: the "
                               "model's, 10)."),
    slice_size: int = typer.Option(None, "--slice-size", help="CNN: slice side in pixels "
                                   "(must match the model)."),
    threshold: float = typer.Option(None, "--threshold", help="Flawed when score >= this "
                                    "(default: the model's rule; 0.4 for CNN models unless "
                                    "trained with the count rule)."),
    min_slices: int = typer.Option(None, "--min-slices", help="CNN: flawed when at least m "
                                   "slices are (instead of the threshold)."),
    truth: str = typer.Option(None, "--truth", help="Reference table (label + flawed/cracked): "
                              "adds AUC and a confusion matrix."),
    split: str = typer.Option("flawed", "--split", help="3-phase split of: flawed | all."),
    depth_axis: str = typer.Option("z", "--depth-axis", help="Axis of the depth profile."),
    depth_bins: int = typer.Option(5, "--depth-bins", help="Depth bins of the profile."),
    subvolume_um: float = typer.Option(
        None, "--subvolume-um", help="Edge (µm) of the sub-volumes whose spread of the % "
        "flawed gives percent_flawed_subvolumes (default: half the shortest extent)."),
    collector: str = typer.Option("z0", "--collector", help="Depth measured from z0 or z1."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    csv: bool = typer.Option(True, "--csv/--no-csv", help="Also write cracks.csv."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    scheduler: str = co.SCHEDULER, n_workers: int = co.N_WORKERS,
    threads_per_worker: int = co.THREADS, memory_limit: str = co.MEMORY,
    block_shape: str = co.BLOCKS,
) -> None:
    """Classify every particle as flawed or intact and split flawed ones into 3 phases
    (the 3-phase volume and crack rows block by block on Dask for large volumes or when a
    compute option is given; see docs/cracks.md)."""
    from electrode_ct.cracks import PHASES, classify_scan, load_cracks_model, prepare_scan
    from electrode_ct.io import write, write_json, write_table
    from electrode_ct.provenance import record

    method = _method(method)
    if depth_axis not in _AXES:
        raise InputError(f"--depth-axis: expected z, y or x, got {depth_axis!r}")
    if collector not in ("z0", "z1"):
        raise InputError(f"--collector: expected z0 or z1, got {collector!r}")
    cfg, explicit = co.compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                                      block_shape)
    if min_slices is not None and min_slices < 1:
        raise InputError(f"--min-slices: expected a number of flawed slices >= 1, got "
                         f"{min_slices}")
    ref = _read_truth(truth) if truth is not None else None
    g, lab, sp = _read_pair(grey, labels, voxel)
    from electrode_ct.cracks.spread import SUBVOLUME_OPTION
    from electrode_ct.metrics.spread import subvolume_grid

    subvolume_grid(g.shape, sp, subvolume_um, name=SUBVOLUME_OPTION)  # before the work
    mdl = load_cracks_model(model, method=method)
    _check_min_slices(mdl, min_slices, slices)
    info(f"classifying the particles of {labels} ({mdl.method})")
    prepare = partial(prepare_scan, g.numpy(), lab.numpy(), spacing=sp, grey_name=grey,
                      labels_name=labels)
    options = {"k": slices, "slice_size": slice_size, "threshold": threshold,
               "min_slices": min_slices, "truth": ref, "depth_axis": _AXES[depth_axis],
               "depth_bins": depth_bins, "collector_end": collector == "z1", "split": split,
               "subvolume_um": subvolume_um}
    params = {"model": model or "default", "method": mdl.method, "slices": slices,
              "threshold": threshold, "min_slices": min_slices, "split": split,
              "truth": truth}
    if co.use_engine(cfg, g.nbytes, explicit=explicit):
        from electrode_ct.cli._cracks_engine import classify_engine

        res = classify_engine(prepare, mdl, g, lab, (grey, labels), out, cfg, params,
                              **options)
    else:
        res = classify_scan(prepare(), mdl, **options)
    params["threshold"] = res.summary["threshold"]
    prov = record(command="cracks classify", inputs={"grey": grey, "labels": labels},
                  parameters=params)
    out.mkdir(parents=True, exist_ok=True)
    write_table(res.table, out / "cracks.parquet", metadata=prov, csv=csv)
    if res.phases is not None:
        write(g.with_data(res.phases).with_class_map(dict(PHASES)),
              out / "particle_phases.tif")
    summary = {**res.summary, "outputs": {"table": str(out / "cracks.parquet"),
                                          "phases": str(out / "particle_phases.tif")}}
    write_json({**summary, "provenance": prov}, out / "summary.json")
    if as_json:
        emit_json(summary)
        return
    line = (f"{summary['n_flawed']} of {summary['n_particles']} particles flawed "
            f"({summary['percent_flawed']:.1f} %"
            + (", 95 % Wilson interval [{:.1f}, {:.1f}] %".format(*summary["percent_flawed_ci95"])
               if summary.get("percent_flawed_ci95") else "") + ")")
    sub = summary["percent_flawed_subvolumes"]
    if sub["ci95"]:
        line += (", over {} sub-volumes of {:g} µm {:.1f} ± {:.1f} % [{:.1f}, {:.1f}]"
                 .format(sub["n"], sub["size_um"], sub["mean"], sub["std"], *sub["ci95"]))
    if "auc" in summary:
        line += f", AUC {summary['auc']:.3f}"
    say(f"wrote {out}: {line}")


@cracks_app.command("train")
def train_cmd(
    grey: str = typer.Argument(..., help="Grey volume."),
    labels: str = typer.Argument(..., help="Particle labels."),
    truth: str = typer.Argument(..., help="CSV/Parquet with label and flawed (0/1) or cracked."),
    model: Path = typer.Option(..., "--model", help="Output model file."),
    method: str = typer.Option("features", "--method", help="features | cnn"),
    slices: int = typer.Option(10, "--slices", help="CNN: slices per axis."),
    slice_size: int = typer.Option(128, "--slice-size", help="CNN: slice side in pixels."),
    axis: str = typer.Option("z", "--axis", help="CNN: slicing axis z, y, x or all."),
    epochs: int = typer.Option(30, "--epochs", help="CNN: maximum epochs."),
    estimator: str = typer.Option("logistic", "--estimator",
                                  help="features: logistic | boosting."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train a cracks model from labelled particles."""
    from electrode_ct.cracks import prepare_scan, train_cracks_model

    method = _method(method) or "features"
    ref = _read_truth(truth)
    g, lab, sp = _read_pair(grey, labels, voxel)
    scan = prepare_scan(g.numpy(), lab.numpy(), spacing=sp, grey_name=grey, labels_name=labels)
    cfg = None
    if method == "cnn":
        from electrode_ct.cracks.cnn_model import CNNConfig

        cfg = CNNConfig(epochs=epochs, seed=seed)
    info(f"training a {method} cracks model on {len(scan.ids)} particles")
    mdl = train_cracks_model(scan, ref, method=method, k=slices, axes=axis,
                             slice_size=slice_size, estimator=estimator, seed=seed,
                             cnn_config=cfg)
    mdl.save(model)
    summary = {"model": str(model), "method": method, "n_particles": int(len(scan.ids)),
               **{k: v for k, v in mdl.training.items() if k != "val_history"}}
    if as_json:
        emit_json(summary)
        return
    say(f"wrote {model}: {method} model trained on {summary['n_particles']} particles")
