"""CLI commands ``ect segment train-cnn`` and ``ect segment ensemble`` (no science in here).

Prediction with a trained CNN goes through ``ect segment predict MODEL IMAGE OUT``, which
dispatches on the model kind.
"""

from __future__ import annotations

import warnings
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
from electrode_ct.cli.app import segment_app
from electrode_ct.errors import InputError

_VAL_HELP = ("Validation IMAGE and LABELS (two paths): scored every epoch; chooses the input "
             "normalisation (and the kept weights with --keep best).")


def _read_pair(image: str, labels: str, voxel: str | None = None) -> tuple[Any, np.ndarray,
                                                                          np.ndarray]:

    vol = read_input(image, voxel=voxel)
    lab = read_input(labels, role="labels")
    img_a, lab_a = vol.numpy(), lab.numpy()
    if img_a.shape != lab_a.shape:
        raise InputError(f"{labels}: labels of shape {lab_a.shape} do not match the image "
                         f"{image} of shape {img_a.shape}")
    if vol.is_2d:
        img_a, lab_a = img_a[0], lab_a[0]
    return vol, img_a, lab_a


def _val_pair(val: tuple[str, str] | None, val_image: str | None,
              val_labels: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    if val and val[0] is not None:
        val_image, val_labels = val
    if (val_image is None) != (val_labels is None):
        raise InputError("--val-image and --val-labels: give both (or --val IMAGE LABELS)")
    if val_image is None:
        return None
    _, img, lab = _read_pair(val_image, val_labels)  # type: ignore[arg-type]
    return img, lab


def _config(**kw: Any) -> Any:
    from electrode_ct.segment.cnn.config import TrainConfig

    return TrainConfig(**{k: v for k, v in kw.items() if v is not None})


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _train_with_warnings(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    for w in caught:
        info(f"warning: {w.message}")
    return result


def _check_val(val_arg: tuple[str, str] | None, val_labels: str | None,
               valpair: tuple[np.ndarray, np.ndarray] | None, lab: np.ndarray,
               compare_forest: bool) -> None:
    """Bad input of ``--val`` / ``--compare-forest``, before anything is trained."""
    from electrode_ct.segment.cnn.versus_forest import check_validation_classes

    if valpair is None:
        if compare_forest:
            raise InputError("--compare-forest: needs validation labels to score the CNN and "
                             "the forest on; give --val IMAGE LABELS")
        return
    name = val_arg[1] if val_arg and val_arg[0] is not None else val_labels
    check_validation_classes(lab, valpair[1], name=str(name))


def _forest_comparison(res: Any, img: np.ndarray, lab: np.ndarray,
                       valpair: tuple[np.ndarray, np.ndarray], seed: int,
                       two_d: bool) -> dict[str, Any]:
    """``--compare-forest``: a forest on the same labels, both scored on ``--val``; stored
    in the model's training record and printed (a warning when the CNN does not win)."""
    from electrode_ct.segment.cnn.versus_forest import compare_with_forest

    cmp = compare_with_forest(res.model, img, lab, valpair, seed=seed, two_d=two_d,
                              class_names=res.model.class_names)
    res.model.training["forest_comparison"] = cmp
    info(f"validation mean IoU: CNN {cmp['cnn_val_mean_iou']:.4f}, forest on the same labels "
         f"{cmp['forest_val_mean_iou']:.4f}")
    if cmp["warning"]:
        info(f"warning: {cmp['warning']}")
    return cmp


def _report_epoch(rec: dict[str, float]) -> None:
    """One progress line per epoch (stderr)."""
    val_iou = rec.get("val_mean_iou", float("nan"))
    shown = "" if val_iou != val_iou else f", val mIoU {val_iou:.4f}"  # NaN: no --val
    info(f"epoch {int(rec['epoch'])}: loss {rec['loss']:.4f}{shown}, lr {rec['lr']:.2e}, "
         f"{rec['seconds']:.1f} s")


def _train_summary(res: Any, model: Path) -> dict[str, Any]:
    """The ``train-cnn --json`` object of a :class:`~.train.TrainResult` saved as ``model``."""
    return {"model": str(model), "arch": res.model.arch, "class_values":
            res.model.class_values, "class_names": res.model.class_names,
            "epochs_run": len(res.history), "best_epoch": res.best_epoch,
            "best_val_mean_iou": res.model.training.get("best_val_mean_iou"),
            "stopped_early": res.stopped_early, "collapsed": res.collapsed,
            "wall_s": res.wall_s, "cpu_s": res.cpu_s, "history": res.history}


@segment_app.command("train-cnn")
def train_cnn_cmd(
    image: str = typer.Argument(..., help="Grey image or volume to train on."),
    labels: str = typer.Argument(..., help="Training labels: 0 = unlabelled, 1..K = classes."),
    model: Path = typer.Option(..., "--model", help="Output model file (any name)."),
    arch: str = typer.Option("unet", "--arch", help="unet | lrcs."),
    val: tuple[str, str] | None = typer.Option(None, "--val", help=_VAL_HELP),
    val_image: str = typer.Option(None, "--val-image", help="Validation image (with "
                                  "--val-labels), same as --val IMAGE LABELS."),
    val_labels: str = typer.Option(None, "--val-labels", help="Validation labels."),
    epochs: int = typer.Option(None, "--epochs", help="Maximum epochs [20]."),
    patch: int = typer.Option(None, "--patch", help="Patch edge in pixels [96]."),
    patches_per_epoch: int = typer.Option(None, "--patches-per-epoch",
                                          help="Patches per epoch [256]."),
    batch_size: int = typer.Option(None, "--batch-size", help="Patches per step [8]."),
    lr: float = typer.Option(None, "--lr", help="Initial learning rate [2e-3]."),
    schedule: str = typer.Option(None, "--schedule", help="cosine | step | constant."),
    channels: int = typer.Option(None, "--channels", help="Base channels (unet 16, lrcs 8)."),
    depth: int = typer.Option(None, "--depth", help="Pooling levels [3]."),
    kernel: int = typer.Option(None, "--kernel", help="Kernel size (unet 3, lrcs 5)."),
    members: int = typer.Option(None, "--members", help="Networks trained with seeds SEED, "
                                "SEED+1, ... whose probabilities are averaged [3]."),
    transforms: int = typer.Option(None, "--tta", help="Test-time augmentation stored as the "
                                   "model's prediction default: rotations/flips averaged "
                                   "(1-8) [1]."),
    ema: float = typer.Option(None, "--ema", help="Exponential moving average of the weights: "
                              "per-step decay (0-1, 0 = off; at most a third of the planned "
                              "steps); the averaged weights are validated and kept [0.995]."),
    normalisation: str = typer.Option(None, "--normalisation", help="Input normalisation: "
                                      "auto (image, or the training slice's statistics for "
                                      "every input if that validates better on --val) | image "
                                      "| fixed [auto]."),
    keep: str = typer.Option(None, "--keep", help="Weights kept per network: last (the final, "
                             "averaged ones) | best (those of the best validation epoch) "
                             "[last]."),
    init: Path = typer.Option(None, "--init", help="Start from this trained model (fine-tune)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda."),
    two_d: bool = typer.Option(False, "--2d", help="Treat a volume as independent 2-D slices "
                               "(z-slices only; slice-wise prediction)."),
    class_names: str = typer.Option(None, "--class-names", help="Names of classes 1..K, "
                                    "comma-separated."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch [2]."),
    time_limit: float = typer.Option(None, "--time-limit", help="Stop training after this "
                                     "many seconds."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    compare_forest: bool = typer.Option(False, "--compare-forest", help="Also train a "
                                        "forest on the same labels and score both on --val "
                                        "(needs --val); flags a CNN that does not beat it."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train a CNN (LRCS-Net or U-Net) from labelled slices and save it as MODEL."""
    from electrode_ct.segment.cnn._torch import resolve_device
    from electrode_ct.segment.cnn.train import train

    resolve_device(device)
    cfg = _config(arch=arch, epochs=epochs, patch=patch, patches_per_epoch=patches_per_epoch,
                  batch_size=batch_size, lr=lr, schedule=schedule, channels=channels,
                  depth=depth, kernel=kernel, device=device, seed=seed, threads=threads,
                  time_limit_s=time_limit, members=members, transforms=transforms, ema=ema,
                  keep=keep, normalisation=normalisation)
    _, img, lab = _read_pair(image, labels, voxel)
    valpair = _val_pair(val, val_image, val_labels)
    _check_val(val, val_labels, valpair, lab, compare_forest)
    res = _train_with_warnings(train, img, lab, config=cfg, val=valpair,
                               init=str(init) if init else None,
                               class_names=_names(class_names), slices_2d=two_d,
                               callback=_report_epoch)
    res.model.training["inputs"] = {"image": image, "labels": labels}
    cmp = _forest_comparison(res, img, lab, valpair, seed, two_d) if compare_forest else None
    res.model.save(model)
    if as_json:
        emit_json({**_train_summary(res, model),
                   **({"forest_comparison": cmp} if cmp else {})})
        return
    say(f"wrote {model}: {res.model.arch['name']}, {len(res.history)} epochs (best "
        f"{res.best_epoch}), {res.wall_s:.0f} s")


@segment_app.command("ensemble")
def ensemble_cmd(
    image: str = typer.Argument(..., help="Grey image or volume."),
    labels: str = typer.Argument(..., help="Training labels: 0 = unlabelled, 1..K."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    n: int = typer.Option(5, "--n", help="Ensemble members."),
    fraction: float = typer.Option(0.1, "--fraction", help="Interface voxels moved per "
                                   "perturbation round (0-1]."),
    iterations: int = typer.Option(5, "--iterations", help="Perturbation rounds."),
    arch: str = typer.Option("unet", "--arch", help="unet | lrcs."),
    val: tuple[str, str] | None = typer.Option(None, "--val", help=_VAL_HELP),
    val_image: str = typer.Option(None, "--val-image", help="Validation image."),
    val_labels: str = typer.Option(None, "--val-labels", help="Validation labels."),
    epochs: int = typer.Option(None, "--epochs", help="Maximum epochs per member [20]."),
    patch: int = typer.Option(None, "--patch", help="Patch edge in pixels [96]."),
    patches_per_epoch: int = typer.Option(None, "--patches-per-epoch",
                                          help="Patches per epoch [256]."),
    channels: int = typer.Option(None, "--channels", help="Base channels."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda."),
    two_d: bool = typer.Option(False, "--2d", help="Independent 2-D slices (2-D "
                               "perturbation, slice-wise prediction)."),
    class_names: str = typer.Option(None, "--class-names", help="Names of classes 1..K."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    frequency_n: int = typer.Option(20, "--frequency-n", help="Perturbations for the "
                                    "interface-frequency map."),
    predict: str = typer.Option(None, "--predict", help="A grey volume the members segment: "
                                "mean ± std over members of its phase fractions, surface "
                                "areas and interface voxel % per phase pair."),
    test_image: list[str] = typer.Option(None, "--test-image", help="Labelled test image "
                                         "(repeatable, paired with --test-labels in order): "
                                         "IoU ± std over members."),
    test_labels: list[str] = typer.Option(None, "--test-labels", help="Expert labels of "
                                          "each --test-image."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train N models on perturbed labels; write the spread of their results to DIR."""
    from electrode_ct.cli import _ensemble_predict as ep
    from electrode_ct.io import write, write_json, write_table
    from electrode_ct.provenance import record
    from electrode_ct.segment.cnn._torch import resolve_device
    from electrode_ct.segment.cnn.ensemble import train_ensemble
    from electrode_ct.segment.cnn.perturb import interface_frequency

    if n < 2:  # before anything is read or written
        raise InputError(f"--n: expected at least 2 ensemble members (one member has no "
                         f"spread to report), got {n}")
    resolve_device(device)
    cfg = _config(arch=arch, epochs=epochs, patch=patch, patches_per_epoch=patches_per_epoch,
                  channels=channels, device=device, seed=seed, members=1)
    vol, img, lab = _read_pair(image, labels, voxel)
    valpair = _val_pair(val, val_image, val_labels)
    tests = ep.read_tests(ep.paired_tests(test_image, test_labels), voxel)
    target = read_input(predict, voxel=voxel) if predict else None
    out.mkdir(parents=True, exist_ok=True)
    res = _train_with_warnings(
        train_ensemble, img, lab, n=n, config=cfg, fraction=fraction, iterations=iterations,
        val=valpair, slices_2d=two_d, class_names=_names(class_names), spacing=vol.spacing,
        seed=seed, callback=lambda i, r: info(f"member {i + 1}/{n}: {len(r.history)} epochs"),
    )
    for i, m in enumerate(res.models):
        m.save(out / f"member_{i:02d}.model")
    cmap = {name: v for name, v in zip(res.models[0].class_names, res.models[0].class_values,
                                        strict=True)}
    write(vol.with_data(res.labels).with_class_map(cmap), out / "segmentation.tif")
    write(vol.with_data(res.disagreement), out / "disagreement.tif")
    freq = interface_frequency(lab, n=frequency_n, fraction=fraction, iterations=iterations,
                               mode="2d" if two_d else "auto", seed=seed)
    write(vol.with_data(freq.reshape(vol.shape)), out / "interface_frequency.tif")
    params = {"n": n, "fraction": fraction, "iterations": iterations, "arch": arch,
              "epochs": cfg.epochs, "seed": seed, "2d": two_d}
    prov = record(command="segment ensemble", inputs={"image": image, "labels": labels},
                  parameters=params, seed=seed)
    write_table(res.members, out / "members.parquet", metadata=prov, csv=True)
    write_table(res.summary, out / "summary.parquet", metadata=prov, csv=True)
    summary = {"out": str(out), "n": n, "class_map": cmap,
               "summary": res.summary.to_dict(orient="records"), "provenance": prov}
    summary.update(_applied(res.models, cmap, out, target=target, tests=tests, two_d=two_d,
                            spacing=vol.spacing, inputs=(predict, test_image)))
    write_json(summary, out / "ensemble.json")
    if as_json:
        emit_json(summary)
        return
    for row in res.summary.itertuples():
        say(f"{row.class_name}: volume fraction {row.volume_fraction_mean:.4f} ± "
            f"{row.volume_fraction_std:.4f}, IoU {row.iou_mean:.3f} ± {row.iou_std:.3f}")
    ep.say_spread(summary, say)
    say(f"wrote {out}")


def _applied(models: list[Any], cmap: dict[str, int], out: Path, *, target: Any,
             tests: list[Any], two_d: bool, spacing: Any, inputs: tuple[Any, Any]
             ) -> dict[str, Any]:
    """The ``predicted`` and ``test`` keys of ``ensemble.json`` (the members applied)."""
    from electrode_ct.cli import _ensemble_predict as ep

    extra: dict[str, Any] = {}
    if target is not None:
        extra["predicted"] = {"input": inputs[0], **ep.predicted_outputs(
            models, target.compute(), cmap, out, two_d=two_d)}
    if tests:
        extra["test"] = {"inputs": list(inputs[1]), **ep.scored_tests(models, tests, cmap, out,
                                                                      spacing=spacing)}
    return extra
