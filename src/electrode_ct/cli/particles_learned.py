"""CLI of the learned particle instance model: ``ect particles train`` and the
``--method learned`` branch of ``ect particles``.

``ect particles train GREY LABELS --model M`` is the command ``particles-train`` (the
argument normaliser turns ``particles train`` into it, :mod:`electrode_ct.cli._argv`), so
that ``ect particles PHASES OUT`` keeps its positional arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from electrode_ct.cli._common import JSON_HELP, VOXEL_SIZE_HELP, emit_json, info, say
from electrode_ct.cli.app import app


@app.command("particles-train", hidden=True)
def particles_train_cmd(
    grey: str = typer.Argument(..., help="Grey volume."),
    labels: str = typer.Argument(..., help="Instance labels of the same shape (one id per "
                                 "particle, 0 = background)."),
    model: Path = typer.Option(..., "--model", help="Output model file (particles-cnn)."),
    val: tuple[str, str] | None = typer.Option(
        None, "--val", help="Validation GREY and LABELS (two paths), scored every epoch."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs [12]."),
    patches_per_epoch: int = typer.Option(None, "--patches-per-epoch",
                                          help="Patches per epoch [128]."),
    channels: int = typer.Option(None, "--channels", help="U-Net base channels [8]."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch [2]."),
    time_limit: float = typer.Option(None, "--time-limit", help="Stop training after this "
                                     "many seconds."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Train a particle instance model (background / interior / boundary) from instance
    labels; use it with ``ect particles GREY OUT --method learned --model M``."""
    from dataclasses import replace

    from electrode_ct.cli.segment_cnn import (
        _read_pair,
        _report_epoch,
        _train_summary,
        _train_with_warnings,
    )
    from electrode_ct.segment.cnn._torch import resolve_device
    from electrode_ct.segment.cnn.instances import INSTANCE_CONFIG, train_instances

    resolve_device(device)
    given = {"epochs": epochs, "patches_per_epoch": patches_per_epoch, "channels": channels,
             "threads": threads, "time_limit_s": time_limit}
    cfg = replace(INSTANCE_CONFIG, seed=seed, device=device,
                  **{k: v for k, v in given.items() if v is not None})
    cfg.check()
    vol, img, lab = _read_pair(grey, labels, voxel)
    valpair = None
    if val and val[0] is not None:
        _, vimg, vlab = _read_pair(val[0], val[1])
        valpair = (vimg, vlab)
    res = _train_with_warnings(train_instances, img, lab, config=cfg, val=valpair,
                               callback=_report_epoch)
    res.model.training["inputs"] = {"grey": grey, "labels": labels}
    res.model.training["spacing_um"] = [float(s) for s in vol.spacing]
    res.model.save(model)
    if as_json:
        emit_json({**_train_summary(res, model), "kind": res.model.kind})
        return
    say(f"wrote {model}: particles-cnn, {len(res.history)} epochs, {res.wall_s:.0f} s")


def separate_learned_cli(grey: str, out: Path, *, model: Path | None, phases: str | None,
                         phase: str | None, voxel: str | None, h: float | None,
                         min_volume: float, compactness: float) -> tuple[Any, Any, dict]:
    """``ect particles GREY OUT --method learned``: read, separate; (labels, volume, meta).

    Raises
    ------
    ShapeError
        ``--phases`` of another shape than GREY.
    """
    from electrode_ct.cli._common import read_input
    from electrode_ct.particles.learned import resolve_model, separate_learned

    net = resolve_model(None if model is None else str(model))  # a wrong file fails first
    vol = read_input(grey, voxel=voxel)
    cut = None
    if phases is not None:
        ph = read_input(phases, role="probability")
        cut = ph.numpy()
        if phase is None and ph.class_map and "active" in ph.class_map:
            phase = "active"
        if phase is not None and ph.class_map:
            from electrode_ct.volume import resolve_phase

            phase = resolve_phase(phase, ph.class_map, where="--phase")
    info(f"separating particles of {grey} (learned, {model or 'shipped model'})")
    sep = separate_learned(vol.numpy(), net, phases=cut,
                           phase=_phase_value(phase), spacing=vol.spacing, h=h,
                           min_volume_um3=min_volume, compactness=compactness)
    meta = {"model": str(model) if model else "shipped", "phases": phases}
    return sep, vol, meta


def _phase_value(phase: Any) -> Any:
    """A ``--phase`` given as digits is a label value."""
    return int(phase) if isinstance(phase, str) and phase.isdigit() else phase
