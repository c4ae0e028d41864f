"""``ect synth``: synthetic electrode phantoms with exact ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from electrode_ct.cli._argv import parse_ints
from electrode_ct.cli._common import JSON_HELP, emit_json, info, say, voxel_size
from electrode_ct.cli.app import app


def _summary(ph) -> dict:
    f = ph.info["fractions"]
    return {"active_fraction": f["active"], "cbd_fraction": f["cbd"],
            "pore_fraction": f["pore"], "crack_fraction": f["crack"],
            "particles": ph.info["particles"], "cracked": ph.info["cracked"]}


@app.command("synth")
def synth_cmd(
    out_dir: Path = typer.Argument(..., help="Output folder."),
    shape: str = typer.Option("64,64,64", "--shape", help="Shape Z Y X in voxels."),
    voxel: str = typer.Option("0.5", "--voxel-size", help="Voxel size in µm: one value or Z Y X."),
    active_fraction: float = typer.Option(0.5, "--active-fraction", help="Target active fraction."),
    cbd_fraction: float = typer.Option(0.1, "--cbd-fraction", help="Target CBD fraction."),
    radius_mean_um: float = typer.Option(4.0, "--radius-mean-um", help="Mean radius, µm."),
    radius_sd_um: float = typer.Option(1.0, "--radius-sd-um", help="Radius std dev, µm."),
    cracked_fraction: float = typer.Option(0.3, "--cracked-fraction",
                                           help="Fraction of particles with a flaw."),
    crack_width_um: float = typer.Option(0.5, "--crack-width-um", help="Mean crack width, µm."),
    snr: float = typer.Option(None, "--snr", help="(active - pore) / noise σ; default: preset."),
    modality: str = typer.Option("micro", "--modality", help="Imaging preset: nano or micro."),
    states: int = typer.Option(1, "--states", help="Number of operando states (>1: series)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    calender: float = typer.Option(0.0, "--calender", help="Compression along z (0..0.5)."),
    collector: str = typer.Option(None, "--collector", help="Current collector side: z0 or z1."),
    bits: int = typer.Option(16, "--bits", help="Grey output depth: 8 or 16."),
    supersample: int = typer.Option(2, "--supersample", help="Sub-samples per axis (1-4)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Generate a phantom (or an operando series) with exact ground truth.

    Writes grey.tif, phases.tif, particles.tif, cracks.tif, truth.parquet and
    phantom.json into OUT_DIR (state_0/, state_1/, ... for --states > 1).
    """
    from electrode_ct.synth import electrode, operando_series, save_series

    kwargs = dict(
        voxel_size=voxel_size(voxel), active_fraction=active_fraction,
        cbd_fraction=cbd_fraction, radius_mean_um=radius_mean_um, radius_sd_um=radius_sd_um,
        cracked_fraction=cracked_fraction, crack_width_um=crack_width_um, snr=snr,
        modality=modality, seed=seed, calender=calender, collector=collector, bits=bits,
        supersample=supersample)
    dims = tuple(parse_ints(shape, name="--shape", count=(1, 3)))
    dims = dims * 3 if len(dims) == 1 else dims
    info(f"synth: {dims} voxels, modality {modality}, {states} state(s)")
    if states > 1:
        series = operando_series(dims, states=states, **kwargs)
        save_series(series, out_dir)
        result = {"out": str(out_dir), "states": states, **_summary(series[0]),
                  "per_state": [{"state": k, **_summary(ph)} for k, ph in enumerate(series)]}
    else:
        if states < 1:
            from electrode_ct.errors import InputError

            raise InputError(f"--states: expected a whole number >= 1, got {states}")
        ph = electrode(dims, **kwargs)
        ph.save(out_dir)
        result = {"out": str(out_dir), "states": 1, **_summary(ph)}
    if as_json:
        emit_json(result)
        return
    say(f"wrote {out_dir}: {result['particles']} particles ({result['cracked']} cracked), "
        f"active {result['active_fraction']:.3f}, cbd {result['cbd_fraction']:.3f}, "
        f"pore {result['pore_fraction']:.3f}")
