"""CLI tests of ``ect cracks classify`` and ``ect cracks train``."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from electrode_ct.synth import electrode

    out = tmp_path_factory.mktemp("cracks_cli")
    electrode((56, 56, 56), voxel_size=0.5, radius_mean_um=3.0, radius_sd_um=0.7,
              modality="nano", crack_width_um=1.0, seed=5).save(out / "ph")
    return out


def test_classify_and_train(run_cli, saved, tmp_path):
    from electrode_ct.io import read, read_table

    ph = saved / "ph"
    code, out, err = run_cli("cracks", "classify", ph / "grey.tif", ph / "particles.tif",
                             "--out", tmp_path / "o", "--truth", ph / "truth.parquet", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert {"n_particles", "n_flawed", "percent_flawed", "auc"} <= set(s)
    assert s["percent_flawed"] == pytest.approx(100 * s["n_flawed"] / s["n_particles"])
    from scipy.stats import binomtest

    ci = binomtest(s["n_flawed"], s["n_particles"]).proportion_ci(0.95, method="wilson")
    assert s["percent_flawed_ci95"] == pytest.approx([100 * ci.low, 100 * ci.high])
    assert s["percent_flawed_interval"].startswith("Wilson")
    tab = read_table(tmp_path / "o" / "cracks.parquet")
    assert len(tab) == s["n_particles"] and {"label", "flaw_score", "flawed"} <= set(tab.columns)
    assert (tmp_path / "o" / "cracks.csv").exists()
    phases = read(tmp_path / "o" / "particle_phases.tif")
    assert phases.class_map == {"exterior": 0, "solid": 1, "flaw": 2}
    assert set(np.unique(phases.numpy())) <= {0, 1, 2}
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["n_flawed"] == s["n_flawed"]
    code, out, err = run_cli("cracks", "train", ph / "grey.tif", ph / "particles.tif",
                             ph / "truth.parquet", "--model", tmp_path / "m.ectmodel", "--json")
    assert code == 0, err
    assert json.loads(out)["method"] == "features"
    code, out, err = run_cli("cracks", "classify", ph / "grey.tif", ph / "particles.tif",
                             "--out", tmp_path / "o2", "--model", tmp_path / "m.ectmodel",
                             "--json")
    assert code == 0, err
    assert "auc" not in json.loads(out)
    # a features model asked to act as a CNN: one error line, exit 2, no output
    code, out, err = run_cli("cracks", "classify", ph / "grey.tif", ph / "particles.tif",
                             "--out", tmp_path / "o3", "--model", tmp_path / "m.ectmodel",
                             "--method", "cnn")
    assert code == 2 and err.count("\n") == 1 and "features" in err
    assert not (tmp_path / "o3").exists()


def test_cli_bad_inputs(run_cli, saved, tmp_path):
    import pandas as pd

    from electrode_ct.io import write
    from electrode_ct.volume import Volume

    ph = saved / "ph"
    write(Volume(np.zeros((56, 56, 56), np.uint32)), tmp_path / "empty.tif")
    write(Volume(np.ones((50, 56, 56), np.uint32)), tmp_path / "small.tif")
    truth = pd.read_parquet(ph / "truth.parquet").iloc[3:]
    truth.to_csv(tmp_path / "part.csv", index=False)
    cases = [
        (("cracks", "classify", ph / "grey.tif", tmp_path / "empty.tif"), "no particles"),
        (("cracks", "classify", ph / "grey.tif", tmp_path / "small.tif"), "differs"),
        (("cracks", "classify", ph / "grey.tif", ph / "particles.tif", "--truth",
          tmp_path / "part.csv"), "no row"),
        (("cracks", "train", ph / "grey.tif", ph / "particles.tif", tmp_path / "part.csv",
          "--model", tmp_path / "x.ectmodel"), "no row"),
    ]
    for i, (args, msg) in enumerate(cases):
        extra = ("--out", tmp_path / f"bad{i}") if args[1] == "classify" else ()
        code, _, err = run_cli(*args, *extra)
        assert code == 2 and msg in err, (args, err)
        assert err.strip().splitlines()[-1].startswith("error:")
        assert "Traceback" not in err
        assert not (tmp_path / f"bad{i}").exists()
    assert not (tmp_path / "x.ectmodel").exists()
