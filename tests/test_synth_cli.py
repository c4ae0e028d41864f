"""``ect synth`` command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from electrode_ct.io import read, read_table
from electrode_ct.synth import TRUTH_COLUMNS

ARGS = ("--shape", "40", "40", "40", "--voxel-size", "0.5", "--radius-mean-um", "3",
        "--radius-sd-um", "0.5", "--seed", "2")


def test_synth_writes_truth_and_json(run_cli, tmp_path):
    out = tmp_path / "ph"
    code, stdout, err = run_cli("synth", out, *ARGS, "--active-fraction", "0.55",
                                "--cbd-fraction", "0.12", "--cracked-fraction", "0.5",
                                "--crack-width-um", "0.3", "--snr", "5", "--modality", "nano",
                                "--json")
    assert code == 0, err
    res = json.loads(stdout)
    for key in ("active_fraction", "cbd_fraction", "particles", "cracked"):
        assert key in res
    assert abs(res["active_fraction"] - 0.55) <= 0.015
    names = {"grey.tif", "phases.tif", "particles.tif", "cracks.tif", "truth.parquet",
             "phantom.json"}
    assert names <= {p.name for p in out.iterdir()}
    truth = read_table(out / "truth.parquet")
    assert list(truth.columns) == TRUTH_COLUMNS
    assert pd.api.types.is_bool_dtype(truth["cracked"])
    assert len(truth) == res["particles"] and truth["cracked"].sum() == res["cracked"]
    phases = read(out / "phases.tif")
    assert phases.class_map == {"pore": 0, "cbd": 1, "active": 2}
    assert phases.spacing == (0.5, 0.5, 0.5)
    labels = read(out / "particles.tif").numpy()
    assert labels.dtype == np.uint32 and labels.max() == len(truth)
    info = json.loads((out / "phantom.json").read_text())
    assert info["seed"] == 2 and info["parameters"]["modality"] == "nano"


def test_synth_series_and_errors(run_cli, tmp_path):
    code, stdout, err = run_cli("synth", tmp_path / "s", *ARGS, "--states", "2", "--json")
    assert code == 0, err
    assert json.loads(stdout)["states"] == 2
    for k in (0, 1):
        assert (tmp_path / "s" / f"state_{k}" / "truth.parquet").exists()
    code, stdout, err = run_cli("synth", tmp_path / "bad", "--modality", "xray")
    assert code == 2 and "error: modality" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
    code, _, err = run_cli("synth", tmp_path / "bad", "--active-fraction", "0.9",
                           "--cbd-fraction", "0.1")
    assert code == 2 and "0.95" in err
