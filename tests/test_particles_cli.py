"""CLI: ect particles, psd, coco, compare-instances (in-process)."""

from __future__ import annotations

import json

import numpy as np

from electrode_ct.io import read, write, write_table
from electrode_ct.measure import morphology_table
from electrode_ct.synth import electrode
from electrode_ct.volume import Volume


def test_particles_cli_heals_and_compares(tmp_path, run_cli):
    ph = electrode((64, 64, 64), voxel_size=0.5, radius_mean_um=5.0, radius_sd_um=1.0,
                   active_fraction=0.45, cbd_fraction=0.05, crack_kinds=("radial",),
                   crack_width_um=0.75, seed=3)
    truth = np.where(ph.phases.numpy() == 2, ph.particles.numpy(), 0).astype(np.uint32)
    write(ph.phases, tmp_path / "phases.tif")
    write(Volume(truth), tmp_path / "truth.tif")
    code, out, err = run_cli("particles", tmp_path / "phases.tif", tmp_path / "lab.tif",
                             "--heal-cracks-um", "1", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert {"n_particles", "n_border", "n_removed"} <= res.keys()
    assert abs(res["n_particles"] - len(ph.truth)) <= 2
    lab = read(tmp_path / "lab.tif")
    assert lab.dtype == np.uint32 and lab.class_map is None
    code, out, err = run_cli("compare-instances", tmp_path / "lab.tif", tmp_path / "truth.tif",
                             "--slices", "5", "--json")
    assert code == 0, err
    m = json.loads(out)
    for key in ("precision", "recall", "f1", "ap50", "ap", "splits", "merges", "n_pred", "n_ref"):
        assert key in m
    assert m["ap50"] >= 0.9 and m["splits"] <= 1 and "slices" in m
    code, out, _ = run_cli("particles", tmp_path / "phases.tif", tmp_path / "lab2.tif",
                           "--remove-border", "touch", "--min-volume-um3", "50", "--json")
    res2 = json.loads(out)
    assert code == 0 and res2["n_border"] == 0 and res2["n_removed"] >= res2["n_removed_border"]


def test_particles_cli_resplit_switch_matches_the_api(tmp_path, run_cli):
    from electrode_ct.particles import relabel_sequential, separate_particles

    ph = electrode((48, 48, 48), voxel_size=0.5, radius_mean_um=4.0, radius_sd_um=1.0,
                   active_fraction=0.5, cbd_fraction=0.05, crack_kinds=("radial",),
                   crack_width_um=0.75, seed=5)
    write(ph.phases, tmp_path / "phases.tif")
    for flag, resplit in (("--resplit", True), ("--no-resplit", False)):
        code, out, err = run_cli("particles", tmp_path / "phases.tif", tmp_path / f"{flag}.tif",
                                 "--heal-cracks-um", "1", flag, "--json")
        assert code == 0, err
        stats = separate_particles(ph.phases.numpy(), phase="active",
                                   class_map=ph.phases.class_map, spacing=0.5,
                                   heal_cracks_um=1.0, resplit=resplit)
        # the command numbers the particles in raster order of their first voxels
        assert np.array_equal(read(tmp_path / f"{flag}.tif").numpy(),
                              relabel_sequential(stats.labels))
        assert json.loads(out)["n_resplit"] == stats.n_resplit
        assert json.loads(out)["n_rehealed"] == stats.n_rehealed
        if not resplit:
            assert stats.n_resplit == 0


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
    ph = electrode((32, 32, 32), voxel_size=0.5, radius_mean_um=2.5, seed=0)
    table = morphology_table(ph.particles.numpy(), spacing=0.5, properties="basic")
    write_table(table, tmp_path / "t.parquet")
    code, out, err = run_cli("psd", tmp_path / "t.parquet", "--min-diameter-um", "0.5", "--json",
                             "--plot", tmp_path / "psd.png")
    assert code == 0, err
    d = json.loads(out)
    assert d["n_particles"] == len(table) and d["d50_um"] > 0
    assert (tmp_path / "psd.png").exists()
    write(ph.grey, tmp_path / "g.tif")
    write(ph.particles, tmp_path / "l.tif")
    code, out, err = run_cli("coco", tmp_path / "g.tif", tmp_path / "l.tif", tmp_path / "coco",
                             "--axis", "y", "--val", "0.25", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["n_val_images"] > 0 and (tmp_path / "coco" / "val" / "annotations.json").exists()


def test_particles_cli_triplanar_planes(tmp_path, run_cli):
    # two balls fused by a thick neck: one body for the distance transform, but the
    # slice-wise instance predictions (here the truth, stacked) put the cut between them
    z, y, x = np.ogrid[:24, :24, :40]
    truth = np.zeros((24, 24, 40), np.uint8)
    truth[(z - 12) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 <= 81] = 1
    truth[(z - 12) ** 2 + (y - 12) ** 2 + (x - 20) ** 2 <= 81] = 2
    write(Volume((truth > 0).astype(np.uint8)), tmp_path / "p.tif")
    write(Volume(truth), tmp_path / "t.tif")
    planes = [tmp_path / "t.tif"] * 3
    code, out, err = run_cli("particles", tmp_path / "p.tif", tmp_path / "o.tif", "--phase", "1",
                             "--method", "triplanar", "--json")
    assert code == 0, err
    assert json.loads(out)["n_particles"] == 1
    code, out, err = run_cli("particles", tmp_path / "p.tif", tmp_path / "o.tif", "--phase", "1",
                             "--method", "triplanar", "--planes", *planes, "--json")
    assert code == 0, err
    assert json.loads(out)["n_particles"] == 2
    code, _, err = run_cli("particles", tmp_path / "p.tif", tmp_path / "o2.tif", "--phase", "1",
                           "--planes", *planes)
    assert code == 2 and "triplanar" in err and not (tmp_path / "o2.tif").exists()
    write(Volume(truth[:, :, :30]), tmp_path / "small.tif")
    code, _, err = run_cli("particles", tmp_path / "p.tif", tmp_path / "o2.tif", "--phase", "1",
                           "--method", "triplanar", "--planes", tmp_path / "small.tif",
                           tmp_path / "t.tif", tmp_path / "t.tif")
    assert code == 2 and "shape" in err
