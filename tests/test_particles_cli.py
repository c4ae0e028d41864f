"""CLI: ect particles, psd, coco, compare-instances (in-process)."""

from __future__ import annotations

import json

import numpy as np

from electrode_ct.io import read, write, write_table
from electrode_ct.measure import morphology_table
from electrode_ct.particles.phantom import cracked_packing
from electrode_ct.volume import Volume


def test_particles_cli_heals_and_compares(tmp_path, run_cli):
    ph = cracked_packing((48, 48, 48), n_particles=14, radius=(6, 9), seed=2)
    write(ph.volume(), tmp_path / "phases.tif")
    write(Volume(ph.truth), tmp_path / "truth.tif")
    code, out, err = run_cli("particles", tmp_path / "phases.tif", tmp_path / "lab.tif",
                             "--heal-cracks-um", "2", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert {"n_particles", "n_border", "n_removed"} <= res.keys()
    assert res["n_particles"] == ph.truth.max()
    lab = read(tmp_path / "lab.tif")
    assert lab.dtype == np.uint32 and lab.class_map is None
    code, out, err = run_cli("compare-instances", tmp_path / "lab.tif", tmp_path / "truth.tif",
                             "--slices", "5", "--json")
    assert code == 0, err
    m = json.loads(out)
    for key in ("precision", "recall", "f1", "ap50", "ap", "splits", "merges", "n_pred", "n_ref"):
        assert key in m
    assert m["ap50"] >= 0.95 and m["splits"] == 0 and "slices" in m
    code, out, _ = run_cli("particles", tmp_path / "phases.tif", tmp_path / "lab2.tif",
                           "--remove-border", "touch", "--min-volume-um3", "50", "--json")
    res2 = json.loads(out)
    assert code == 0 and res2["n_border"] == 0 and res2["n_removed"] >= res2["n_removed_border"]


def test_particles_cli_errors(tmp_path, run_cli):
    phases = np.zeros((8, 8, 8), np.uint8)
    phases[2:5, 2:5, 2:5] = 1
    write(Volume(phases), tmp_path / "p.tif")  # no class map
    code, out, err = run_cli("particles", tmp_path / "p.tif", tmp_path / "o.tif")
    assert code == 2 and err.startswith("error:") and "--phase" in err and "Traceback" not in err
    assert not (tmp_path / "o.tif").exists()
    code, _, err = run_cli("particles", tmp_path / "p.tif", tmp_path / "o.tif", "--phase", "3")
    assert code == 2 and "no voxels" in err
    write(Volume(phases.astype(np.float32) * 0.5), tmp_path / "f.tif")
    code, _, err = run_cli("compare-instances", tmp_path / "f.tif", tmp_path / "p.tif")
    assert code == 2 and "integer" in err
    write(Volume(np.zeros((8, 8, 9), np.uint8)), tmp_path / "q.tif")
    code, _, err = run_cli("coco", tmp_path / "q.tif", tmp_path / "p.tif", tmp_path / "coco")
    assert code == 2 and "shape" in err


def test_psd_and_coco_cli(tmp_path, run_cli):
    ph = cracked_packing((32, 32, 32), n_particles=8, radius=(5, 7), seed=0)
    table = morphology_table(ph.truth, spacing=0.5, properties="basic")
    write_table(table, tmp_path / "t.parquet")
    code, out, err = run_cli("psd", tmp_path / "t.parquet", "--min-diameter-um", "1", "--json",
                             "--plot", tmp_path / "psd.png")
    assert code == 0, err
    d = json.loads(out)
    assert d["n_particles"] == len(table) and d["d50_um"] > 0
    assert (tmp_path / "psd.png").exists()
    write(Volume(ph.grey), tmp_path / "g.tif")
    write(Volume(ph.truth), tmp_path / "l.tif")
    code, out, err = run_cli("coco", tmp_path / "g.tif", tmp_path / "l.tif", tmp_path / "coco",
                             "--axis", "y", "--val", "0.25", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["n_val_images"] > 0 and (tmp_path / "coco" / "val" / "annotations.json").exists()
