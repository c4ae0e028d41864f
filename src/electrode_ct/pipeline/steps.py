"""The pipeline steps: each reads earlier outputs from the run folder and writes its own.

Steps only compose library functions; no science lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from electrode_ct.errors import ConfigError
from electrode_ct.filters import check_image
from electrode_ct.io import read, read_table, write, write_table
from electrode_ct.stats import TRACKING_KEY
from electrode_ct.volume import Volume, resolve_phase

if TYPE_CHECKING:
    from pathlib import Path

    from electrode_ct.pipeline.runner import Run

from electrode_ct.pipeline.runner import StepResult


# -- inputs --------------------------------------------------------------------------------
def n_states(run: Run) -> int:
    """Number of inputs (states of charge): grey volumes, else phase volumes."""
    return len(run.cfg.input.grey) or len(run.cfg.input.phases or [])


def reference_state(run: Run) -> int:
    """Index of the reference state (``input.reference_state``), used by every step."""
    return int(run.cfg.input.reference_state)


def has_grey(run: Run) -> bool:
    """True when grey volumes were given (grey-level measurements possible)."""
    return bool(run.cfg.input.grey)


def grey_input(run: Run, i: int) -> Volume:
    """State ``i`` of the grey input, cropped as configured (cached)."""
    key = f"grey_input_{i}"
    if key not in run.cache:
        inp = run.cfg.input
        vol = read(inp.grey[i], voxel_size=inp.voxel_size).compute()
        check_image(vol.numpy(), name=inp.grey[i])  # the error names the file
        run.cache[key] = _crop(run, vol)
    return run.cache[key]


def _crop(run: Run, vol: Volume) -> Volume:
    roi = run.cfg.input.crop
    if not roi:
        return vol
    from electrode_ct.filters import crop_window

    unknown = set(roi) - {"z", "y", "x"}
    if unknown:
        raise ConfigError(f"input.crop: unknown axis {sorted(unknown)}; use z, y, x")
    window, _ = crop_window(vol.shape, **{k: tuple(v) for k, v in roi.items()})  # type: ignore[arg-type]
    data = vol.data[window]  # a lazy volume stays lazy: only the region is read
    return vol.with_data(data.copy() if isinstance(data, np.ndarray) else data)


def _ext(run: Run) -> str:
    return ".ome.zarr" if run.cfg.volume_format == "ome-zarr" else ".tif"


def load(run: Run, step: str, name: str) -> Volume:
    """Read an output volume of an earlier step (cached)."""
    key = f"{step}:{name}"
    if key not in run.cache:
        run.cache[key] = read(run.output(step, name)).compute()
    return run.cache[key]


def grey(run: Run, i: int) -> Volume:
    """The (filtered, when the filter step ran) grey volume of state ``i``."""
    if "filter" in run.results:
        return load(run, "filter", f"grey_{i}")
    return grey_input(run, i)


def phases(run: Run, i: int) -> Volume:
    """The phase volume of state ``i`` (segmented or given)."""
    if "segment" in run.results:
        return load(run, "segment", f"phases_{i}")
    key = f"phases_input_{i}"
    if key not in run.cache:
        run.cache[key] = _phases_lazy(run, i).compute()
    return run.cache[key]


def _save(run: Run, vol: Volume, rel: str) -> str:
    write(vol, run.path(rel))
    return rel


# -- steps ---------------------------------------------------------------------------------
def step_filter(run: Run) -> StepResult:
    """Denoise every state (block by block on the engine for large inputs)."""
    from electrode_ct import filters
    from electrode_ct.pipeline.compute import engine

    p = run.cfg.steps.filter
    opts, in_um = _filter_options(p)
    outputs = {}
    for i in range(n_states(run)):
        rel = f"volumes/grey_filtered_{i}{_ext(run)}"
        inp = run.cfg.input
        lazy = _crop(run, read(inp.grey[i], lazy=True, voxel_size=inp.voxel_size))
        if engine(run).use_engine(lazy.nbytes):
            _filter_engine(run, lazy, i, rel, p.method, opts, in_um)
            outputs[f"grey_{i}"] = rel
            continue
        vol = grey_input(run, i)
        arr = vol.numpy().astype(np.float32)
        out = filters.apply_filter(arr, p.method, spacing=vol.spacing, in_um=in_um, **opts)
        outputs[f"grey_{i}"] = _save(run, vol.with_data(out.astype(np.float32)), rel)
    return StepResult(outputs, {"method": p.method})


def _filter_options(p: Any) -> tuple[dict[str, Any], bool]:
    """The filter's options from the config, and whether its lengths are in µm."""
    if p.method == "gaussian":
        opts: dict[str, Any] = {"sigma": p.sigma_um if p.sigma_um is not None else p.sigma}
    elif p.method == "median":
        opts = {"size": p.size}
    elif p.method == "unsharp":
        opts = {"radius": p.sigma}
    else:
        opts = {}
    return opts, p.method == "gaussian" and p.sigma_um is not None


def _filter_engine(run: Run, vol: Volume, i: int, rel: str, method: str,
                   opts: dict[str, Any], in_um: bool) -> None:
    """One state's filter as block tasks on the run's client (float32 output, as the
    in-memory step), written to ``rel`` (moved into place when OME-Zarr)."""
    import shutil

    from electrode_ct.compute.engine import ZarrRef
    from electrode_ct.filters import blockwise as fb
    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.pipeline.compute import codec_for, engine, publish

    eng = engine(run)
    if vol.dtype == np.float64:  # the in-memory step filters float32
        vol = vol.with_data(vol.data.astype(np.float32))
    halo = fb.filter_halo(method, vol.shape, spacing=vol.spacing, in_um=in_um, **opts)
    slab = method in ("rings", "nlm")
    blocks = eng.block_shape(vol.shape, halo=halo, bytes_per_voxel=fb.BYTES_PER_VOXEL[method],
                             slab=slab)
    src = eng.zarr_input(vol, f"grey_{i}")
    work = eng.work / f"grey_filtered_{i}.{run.keys['filter'][:12]}.ome.zarr"
    chunks = (blocks[0], *eng.block_shape(vol.shape)[1:]) if slab else blocks
    dst = (ZarrRef(str(work), "0") if work.exists()  # an interrupted run's store: resumed
           else create_ome_zarr(work, vol, dtype=np.float32, chunks=chunks,
                                compression=codec_for(np.float32)))
    fb.filter_blockwise(src, dst, method, spacing=vol.spacing, in_um=in_um,
                        block_shape=blocks, client=eng.client(),
                        progress=eng.progress(f"filter {i}"), memory_limit=eng.memory_limit,
                        **opts)
    publish(dst, run.path(rel))
    if src.path.startswith(str(eng.work)):
        shutil.rmtree(src.path, ignore_errors=True)


def _segment_one(run: Run, vol: Volume, model: Any) -> tuple[np.ndarray, dict[str, int], dict]:
    p = run.cfg.steps.segment
    arr = vol.numpy()
    info: dict[str, Any] = {"method": p.method, "two_d": p.two_d}
    if p.method == "threshold":
        return (*_threshold(arr, p, info), info)
    from electrode_ct.segment.classes import class_map

    if p.method == "watershed":
        from electrode_ct.segment.watershed import seeded_watershed

        labels = seeded_watershed(arr, low=p.low, high=p.high, two_d=p.two_d)
        info["thresholds"] = [p.low, p.high]
        return labels, class_map(int(labels.max()) + 1), info
    if p.method == "kmeans":
        from electrode_ct.segment.kmeans import kmeans

        n = p.classes or 3
        planes = list(arr) if p.two_d and arr.ndim == 3 else [arr]
        labels = np.stack([kmeans(a, classes=n, seed=run.cfg.seed) for a in planes])
        return labels.reshape(arr.shape), class_map(n), info
    pred = model.predict(vol, **({"two_d": True} if p.two_d else {}))
    names = list(model.class_names)
    values = [int(v) for v in model.class_values]
    return pred.labels, dict(zip(names, values, strict=True)), info


def _threshold_options(p: Any) -> dict[str, Any]:
    return {"method": p.threshold_method, "classes": p.classes, "thresholds": p.thresholds,
            "fractions": p.fractions}


def _threshold(arr: np.ndarray, p: Any, info: dict[str, Any]
               ) -> tuple[np.ndarray, dict[str, int]]:
    """``segment.threshold.threshold_with_cuts`` with the configured options; cut values
    into info."""
    from electrode_ct.segment.classes import class_map
    from electrode_ct.segment.threshold import phase_count, threshold_with_cuts

    kw = _threshold_options(p)
    labels, cuts = threshold_with_cuts(arr, two_d=p.two_d, **kw)
    _record_cuts(info, cuts, per_slice=p.two_d and arr.ndim == 3)
    return labels, class_map(phase_count(**kw))


def _record_cuts(info: dict[str, Any], cuts: np.ndarray, *, per_slice: bool) -> None:
    info["thresholds" if not per_slice else "thresholds_per_slice"] = np.asarray(cuts).tolist()


def _no_engine_form(p: Any) -> str | None:
    """Why the configured segmentation has no blockwise form (None when it has one)."""
    if p.cleanup_min_island_um3 > 0:
        return "cleanup_min_island_um3 reads connected components over the whole volume"
    if p.method == "watershed":
        return "the seeded watershed floods regions that can cross the whole volume"
    if p.method == "cnn" and not p.two_d:
        return "tri-planar CNN prediction reads whole planes along every axis"
    if p.method == "kmeans" and p.two_d:
        return "per-slice k-means fits every slice on its own"
    if p.method == "threshold" and p.threshold_method == "hysteresis" and not p.two_d:
        return "3-D hysteresis labels by connectivity across the volume"
    return None


def _engine_plan(p: Any, model: Any, vol: Volume
                 ) -> tuple[tuple[int, int, int], float, int | None, dict[str, int]]:
    """Halo, bytes per voxel, the axis of whole-plane blocks (or None) and class map of
    the segment step on the engine."""
    from electrode_ct.segment import kmeans as km
    from electrode_ct.segment.blockwise_predict import prediction_plan
    from electrode_ct.segment.classes import class_map
    from electrode_ct.segment.threshold import phase_count

    if p.method == "threshold":
        from electrode_ct.segment.blockwise import threshold_bytes_per_voxel as bpv

        return ((0, 0, 0), bpv(vol.dtype), 0 if p.two_d else None,
                class_map(phase_count(**_threshold_options(p))))
    if p.method == "kmeans":
        return (km.halo(1.0),) * 3, km.BYTES_PER_VOXEL, None, class_map(p.classes or 3)
    cmap = dict(zip(model.class_names, (int(v) for v in model.class_values), strict=True))
    return (*prediction_plan(model, vol.shape, two_d=p.two_d), cmap)


def _segment_on_engine(run: Run, i: int, vol: Volume, model: Any
                       ) -> tuple[str, dict[str, int], dict[str, Any]]:
    """State ``i`` segmented block by block on the run's Dask client into its file."""
    import shutil

    from electrode_ct.io.zarr import create_ome_zarr
    from electrode_ct.pipeline.compute import engine, publish
    from electrode_ct.segment import blockwise as bw
    from electrode_ct.segment.blockwise_predict import predict_blockwise

    p = run.cfg.steps.segment
    halo, bpv, axis, cmap = _engine_plan(p, model, vol)
    eng = engine(run)
    blocks = eng.block_shape(vol.shape, halo=halo, bytes_per_voxel=bpv)
    blocks = bw.slab_shape(vol.shape, blocks, axis) if axis is not None else blocks
    src = eng.zarr_input(vol, f"grey_{i}")
    rel = f"volumes/phases_{i}{_ext(run)}"
    direct = rel.endswith(".zarr")
    path = run.path(rel if direct else f"work/phases_{i}.ome.zarr")
    dst = create_ome_zarr(path, vol, dtype=np.uint8, chunks=blocks, class_map=cmap)
    kw = {"block_shape": blocks, "client": eng.client(), "progress": eng.progress("segment")}
    info: dict[str, Any] = {"method": p.method, "two_d": p.two_d, "engine": True}
    if p.method == "threshold":
        cuts = bw.threshold_blockwise(src, dst, two_d=p.two_d, **_threshold_options(p), **kw)
        _record_cuts(info, cuts, per_slice=p.two_d)
    elif p.method == "kmeans":
        bw.kmeans_blockwise(src, dst, classes=p.classes or 3, seed=run.cfg.seed, **kw)
    else:
        predict_blockwise(model, src, dst, two_d=p.two_d, **kw)
    counts = bw.label_counts(dst, **kw)
    info["volume_fraction"] = {k: float(counts[v] / counts.sum()) for k, v in cmap.items()}
    if not direct:
        publish(dst, run.path(rel))
    if src.path.startswith(str(eng.work)):
        shutil.rmtree(src.path, ignore_errors=True)
    return rel, cmap, info


def _trained_model(run: Run) -> Any:
    p = run.cfg.steps.segment
    if p.method not in ("forest", "cnn"):
        return None
    from electrode_ct.segment.models import load_model

    if p.model:
        return load_model(p.model)
    from electrode_ct.pipeline.forest_labels import next_regions_table, training_labels
    from electrode_ct.segment.forest_train import train_forest

    image = grey(run, reference_state(run))  # scribbles are drawn on the reference state
    scribbles, info = training_labels(run, image)
    model = train_forest(image.numpy(), scribbles, class_names=p.class_names,
                         n_trees=p.trees, seed=run.cfg.seed, spacing=image.spacing)
    model.report["training_labels"] = info
    next_regions_table(run, model, image)
    model.save(run.path("models/forest.ectmodel"))
    return model


def step_segment(run: Run) -> StepResult:
    """Phase segmentation of every state (on the compute engine for large volumes)."""
    from electrode_ct.pipeline.compute import engine

    model = _trained_model(run)
    outputs: dict[str, str] = {}
    summary: dict[str, Any] = {}
    trained = {} if run.cfg.steps.segment.model else getattr(model, "report", None) or {}
    for key in ("training_labels", "next_regions"):  # a forest trained by this run
        if key in trained:
            summary[key] = trained[key]
    if "next_regions" in summary:
        outputs["next_regions"] = summary["next_regions"]["output"]
    if run.cfg.steps.segment.compare_forest:
        from electrode_ct.segment.cnn.versus_forest import stored_comparison

        summary["forest_comparison"] = stored_comparison(model, run.cfg.steps.segment.model)
    first: Volume | None = None  # the reference state's phases
    for i in range(n_states(run)):
        vol = grey(run, i)
        on_engine = engine(run).use_engine(vol.nbytes)
        why_not = _no_engine_form(run.cfg.steps.segment) if on_engine else None
        if why_not:
            run.log.info("segment: in memory (%s)", why_not)
        elif on_engine:
            outputs[f"phases_{i}"], cmap, info = _segment_on_engine(run, i, vol, model)
            info["class_map"] = cmap
            summary[f"state_{i}"] = info
            if i == reference_state(run):
                first = read(run.path(outputs[f"phases_{i}"])).with_class_map(cmap)
            continue
        labels, cmap, info = _segment_one(run, vol, model)
        if run.cfg.steps.segment.cleanup_min_island_um3 > 0:
            from electrode_ct.segment.cleanup import remove_islands

            labels = remove_islands(labels, spacing=vol.spacing,
                                    min_volume_um3=run.cfg.steps.segment.cleanup_min_island_um3)
        out = vol.with_data(labels.astype(np.uint8)).with_class_map(cmap)
        first = out if i == reference_state(run) else first
        outputs[f"phases_{i}"] = _save(run, out, f"volumes/phases_{i}{_ext(run)}")
        counts = np.bincount(labels.ravel(), minlength=max(cmap.values()) + 1)
        info["volume_fraction"] = {k: float(counts[v] / labels.size) for k, v in cmap.items()}
        info["class_map"] = cmap
        summary[f"state_{i}"] = info
    if run.cfg.input.reference:
        from electrode_ct.metrics import compare

        ref = _crop(run, read(run.cfg.input.reference)).numpy()
        seg = first.numpy()
        if ref.shape == seg.shape:
            summary["quality"] = compare(seg, ref, ignore=run.cfg.input.reference_ignore,
                                         class_map=first.class_map)
        else:
            summary["quality_error"] = f"reference shape {ref.shape} != {seg.shape}"
    from electrode_ct.pipeline.segmentpy import segmentpy_summary

    summary.update(segmentpy_summary(run, model))  # CNN learning curves, ensemble spread
    return StepResult(outputs, summary)


def step_particles(run: Run) -> StepResult:
    """Particle separation of the reference state."""
    from electrode_ct.particles.separate import separate_particles
    from electrode_ct.pipeline.particles_engine import particles_on_engine

    rel = f"volumes/particles{_ext(run)}"
    p = run.cfg.steps.particles
    on_engine = None  # the model-driven methods run in memory
    if p.method == "distance":
        on_engine = particles_on_engine(run, reference_state(run), rel)
    if on_engine is not None:  # the compute section sends it to the block engine
        return StepResult({"particles": rel}, on_engine)
    ph = phases(run, reference_state(run))
    value = resolve_phase(p.phase, ph.class_map, where="steps.particles.phase")
    if p.method == "distance":
        sep = separate_particles(ph, phase=value, heal_cracks_um=p.heal_cracks_um, h=p.h,
                                 method=p.method, min_volume_um3=p.min_volume_um3)
    else:
        sep = _particles_with_model(run, ph, value, p)
    labels = sep.labels
    if p.remove_border:
        from electrode_ct.particles.cleanup import relabel_sequential, remove_border

        labels = relabel_sequential(remove_border(labels))
    vol = ph.with_data(labels.astype(np.uint32)).with_class_map(None)
    _save(run, vol, rel)
    summary = sep.summary()
    summary["n_particles"] = int(labels.max())
    return StepResult({"particles": rel}, summary)


def _particles_with_model(run: Run, ph: Volume, value: int, p: Any) -> Any:
    """``learned`` / ``boundary`` / ``triplanar``: the instance model on the grey state."""
    from electrode_ct.particles.learned import separate_with_model

    if not has_grey(run):
        raise ConfigError(f"steps.particles.method {p.method!r}: needs the grey volume "
                          "(input.grey); the instance model predicts from grey values")
    return separate_with_model(grey_input(run, reference_state(run)).numpy(), ph, method=p.method,
                               model=p.model, phase=value, spacing=ph.spacing,
                               heal_cracks_um=p.heal_cracks_um, h=p.h,
                               min_volume_um3=p.min_volume_um3)


def particle_labels(run: Run, i: int) -> Volume:
    """Particle labels of state ``i`` (tracked labels for operando runs)."""
    if "track" in run.results and f"labels_{i}" in run.results["track"].outputs:
        return load(run, "track", f"labels_{i}")
    return load(run, "particles", "particles")


def step_track(run: Run) -> StepResult:
    """Operando: register each state to the reference and propagate particle ids (states
    streamed one at a time, propagation in blocks, when the run's compute section puts the
    labels on the engine)."""
    from electrode_ct.operando import track
    from electrode_ct.pipeline.compute import engine

    ref = reference_state(run)
    lazy = read(run.output("particles", "particles"), lazy=True)
    on_engine = engine(run).use_engine(lazy.nbytes)
    cmap = (_phases_lazy(run, ref) if on_engine else phases(run, ref)).class_map
    phase_value = resolve_phase(run.cfg.steps.particles.phase, cmap,
                                where="steps.particles.phase")
    if on_engine:
        result, n_ref, clean = _track_engine(run, lazy, phase_value, ref)
        labels = lazy
    else:
        labels = load(run, "particles", "particles")
        greys = [grey_input(run, i).numpy() for i in range(n_states(run))]
        ph = [phases(run, i).numpy() for i in range(n_states(run))]
        result = track(labels.numpy(), greys, spacing=labels.spacing, reference=ref,
                       phases=ph, phase_value=phase_value,
                       exclude_layers=run.cfg.steps.measure.exclude_layers,
                       calibrate=_calibration_regions(run, cmap),
                       volume_tolerance=run.cfg.steps.track.volume_tolerance)
        n_ref, clean = int(labels.numpy().max()), None
    kept = list(set(int(v) for v in result.kept))
    outputs = {}
    for i, lab in enumerate(result.labels):  # one state at a time
        lab = np.where(np.isin(lab, kept), lab, 0).astype(np.uint32)
        outputs[f"labels_{i}"] = _save(run, labels.with_data(lab),
                                       f"volumes/labels_{i}{_ext(run)}")
    write_table(result.timeseries(), run.path("tables/timeseries.parquet"), csv=True,
                metadata={TRACKING_KEY: result.stamp()})
    if clean is not None:
        clean()
    outputs["timeseries"] = "tables/timeseries.parquet"
    return StepResult(outputs, {"registration": result.registration, "n_reference": n_ref,
                                "n_tracked": int(result.n_tracked),
                                "stamp": result.stamp()})


def _calibration_regions(run: Run, cmap: dict[str, int] | None) -> list[int | str]:
    """``steps.track.calibrate`` as phase values (or ``"background"``)."""
    return [r if r == "background" else resolve_phase(r, cmap, where="steps.track.calibrate")
            for r in run.cfg.steps.track.calibrate]


def _track_engine(run: Run, labels: Volume, phase_value: int | None, ref: int
                  ) -> tuple[Any, int, Any]:
    """:func:`~electrode_ct.operando.stream.track_streamed` on the run's client: the
    result, the number of reference particles and the clean-up of the working copies."""
    import shutil

    from electrode_ct.cracks.blockwise import label_boxes_blocks, reach
    from electrode_ct.operando.stream import BYTES_PER_VOXEL, StreamPlan, track_streamed
    from electrode_ct.pipeline.compute import engine

    eng, inp, n = engine(run), run.cfg.input, n_states(run)
    work = eng.work / "track"
    lab = eng.zarr_input(labels, "labels_track")
    greys = [eng.zarr_input(_crop(run, read(inp.grey[i], lazy=True,
                                            voxel_size=inp.voxel_size)), f"grey_track_{i}")
             for i in range(n)]
    phs = [eng.zarr_input(_phases_lazy(run, i), f"phases_track_{i}") for i in range(n)]
    boxes = label_boxes_blocks(lab, block_shape=eng.block_shape(labels.shape),
                               client=eng.client(), progress=eng.progress("boxes"))
    ext = max(reach(boxes, margin=2))
    blocks = eng.block_shape(labels.shape, halo=(ext,) * 3, bytes_per_voxel=BYTES_PER_VOXEL)
    plan = StreamPlan(block_shape=blocks, halo=(ext,) * 3, client=eng.client(), work=work)
    result = track_streamed(lab, greys, spacing=labels.spacing, phases=phs,
                            phase_value=phase_value, reference=ref, plan=plan,
                            exclude_layers=run.cfg.steps.measure.exclude_layers,
                            calibrate=_calibration_regions(run, _phases_lazy(run, ref).class_map),
                            volume_tolerance=run.cfg.steps.track.volume_tolerance)

    def clean() -> None:  # working copies of the inputs and the states' label stores
        for r in [lab, *greys, *phs]:
            if r.path.startswith(str(eng.work)):
                shutil.rmtree(r.path, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    n_ref = int(boxes[:, 0].max()) if len(boxes) else 0
    return result, n_ref, clean


def step_measure(run: Run) -> StepResult:
    """Morphology + grey (GREAT2) tables: every tracked state, else the reference state."""
    from electrode_ct.measure import particle_table
    from electrode_ct.measure.psd import psd_summary
    from electrode_ct.measure.table import IN_MEMORY_FACTOR
    from electrode_ct.pipeline.compute import engine

    p = run.cfg.steps.measure
    stamp = run.summary("track").get("stamp") if "track" in run.results else None
    states = range(n_states(run)) if stamp else [reference_state(run)]
    outputs, summary = {}, {}
    for i in states:
        lazy = read(_labels_path(run, i), lazy=True)
        # labels (uint32) + grey (at most 4 bytes) in memory: twice the labels' bytes
        if engine(run).use_engine(2 * lazy.nbytes, IN_MEMORY_FACTOR):
            table, radial = _measure_engine(run, i, lazy)
        else:
            from electrode_ct.operando import apply_calibration

            lab = particle_labels(run, i)
            table, radial = particle_table(
                lab.numpy(), apply_calibration(grey_input(run, i).numpy(), _calibration(run, i))
                if has_grey(run) else None,
                spacing=lab.spacing, properties=p.properties, exclude_layers=p.exclude_layers)
        meta = {TRACKING_KEY: {**stamp, "state": i}} if stamp else None
        outputs[f"particles_{i}"] = str(write_table(
            table, run.path(f"tables/particles_{i}.parquet"), csv=True, metadata=meta
        ).relative_to(run.out))
        if p.radial and radial is not None:
            outputs[f"radial_{i}"] = str(write_table(
                radial, run.path(f"tables/radial_{i}.parquet"), metadata=meta
            ).relative_to(run.out))
        summary[f"state_{i}"] = {"n_particles": len(table),
                                 "size_distribution": psd_summary(table, p.bootstrap,
                                                                  run.cfg.seed)}
    return StepResult(outputs, summary)


def _calibration(run: Run, i: int) -> dict[str, Any] | None:
    """The track step's grey-level calibration of state ``i`` (None without one)."""
    reg = run.summary("track").get("registration") or []
    return reg[i].get("calibration") if i < len(reg) else None


def _labels_path(run: Run, i: int) -> Path:
    """The particle label volume of state ``i`` (tracked labels for operando runs)."""
    if "track" in run.results and f"labels_{i}" in run.results["track"].outputs:
        return run.output("track", f"labels_{i}")
    return run.output("particles", "particles")


def _measure_engine(run: Run, i: int, labels: Volume) -> tuple[Any, Any]:
    """The tables of state ``i`` from blocks on the run's client (inputs read lazily)."""
    from electrode_ct.measure.blockwise import MEASURE_BYTES_PER_VOXEL, measure_blockwise
    from electrode_ct.operando import apply_calibration
    from electrode_ct.pipeline.compute import engine

    p, eng = run.cfg.steps.measure, engine(run)
    grey = None
    if has_grey(run):
        inp = run.cfg.input
        g = _crop(run, read(inp.grey[i], lazy=True, voxel_size=inp.voxel_size))
        g = g.with_data(apply_calibration(g.data, _calibration(run, i)))  # lazy, per block
        grey = eng.zarr_input(g, f"grey_measure_{i}")
    blocks = eng.block_shape(labels.shape, bytes_per_voxel=MEASURE_BYTES_PER_VOXEL)
    refs = [eng.zarr_input(labels, f"labels_measure_{i}"), grey]
    try:
        return measure_blockwise(
            refs[0], grey, spacing=labels.spacing, properties=p.properties,
            exclude_layers=p.exclude_layers, block_shape=blocks, client=eng.client(),
            progress=eng.progress("measure"), memory_limit=eng.memory_limit)
    finally:  # working copies of the inputs only
        import shutil

        for ref in refs:
            if ref is not None and ref.path.startswith(str(eng.work)):
                shutil.rmtree(ref.path, ignore_errors=True)


def step_metrics(run: Run) -> StepResult:
    """Microstructure metrics of the reference phase volume (block by block on the engine
    for large inputs; tortuosity stays in memory)."""
    from electrode_ct.metrics.microstructure import microstructure_metrics

    p = run.cfg.steps.metrics
    opts = {"phase": p.phase, "tortuosity": p.tortuosity, "surface_method": p.surface_method,
            "tol": p.tol, "report": run.log.info, "subvolume_um": p.subvolume_um,
            "subvolumes": p.subvolumes}
    i = reference_state(run)
    cfg, lazy = run.cfg.compute, _phases_lazy(run, i)
    if not cfg.stays_in_memory(lazy.nbytes):
        result = _metrics_engine(run, lazy, opts)
    else:
        result = microstructure_metrics(phases(run, i), **opts)
    if p.image_quality and has_grey(run):
        from electrode_ct.pipeline.quality import image_quality_summary

        result["image_quality"] = image_quality_summary(run, i, lazy)
    from electrode_ct.io import write_json

    rel = "tables/metrics.json"
    write_json(result, run.path(rel))
    return StepResult({"metrics": rel}, result)


def _phases_lazy(run: Run, i: int) -> Volume:
    """The phase volume of state ``i``, lazily read (segmented or given, cropped)."""
    if "segment" in run.results:
        return read(run.output("segment", f"phases_{i}"), lazy=True)
    paths = run.cfg.input.phases or []
    if i >= len(paths):
        raise ConfigError(f"input.phases: no phase volume for state {i}")
    vol = _crop(run, read(paths[i], lazy=True, voxel_size=run.cfg.input.voxel_size))
    return vol.with_class_map(run.cfg.input.class_map) if run.cfg.input.class_map else vol


def _metrics_engine(run: Run, vol: Volume, opts: dict[str, Any]) -> dict[str, Any]:
    """The metrics as reductions over blocks on the run's client."""
    import shutil

    from electrode_ct.metrics.microstructure import (
        METRICS_BYTES_PER_VOXEL,
        microstructure_metrics_blockwise,
    )
    from electrode_ct.pipeline.compute import engine

    eng = engine(run)
    src = eng.zarr_input(vol, "phases_metrics")
    blocks = eng.block_shape(vol.shape, halo=(1, 1, 1), bytes_per_voxel=METRICS_BYTES_PER_VOXEL)
    try:
        return microstructure_metrics_blockwise(
            vol, src, block_shape=blocks, client=eng.client(), progress=eng.progress, **opts)
    finally:
        if src.path.startswith(str(eng.work)):
            shutil.rmtree(src.path, ignore_errors=True)


def step_cracks(run: Run) -> StepResult:
    """Per-particle flaw classification and 3-phase particles of every measured state."""
    from electrode_ct.cracks import classify

    p = run.cfg.steps.cracks
    outputs, summary = {}, {}
    for key in run.results["measure"].outputs:
        if not key.startswith("particles_"):
            continue
        i = int(key.split("_")[1])
        lab = particle_labels(run, i)
        res = classify(grey_input(run, i), lab, spacing=lab.spacing, model=p.model,
                       method=p.method, threshold=p.threshold, subvolume_um=p.subvolume_um,
                       truth=_cracks_truth(run, i, lab))
        outputs[f"cracks_{i}"] = str(write_table(
            res.table, run.path(f"tables/cracks_{i}.parquet"), csv=True).relative_to(run.out))
        outputs[f"particle_phases_{i}"] = _save(
            run, lab.with_data(res.phases).with_class_map({"exterior": 0, "solid": 1, "flaw": 2}),
            f"volumes/particle_phases_{i}{_ext(run)}")
        summary[f"state_{i}"] = res.summary
    return StepResult(outputs, summary)


def _cracks_truth(run: Run, i: int, lab: Volume) -> Any:
    """State ``i``'s reference table of steps.cracks.truth (None without one), mapped onto
    the run's particles through steps.cracks.truth_labels when given."""
    from electrode_ct.cracks.evaluate import reference_by_overlap

    p = run.cfg.steps.cracks
    if i >= len(p.truth):
        return None
    table = read_table(p.truth[i])
    if i >= len(p.truth_labels):
        return table
    ref = _crop(run, read(p.truth_labels[i]).compute())
    return reference_by_overlap(lab.numpy(), ref.numpy(), table,
                                name=f"steps.cracks.truth[{i}]")


def step_stats(run: Run) -> StepResult:
    """Population statistics (Ī, ΔĪ, SE, Z) per state and subset, versus the reference,
    within the size selection; mean radial profiles per state and subset."""
    import pandas as pd

    from electrode_ct.stats import parse_subsets, prepare_tables, summarise
    from electrode_ct.subsets import groupings, parse_size_subset, select_size, size_summary

    p = run.cfg.steps.stats
    keys = sorted((k for k in run.results["measure"].outputs if k.startswith("particles_")),
                  key=lambda k: int(k.split("_")[1]))
    states = [int(k.split("_")[1]) for k in keys]
    ref = states.index(reference_state(run))
    prep = prepare_tables([read_table(run.output("measure", k)) for k in keys],
                          keep_border=p.keep_border, names=keys)
    run.log.info("stats: %s; %s", prep.pairing_note, prep.border_note)
    size = parse_size_subset(p.size_subset, name="steps.stats.size_subset")
    prep.tables = select_size(prep.tables, size, reference=ref, paired=prep.paired, names=keys)
    col = _grey_column(prep.tables[ref], roi=p.roi)
    by = parse_subsets(p.by, name="steps.stats.by")
    pos = parse_subsets(p.position, name="steps.stats.position", axis=True)
    stats = pd.concat([summarise(prep.tables, column=col, reference=ref, subsets=sub,
                                 subset_name=name, paired=prep.paired)
                       for name, sub in groupings(prep.tables[ref], by=by, position=pos,
                                                  collector=p.collector)], ignore_index=True)
    stats["state"] = np.asarray(states)[stats["state"].to_numpy()]
    stats["subset"] = stats["subset"].astype(str)  # "all" beside bin numbers
    rel = str(write_table(stats, run.path("tables/stats.parquet"), csv=True).relative_to(run.out))
    outputs = {"stats": rel, **_stats_profiles(run, prep, states, ref, by, pos)}
    from electrode_ct.pipeline.great2 import great2_outputs  # conditions, paint, change map

    more, extra = great2_outputs(run, prep, states, ref, col)
    return StepResult({**outputs, **more}, {"column": col, "rows": len(stats),
                                            "reference_state": reference_state(run),
                                            **prep.summary(), **size_summary(size, prep.tables),
                                            **extra})


def _stats_profiles(run: Run, prep: Any, states: list[int], ref: int, by: Any,
                    pos: Any) -> dict[str, str]:
    """``radial_profiles``: the mean radial profile per state and subset (when every
    measured state has a radial table)."""
    from electrode_ct.subsets import radial_profiles

    outs = run.results["measure"].outputs
    if not all(f"radial_{i}" in outs for i in states):
        return {}
    prof = radial_profiles([read_table(run.output("measure", f"radial_{i}")) for i in states],
                           prep.tables, reference=ref, paired=prep.paired, by=by,
                           position=pos, collector=run.cfg.steps.stats.collector)
    prof["state"] = np.asarray(states)[prof["state"].to_numpy()]
    return {"radial_profiles": str(write_table(
        prof, run.path("tables/radial_profiles.parquet"), csv=True).relative_to(run.out))}


def _grey_column(table: Any, *, roi: bool) -> str:
    """``roi_mean`` when asked and most particles have a core, else ``grey_mean``."""
    if not roi or "roi_n" not in table or not len(table):
        return "grey_mean"
    # the ROI leaves out the outer layers; fall back when most particles are too small
    return "roi_mean" if float((table["roi_n"] > 0).mean()) >= 0.5 else "grey_mean"
