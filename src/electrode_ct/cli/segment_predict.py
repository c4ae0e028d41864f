"""CLI command ``ect segment predict``: segment an image with a saved model of any kind."""

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
    progress,
    read_input,
    say,
)
from electrode_ct.cli._compute import BLOCKS, MEMORY, N_WORKERS, SCHEDULER, THREADS
from electrode_ct.cli.app import segment_app
from electrode_ct.errors import InputError


@segment_app.command("predict")
def predict_cmd(
    model: Path = typer.Argument(..., help="Model file (forest or CNN)."),
    image: str = typer.Argument(..., help="Grey image or volume."),
    out: Path = typer.Argument(..., help="Output labels (the model's class values, uint8)."),
    probabilities: Path = typer.Option(None, "--probabilities",
                                       help="Also write per-class probabilities (K,z,y,x)."),
    uncertainty: Path = typer.Option(None, "--uncertainty",
                                     help="Also write the entropy uncertainty map (0..1)."),
    boundary: Path = typer.Option(None, "--boundary",
                                  help="A particles-cnn model: also write the tri-planar "
                                  "boundary probability (0..1) for 'ect particles --method "
                                  "boundary --boundary'."),
    two_d: bool = typer.Option(False, "--2d",
                               help="Segment every z slice on its own (a forest must have "
                                    "been trained with --2d)."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    scheduler: str = SCHEDULER, n_workers: int = N_WORKERS,
    threads_per_worker: int = THREADS, memory_limit: str = MEMORY, block_shape: str = BLOCKS,
) -> None:
    """Segment an image with a saved model (any kind: forest, CNN)."""
    from electrode_ct.cli._common import check_input
    from electrode_ct.cli._compute import compute_config, use_engine
    from electrode_ct.segment.models import load_model

    m = load_model(model)
    vol = read_input(image, voxel=voxel, lazy=True)
    cfg, explicit = compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                                   block_shape)
    cmap = dict(zip(m.class_names, m.class_values, strict=True))
    paths = {"labels": out, "probabilities": probabilities, "uncertainty": uncertainty}
    if boundary is not None and m.kind != "particles-cnn":
        raise InputError(f"--boundary: {model} is a {m.kind!r} model; the boundary map comes "
                         "from a particles-cnn model ('ect particles train')")
    t0 = time.perf_counter()
    if use_engine(cfg, vol.nbytes, explicit=explicit):
        if boundary is not None:
            raise InputError("--boundary: written in memory only; give no compute options")
        summary = _predict_on_engine(m, vol, image, paths, cmap, cfg, two_d, model)
    else:
        from electrode_ct.cli._engine import in_memory

        vol = in_memory(vol)
        check_input(vol, image, "grey")
        pred = m.predict(vol, probabilities=probabilities is not None or boundary is not None,
                         uncertainty=uncertainty is not None, two_d=two_d,
                         progress=lambda it: progress(it, desc="predict"))
        written = _write_outputs(vol, pred, cmap, m.class_names, paths)
        if boundary is not None:
            written["boundary"] = _write_boundary(vol, pred, m, boundary)
        counts = np.bincount(pred.labels.ravel(), minlength=max(m.class_values) + 1)
        summary = {"outputs": written,
                   "volume_fraction": {n: float(counts[v]) / pred.labels.size
                                       for n, v in cmap.items()}}
        if pred.uncertainty is not None:
            summary["mean_uncertainty"] = float(pred.uncertainty.mean())
        if pred.intensity_range is not None:
            summary["intensity_range"] = [float(v) for v in pred.intensity_range]
    dt = time.perf_counter() - t0
    fractions = summary.pop("volume_fraction")
    summary = {"outputs": summary.pop("outputs"), "class_map": cmap,
               "volume_fraction": fractions, "time_s": dt,
               "mvoxel_per_s": int(np.prod(vol.shape)) / dt / 1e6, "kind": m.kind, **summary}
    if as_json:
        emit_json(summary)
        return
    say(f"wrote {out}: " + ", ".join(f"{k} {100 * f:.2f} %" for k, f in fractions.items()))


def _predict_on_engine(m: Any, vol: Any, image: str, paths: dict[str, Path | None],
                       cmap: dict[str, int], cfg: Any, two_d: bool,
                       model: Path) -> dict[str, Any]:
    """Prediction on the block engine into OME-Zarr outputs (then OUT's formats)."""
    from electrode_ct.cli._compute import session
    from electrode_ct.cli._engine import (
        EngineJob,
        bar,
        label_fractions,
        mean_value,
        plan_blocks,
        refuse_2d,
    )
    from electrode_ct.segment.blockwise import slab_shape
    from electrode_ct.segment.blockwise_predict import predict_blockwise, prediction_plan

    refuse_2d(vol, "prediction")
    if hasattr(m, "check_image"):
        m.check_image(vol)
    halo, bpv, axis = prediction_plan(m, vol.shape, two_d=two_d)
    blocks = plan_blocks(cfg, vol.shape, halo, bpv)
    blocks = slab_shape(vol.shape, blocks, axis) if axis is not None else blocks
    with session(cfg, vol.nbytes, explicit=True) as client:
        job = EngineJob.start(vol, image, paths["labels"], cfg, client, {
            "command": "segment predict", "model": _file_identity(model), "two_d": two_d,
            "blocks": blocks, "outputs": sorted(k for k, p in paths.items() if p)})
        source = job.source()
        refs = {"labels": job.target(vol, np.uint8, blocks, class_map=cmap)}
        if paths["probabilities"] is not None:
            refs["probabilities"] = job.output(paths["probabilities"], dtype=np.float32,
                                               chunks=blocks, lead=(len(cmap),),
                                               lead_axes=("c",),
                                               class_names=list(m.class_names))
        if paths["uncertainty"] is not None:
            refs["uncertainty"] = job.output(paths["uncertainty"], dtype=np.float32,
                                             chunks=blocks)
        info = predict_blockwise(m, source, refs["labels"],
                                 probabilities=refs.get("probabilities"),
                                 uncertainty=refs.get("uncertainty"), two_d=two_d,
                                 block_shape=blocks, client=client, progress=bar("predict"))
        info["volume_fraction"] = label_fractions(refs["labels"], cmap, block_shape=blocks,
                                                  client=client)
        if "uncertainty" in refs:
            info["mean_uncertainty"] = mean_value(refs["uncertainty"], block_shape=blocks,
                                                  client=client)
        job.finish(refs["labels"])
    info["outputs"] = {k: str(paths[k]) for k in refs}
    info.pop("block_shape", None)
    return info


def _file_identity(path: Path) -> list[Any]:
    """A model file's identity for the work folder's key (path, size, modification time)."""
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _write_boundary(vol: Any, pred: Any, m: Any, path: Path) -> str:
    """Write an instance model's boundary probability (float32, 0..1)."""
    from electrode_ct.io import write

    bnd = pred.probabilities[m.class_index("boundary")]
    write(vol.with_data(bnd[0] if vol.is_2d else bnd).with_class_map(None), path)
    return str(path)


def _write_outputs(vol: Any, pred: Any, cmap: dict[str, int], class_names: list[str],
                   paths: dict[str, Path | None]) -> dict[str, str]:
    """Write the labels and the requested maps (a 2-D image gives 2-D files)."""
    from electrode_ct.io import write

    def plane(a: np.ndarray) -> np.ndarray:  # drop the z axis of a single 2-D image
        return a[..., 0, :, :] if vol.is_2d else a

    write(vol.with_data(plane(pred.labels)).with_class_map(cmap), paths["labels"])
    written = {"labels": str(paths["labels"])}
    if paths["probabilities"] is not None and pred.probabilities is not None:
        p = plane(pred.probabilities)
        write(vol.with_data(p.reshape(-1, *p.shape[-2:]), class_names=class_names),
              paths["probabilities"])
        written["probabilities"] = str(paths["probabilities"])
    if paths["uncertainty"] is not None and pred.uncertainty is not None:
        write(vol.with_data(plane(pred.uncertainty)), paths["uncertainty"])
        written["uncertainty"] = str(paths["uncertainty"])
    return written
