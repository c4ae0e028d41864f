"""``ect track`` and ``ect stats``: operando tracking and GREAT2 population statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from electrode_ct.cli import _compute as co
from electrode_ct.cli._common import (
    JSON_HELP,
    VOXEL_SIZE_HELP,
    emit_json,
    info,
    read_input,
    read_input_table,
    say,
)
from electrode_ct.cli.app import app


@app.command("track")
def track_cmd(
    ref_labels: str = typer.Argument(..., help="Particle labels of the reference state."),
    greys: list[str] = typer.Argument(..., help="Grey volumes GREY_0 GREY_1 … (reference first "
                                      "unless --reference)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    phases: list[str] = typer.Option(
        None, "--phases", help="Phase volume of each state (repeat, in order); default: Otsu."
    ),
    phase: str = typer.Option("active", "--phase", help="Active phase name or value in --phases."),
    reference: int = typer.Option(0, "--reference", help="Index of the reference state."),
    metric: str = typer.Option("mi", "--metric", help="Registration metric: mi|correlation."),
    exclude_layers: int = typer.Option(5, "--exclude-layers", help="Outer layers not in roi_*."),
    keep_border: bool = typer.Option(False, "--keep-border", help="Keep border particles."),
    calibrate: list[str] = typer.Option(
        None, "--calibrate", help="Grey-level calibration region (repeat): a phase name or "
        "value of --phases, or 'background' (below each state's Otsu threshold); the states' "
        "grey is mapped onto the reference's by the regions' peaks before measuring."),
    change_map: list[int] = typer.Option(
        None, "--change-map", help="Also write the intra-particle change map of this "
        "reference particle in every other state, DIR/change_map_<label>_<i>.tif (repeat)."),
    voxel: str = typer.Option(None, "--voxel-size", help=VOXEL_SIZE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    scheduler: str = co.SCHEDULER, n_workers: int = co.N_WORKERS,
    threads_per_worker: int = co.THREADS, memory_limit: str = co.MEMORY,
    block_shape: str = co.BLOCKS,
) -> None:
    """Track particles across states: register, propagate ids, clean, measure grey levels
    (states streamed one at a time, propagation in blocks, for large states or when a
    compute option is given; see docs/scale.md)."""
    from electrode_ct.errors import InputError
    from electrode_ct.io import write_json
    from electrode_ct.provenance import record

    cfg, explicit = co.compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                                      block_shape)
    if phases and len(phases) != len(greys):
        raise InputError(f"--phases: got {len(phases)} volumes for {len(greys)} states")
    lab, gvols, pvols = _read_states(ref_labels, greys, phases or [], voxel)
    value = _phase_value(phase, pvols, phases)
    info(f"tracking {lab.source} through {len(greys)} states")
    params = {"reference": reference, "metric": metric, "exclude_layers": exclude_layers,
              "drop_border": not keep_border,
              "calibrate": _regions(calibrate or [], pvols, phases)}
    if co.use_engine(cfg, max(v.nbytes for v in gvols), explicit=explicit):
        from electrode_ct.cli._track_engine import track_engine

        res, done = track_engine(lab, gvols, pvols, ref_labels, out, cfg, value=value,
                                 **params)
    else:
        names = [ref_labels, *greys, *(phases or [])]
        res, done = _track_memory(lab, gvols, pvols, value, params, names), None
    if res.n_tracked == 0:
        if done is not None:
            done()
        raise InputError(
            f"{ref_labels}: no particles left after cleaning ({len(res.cleaning)} reference "
            "particles, all inconsistent, neighbours of inconsistent ones or at the border)"
        )
    missing = sorted(set(change_map or []) - set(res.cleaning["label"].tolist()))
    if missing:
        if done is not None:
            done()
        raise InputError(f"--change-map: particle(s) {missing} not in {ref_labels}")
    meta = record(command="track", inputs={"ref_labels": ref_labels,
                                           **{f"grey_{i}": g for i, g in enumerate(greys)}},
                  parameters={**params, "spacing_um": list(lab.spacing)})
    _write_tracked(res, lab, out, meta)
    if done is not None:
        done()
    summary = {"states": res.registration, "n_reference": len(res.cleaning),
               "n_tracked": res.n_tracked,
               "n_inconsistent": int(res.cleaning["inconsistent"].sum()),
               "n_neighbours_dropped": int(res.cleaning["neighbour_of_inconsistent"].sum()),
               "n_border": int(res.cleaning["border"].sum()),
               "calibration": [r["calibration"] for r in res.registration
                               if "calibration" in r],
               "change_maps": _change_maps(res, lab, gvols, change_map or [], out)}
    write_json({**summary, "provenance": meta}, out / "registration.json")
    if as_json:
        emit_json({**summary, "out": str(out)})
    else:
        say(f"{res.n_tracked} of {len(res.cleaning)} particles tracked -> {out}")


def _read_states(ref_labels: str, greys: list[str], phases: list[str],
                 voxel: str | None) -> tuple[Any, list[Any], list[Any]]:
    """The reference labels, greys and phase volumes, read lazily; refused (one line
    naming both files) when a shape or a voxel size differs from the reference labels'."""
    from electrode_ct.operando.stream import check_states

    lab = read_input(ref_labels, role="labels", voxel=voxel, lazy=True)
    gvols = [read_input(g, voxel=voxel, lazy=True) for g in greys]
    pvols = [read_input(p, role="labels", voxel=voxel, lazy=True) for p in phases]
    vols = [lab, *gvols, *pvols]
    check_states([v.shape for v in vols], [v.spacing for v in vols],
                 [ref_labels, *greys, *phases])
    return lab, gvols, pvols


def _change_maps(res: Any, lab: Any, gvols: list[Any], labels: list[int], out: Path
                 ) -> list[dict[str, Any]]:
    """``change_map_<label>_<i>.tif`` per asked particle and non-reference state (the two
    states' grey in memory, the state's calibrated when tracking calibrated it)."""
    from electrode_ct.io import write
    from electrode_ct.operando import apply_calibration, change_map

    if not labels:
        return []
    ref = res.reference
    ref_grey, ref_lab = gvols[ref].numpy(), lab.numpy()
    rows = []
    for i, vol in enumerate(gvols):
        if i == ref:
            continue
        grey = apply_calibration(vol.numpy(), res.registration[i].get("calibration"))
        for lbl in labels:
            diff, start = change_map(ref_grey, grey, ref_lab, int(lbl), res.transforms[i],
                                     spacing=lab.spacing)
            path = out / f"change_map_{lbl}_{i}.tif"
            write(lab.with_data(diff).with_class_map(None), path)
            fin = diff[np.isfinite(diff)]
            rows.append({"label": int(lbl), "state": i, "file": str(path),
                         "start_zyx": [int(v) for v in start],
                         "mean_change": float(fin.mean()) if fin.size else None})
    return rows


def _regions(names: list[str], pvols: list[Any], paths: list[str] | None
             ) -> list[int | str] | None:
    """``--calibrate`` regions as phase values of the first phase volume (or
    ``"background"``); None when none is given."""
    from electrode_ct.errors import InputError
    from electrode_ct.volume import resolve_phase

    out: list[int | str] = []
    for name in names:
        if name == "background":
            out.append(name)
        elif not pvols:
            raise InputError(f"--calibrate {name}: a phase region needs --phases (or use "
                             "'background')")
        else:
            out.append(resolve_phase(name, pvols[0].class_map, where=f"--calibrate ({paths[0]})"))
    return out or None


def _phase_value(phase: str, pvols: list[Any], names: list[str] | None) -> int | None:
    from electrode_ct.volume import resolve_phase

    return resolve_phase(phase, pvols[0].class_map, where=names[0]) if pvols else None


def _track_memory(lab: Any, gvols: list[Any], pvols: list[Any], value: int | None,
                  params: dict[str, Any], names: list[str]) -> Any:
    """Today's in-memory tracking (every state loaded and checked; ``names``: the files
    of the labels, greys and phases, in that order)."""
    from electrode_ct.cli._common import check_input
    from electrode_ct.operando.track import track

    vols = [lab, *gvols, *pvols]
    roles = ["labels"] + ["grey"] * len(gvols) + ["labels"] * len(pvols)
    arrays = []
    for vol, role, name in zip(vols, roles, names, strict=True):
        arrays.append(vol.numpy())
        check_input(vol.with_data(arrays[-1]), name, role)
    ng = len(gvols)
    return track(arrays[0], arrays[1:1 + ng], spacing=lab.spacing,
                 phases=arrays[1 + ng:] or None, phase_value=value,
                 reference=params["reference"], metric=params["metric"],
                 exclude_layers=params["exclude_layers"], drop_border=params["drop_border"],
                 calibrate=params["calibrate"])


def _write_tracked(res: Any, lab: Any, out: Path, meta: dict[str, Any]) -> None:
    """labels_<i>.tif, particles_<i>.parquet (stamped, kept particles) and the time series."""
    from electrode_ct.io import write, write_table
    from electrode_ct.measure import join_grey, morphology_table
    from electrode_ct.stats import TRACKING_KEY

    out.mkdir(parents=True, exist_ok=True)
    kept = res.kept
    for i, (labels, grey_cols) in enumerate(zip(res.labels, res.state_tables(), strict=True)):
        write(lab.with_data(labels), out / f"labels_{i}.tif")
        morph = morphology_table(labels, spacing=res.spacing, properties="basic")
        table = join_grey(morph[morph["label"].isin(kept)].reset_index(drop=True), grey_cols)
        write_table(table, out / f"particles_{i}.parquet",
                    metadata={**meta, TRACKING_KEY: res.stamp(i)})
    write_table(res.timeseries(), out / "timeseries.parquet",
                metadata={**meta, TRACKING_KEY: res.stamp()})


@app.command("stats")
def stats_cmd(
    tables: list[Path] = typer.Argument(..., help="Per-particle tables TABLE_0 [TABLE_1 …] "
                                        "(one per state; paired by label only when tracked)."),
    by: str = typer.Option(None, "--by", help="Quantile subsets COLUMN:N, e.g. volume_um3:4."),
    position: str = typer.Option(None, "--position", help="Depth subsets AXIS:N, e.g. z:4."),
    collector: str = typer.Option("z0", "--collector", help="Current collector side: z0|z1."),
    reference: int = typer.Option(0, "--reference", help="Index of the reference state."),
    roi: bool = typer.Option(False, "--roi", help="Use roi_mean (core) instead of grey_mean."),
    column: str = typer.Option(None, "--column", help="Grey column (overrides --roi)."),
    keep_border: bool = typer.Option(False, "--keep-border", help="Keep the particles "
                                     "touching a face of the volume (GREAT2 leaves them out)."),
    size_subset: str = typer.Option(
        None, "--size-subset", help="Keep only particles of a size quantile, [COLUMN:]topP | "
        "bottomP | qA | qA-qB (quartiles 1..4), e.g. top25 or q2-q4; COLUMN default "
        "volume_um3. The --by/--position subsets are taken within it."),
    radial: list[Path] = typer.Option(
        None, "--radial", help="Radial table of each state (repeat, in the tables' order; "
        "ect measure --radial): mean radial profile per state and subset."),
    out: Path = typer.Option(None, "--out", help="Also write the summary table (.parquet/.csv)."),
    condition: list[str] = typer.Option(
        None, "--condition", help="A pie category NAME=EXPRESSION over the particle table "
        "(tracked states also have delta, sem_delta, z), repeat in order of precedence; "
        "default for tracked tables: darker / brighter than ±2·SEM of the change."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Ī, ΔĪ, SE_tot, Z and p per state and subset (GREAT2 statistics), and the share of
    particles per condition (the condition pies, each state's shares summing to 100 %).

    Particles are paired by label (ΔĪ_prist, paired Z) only when every table carries the
    tracking stamp of one reference (``ect track``'s particles_<i>.parquet); otherwise the
    states are compared as independent populations, with a note saying why.
    """
    from electrode_ct.conditions import parse_conditions, state_conditions
    from electrode_ct.errors import InputError
    from electrode_ct.io import write_table
    from electrode_ct.stats import parse_subsets, prepare_tables
    from electrode_ct.subsets import parse_size_subset, select_size, size_summary

    conds = parse_conditions(condition)
    spec = parse_subsets(by, name="--by")
    pos = parse_subsets(position, name="--position", axis=True)
    size = parse_size_subset(size_subset)
    if radial and len(radial) != len(tables):
        raise InputError(f"--radial: got {len(radial)} radial tables for {len(tables)} tables; "
                         "expected one per table, in the same order")
    col = column or ("roi_mean" if roi else "grey_mean")
    need = ["label", col] + ([size.column] if size else [])
    dfs = [read_input_table(t, columns=need, all_finite=False) for t in tables]
    if reference < 0 or reference >= len(dfs):
        raise InputError(f"--reference: state {reference} does not exist (0..{len(dfs) - 1})")
    prep = prepare_tables(dfs, keep_border=keep_border, names=[str(t) for t in tables])
    prep.tables = select_size(prep.tables, size, reference=reference, paired=prep.paired,
                              names=[str(t) for t in tables])
    summary = _summary(prep, col, reference, spec, pos, collector)
    profiles = _profiles(radial, prep, reference, spec, pos, collector)
    shares = state_conditions(prep.tables, column=col, reference=reference,
                              is_paired=prep.paired, conditions=conds)
    if out is not None:
        write_table(summary.astype({"subset": str}), out)
    if len(dfs) > 1:
        typer.echo(f"note: {prep.pairing_note}", err=True)
    typer.echo(f"note: {prep.border_note}", err=True)
    if size is not None:
        typer.echo(f"note: size subset {size.text} of {size.column}: "
                   f"{', '.join(str(len(t)) for t in prep.tables)} particles per state", err=True)
    result = {"column": col, "reference": reference, "n_states": len(dfs), **prep.summary(),
              **size_summary(size, prep.tables), "rows": summary.to_dict(orient="records")}
    if profiles is not None:
        result["radial_profiles"] = profiles.to_dict(orient="records")
    result["conditions"] = shares.to_dict(orient="records")
    if as_json:
        emit_json(result)
        return
    for r in result["rows"]:
        line = (f"state {r['state']} {r['grouping']}={r['subset']}: n={r['n']} "
                f"Ī={r['I_mean']:.3f} ± {r['SE_tot']:.3f}")
        if r.get("dI") is not None and r["state"] != reference:
            line += (f"  ΔĪ={r['dI']:.3f} ± {r['dI_SE_tot']:.3f}  Z={r['Z']:.2f} p={r['p']:.2g}"
                     + ("" if prep.paired else " (two-sample)"))
        say(line)
    for st, part in shares.groupby("state", sort=False):
        say(f"state {st} conditions: " + ", ".join(
            f"{r.category} {r.percent:.1f} %" for r in part.itertuples()))
    if profiles is not None:
        say(f"radial profiles: {len(profiles)} rows (mean ± SE per layer, state and subset "
            "in --json)")


def _summary(prep: Any, col: str, reference: int, spec: tuple[str, int] | None,
             pos: tuple[str, int] | None, collector: str) -> Any:
    """summarise() over all particles and the --by / --position subsets."""
    import pandas as pd

    from electrode_ct.stats import summarise
    from electrode_ct.subsets import groupings

    parts = [summarise(prep.tables, column=col, reference=reference, subsets=s,
                       subset_name=name, paired=prep.paired)
             for name, s in groupings(prep.tables[reference], by=spec, position=pos,
                                      collector=collector)]
    return pd.concat(parts, ignore_index=True)


def _profiles(radial: list[Path] | None, prep: Any, reference: int,
              spec: tuple[str, int] | None, pos: tuple[str, int] | None,
              collector: str) -> Any:
    """Mean radial profiles per state and subset (None without --radial)."""
    if not radial:
        return None
    from electrode_ct.subsets import radial_profiles

    rads = [read_input_table(r, columns=["label", "layer", "grey_norm"], all_finite=False)
            for r in radial]
    return radial_profiles(rads, prep.tables, reference=reference, paired=prep.paired,
                           by=spec, position=pos, collector=collector)
