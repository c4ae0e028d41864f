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
    from electrode_ct.filters import crop

    unknown = set(roi) - {"z", "y", "x"}
    if unknown:
        raise ConfigError(f"input.crop: unknown axis {sorted(unknown)}; use z, y, x")
    data, _ = crop(vol.numpy(), **{k: tuple(v) for k, v in roi.items()})  # type: ignore[arg-type]
    return vol.with_data(data)


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
        paths = run.cfg.input.phases or []
        if i >= len(paths):
            raise ConfigError(f"input.phases: no phase volume for state {i}")
        vol = _crop(run, read(paths[i], voxel_size=run.cfg.input.voxel_size).compute())
        if run.cfg.input.class_map:
            vol = vol.with_class_map(run.cfg.input.class_map)
        run.cache[key] = vol
    return run.cache[key]


def _save(run: Run, vol: Volume, rel: str) -> str:
    write(vol, run.path(rel))
    return rel


# -- steps ---------------------------------------------------------------------------------
def step_filter(run: Run) -> StepResult:
    """Denoise every state."""
    from electrode_ct import filters

    p = run.cfg.steps.filter
    outputs = {}
    for i in range(n_states(run)):
        vol = grey_input(run, i)
        arr = vol.numpy().astype(np.float32)
        if p.method == "gaussian":
            opts: dict[str, Any] = {"sigma": p.sigma_um if p.sigma_um is not None else p.sigma}
        elif p.method == "median":
            opts = {"size": p.size}
        elif p.method == "unsharp":
            opts = {"radius": p.sigma}
        else:
            opts = {}
        out = filters.apply_filter(arr, p.method, spacing=vol.spacing,
                                   in_um=p.method == "gaussian" and p.sigma_um is not None,
                                   **opts)
        outputs[f"grey_{i}"] = _save(run, vol.with_data(out.astype(np.float32)),
                                     f"volumes/grey_filtered_{i}{_ext(run)}")
    return StepResult(outputs, {"method": p.method})


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


def _threshold(arr: np.ndarray, p: Any, info: dict[str, Any]
               ) -> tuple[np.ndarray, dict[str, int]]:
    """``segment.threshold.threshold`` with the configured options; cut values into info."""
    from electrode_ct.segment.classes import class_map
    from electrode_ct.segment.threshold import slice_thresholds, threshold, threshold_values

    kw = {"method": p.threshold_method, "classes": p.classes, "thresholds": p.thresholds,
          "fractions": p.fractions}
    labels = threshold(arr, two_d=p.two_d, **kw)
    per_slice = p.two_d and arr.ndim == 3
    cuts = np.asarray(slice_thresholds(arr, **kw) if per_slice else threshold_values(arr, **kw))
    info["thresholds" if not per_slice else "thresholds_per_slice"] = cuts.tolist()
    n = 2 if p.threshold_method == "hysteresis" else int(cuts.shape[-1]) + 1
    return labels, class_map(n)


def _trained_model(run: Run) -> Any:
    p = run.cfg.steps.segment
    if p.method not in ("forest", "cnn"):
        return None
    from electrode_ct.segment.models import load_model

    if p.model:
        return load_model(p.model)
    from electrode_ct.segment.forest_train import train_forest

    scribbles = read(p.scribbles).numpy()
    image = grey(run, reference_state(run))  # scribbles are drawn on the reference state
    model = train_forest(image.numpy(), scribbles, class_names=p.class_names,
                         n_trees=p.trees, seed=run.cfg.seed, spacing=image.spacing)
    model.save(run.path("models/forest.ectmodel"))
    return model


def step_segment(run: Run) -> StepResult:
    """Phase segmentation of every state."""
    model = _trained_model(run)
    outputs: dict[str, str] = {}
    summary: dict[str, Any] = {}
    first: Volume | None = None  # the reference state's phases
    for i in range(n_states(run)):
        vol = grey(run, i)
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
    return StepResult(outputs, summary)


def step_particles(run: Run) -> StepResult:
    """Particle separation of the reference state."""
    from electrode_ct.particles.separate import separate_particles

    p = run.cfg.steps.particles
    ph = phases(run, reference_state(run))
    sep = separate_particles(
        ph, phase=resolve_phase(p.phase, ph.class_map, where="steps.particles.phase"),
        heal_cracks_um=p.heal_cracks_um, h=p.h, method=p.method,
        min_volume_um3=p.min_volume_um3,
    )
    labels = sep.labels
    if p.remove_border:
        from electrode_ct.particles.cleanup import relabel_sequential, remove_border

        labels = relabel_sequential(remove_border(labels))
    vol = ph.with_data(labels.astype(np.uint32)).with_class_map(None)
    rel = _save(run, vol, f"volumes/particles{_ext(run)}")
    summary = sep.summary()
    summary["n_particles"] = int(labels.max())
    return StepResult({"particles": rel}, summary)


def particle_labels(run: Run, i: int) -> Volume:
    """Particle labels of state ``i`` (tracked labels for operando runs)."""
    if "track" in run.results and f"labels_{i}" in run.results["track"].outputs:
        return load(run, "track", f"labels_{i}")
    return load(run, "particles", "particles")


def step_track(run: Run) -> StepResult:
    """Operando: register each state to the reference and propagate particle ids."""
    from electrode_ct.operando import track

    ref = reference_state(run)
    labels = load(run, "particles", "particles")
    greys = [grey_input(run, i).numpy() for i in range(n_states(run))]
    ph = [phases(run, i) for i in range(n_states(run))]
    phase_value = resolve_phase(run.cfg.steps.particles.phase, ph[ref].class_map,
                                where="steps.particles.phase")
    result = track(labels.numpy(), greys, spacing=labels.spacing, reference=ref,
                   phases=[p.numpy() for p in ph], phase_value=phase_value,
                   exclude_layers=run.cfg.steps.measure.exclude_layers)
    kept = set(int(v) for v in result.kept)
    outputs = {}
    for i, lab in enumerate(result.labels):
        lab = np.where(np.isin(lab, list(kept)), lab, 0).astype(np.uint32)
        outputs[f"labels_{i}"] = _save(run, labels.with_data(lab),
                                       f"volumes/labels_{i}{_ext(run)}")
    write_table(result.timeseries(), run.path("tables/timeseries.parquet"), csv=True,
                metadata={TRACKING_KEY: result.stamp()})
    outputs["timeseries"] = "tables/timeseries.parquet"
    return StepResult(outputs, {"registration": result.registration,
                                "n_reference": int(labels.numpy().max()),
                                "n_tracked": int(result.n_tracked),
                                "stamp": result.stamp()})


def step_measure(run: Run) -> StepResult:
    """Morphology + grey (GREAT2) tables: every tracked state, else the reference state."""
    from electrode_ct.measure import particle_table

    p = run.cfg.steps.measure
    stamp = run.summary("track").get("stamp") if "track" in run.results else None
    states = range(n_states(run)) if stamp else [reference_state(run)]
    outputs, summary = {}, {}
    for i in states:
        lab = particle_labels(run, i)
        table, radial = particle_table(
            lab.numpy(), grey_input(run, i).numpy() if has_grey(run) else None,
            spacing=lab.spacing, properties=p.properties, exclude_layers=p.exclude_layers)
        meta = {TRACKING_KEY: {**stamp, "state": i}} if stamp else None
        outputs[f"particles_{i}"] = str(write_table(
            table, run.path(f"tables/particles_{i}.parquet"), csv=True, metadata=meta
        ).relative_to(run.out))
        if p.radial and radial is not None:
            outputs[f"radial_{i}"] = str(write_table(
                radial, run.path(f"tables/radial_{i}.parquet"), metadata=meta
            ).relative_to(run.out))
        summary[f"state_{i}"] = {"n_particles": len(table)}
    return StepResult(outputs, summary)


def step_metrics(run: Run) -> StepResult:
    """Microstructure metrics of the reference phase volume."""
    from electrode_ct.metrics.microstructure import microstructure_metrics

    p = run.cfg.steps.metrics
    ph = phases(run, reference_state(run))
    result = microstructure_metrics(ph, phase=p.phase, tortuosity=p.tortuosity,
                                    surface_method=p.surface_method, tol=p.tol,
                                    report=run.log.info)
    from electrode_ct.io import write_json

    rel = "tables/metrics.json"
    write_json(result, run.path(rel))
    return StepResult({"metrics": rel}, result)


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
                       method=p.method, threshold=p.threshold)
        outputs[f"cracks_{i}"] = str(write_table(
            res.table, run.path(f"tables/cracks_{i}.parquet"), csv=True).relative_to(run.out))
        outputs[f"particle_phases_{i}"] = _save(
            run, lab.with_data(res.phases).with_class_map({"exterior": 0, "solid": 1, "flaw": 2}),
            f"volumes/particle_phases_{i}{_ext(run)}")
        summary[f"state_{i}"] = res.summary
    return StepResult(outputs, summary)


def step_stats(run: Run) -> StepResult:
    """Population statistics (Ī, ΔĪ, SE, Z) per state and subset, versus the reference."""
    import pandas as pd

    from electrode_ct.stats import (
        parse_subsets,
        position_subsets,
        prepare_tables,
        quantile_subsets,
        summarise,
    )

    p = run.cfg.steps.stats
    keys = sorted((k for k in run.results["measure"].outputs if k.startswith("particles_")),
                  key=lambda k: int(k.split("_")[1]))
    states = [int(k.split("_")[1]) for k in keys]
    ref = states.index(reference_state(run))
    prep = prepare_tables([read_table(run.output("measure", k)) for k in keys],
                          keep_border=p.keep_border, names=keys)
    run.log.info("stats: %s; %s", prep.pairing_note, prep.border_note)
    col = _grey_column(prep.tables[ref], roi=p.roi)
    ref_table = prep.tables[ref].set_index("label", drop=False)
    groupings: list[tuple[str, Any]] = [("all", None)]
    by = parse_subsets(p.by, name="steps.stats.by")
    if by:
        groupings.append((by[0], quantile_subsets(ref_table, by[0], by[1])))
    pos = parse_subsets(p.position, name="steps.stats.position", axis=True)
    if pos:
        groupings.append((f"depth_{pos[0]}", position_subsets(
            ref_table, axis=pos[0], n_bins=pos[1], collector=p.collector)[0]))
    stats = pd.concat([summarise(prep.tables, column=col, reference=ref, subsets=sub,
                                 subset_name=name, paired=prep.paired)
                       for name, sub in groupings], ignore_index=True)
    stats["state"] = np.asarray(states)[stats["state"].to_numpy()]
    stats["subset"] = stats["subset"].astype(str)  # "all" beside bin numbers
    rel = str(write_table(stats, run.path("tables/stats.parquet"), csv=True).relative_to(run.out))
    return StepResult({"stats": rel}, {"column": col, "rows": len(stats),
                                       "reference_state": reference_state(run),
                                       **prep.summary()})


def _grey_column(table: Any, *, roi: bool) -> str:
    """``roi_mean`` when asked and most particles have a core, else ``grey_mean``."""
    if not roi or "roi_n" not in table or not len(table):
        return "grey_mean"
    # the ROI leaves out the outer layers; fall back when most particles are too small
    return "roi_mean" if float((table["roi_n"] > 0).mean()) >= 0.5 else "grey_mean"
