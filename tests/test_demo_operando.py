"""The demo's operando series shows what GREAT2 is for: hundreds of tracked particles, the
cracking between states a significant ΔĪ (|Z| >= 5) and a darker core in the radial
profile, the planted scanner drift measured by the calibration.

The operando part of ``ect demo`` (one pipeline run on 72 × 144 × 144 voxels, about half a
minute on a quiet 2-core machine; ``make demo`` runs the same series).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from electrode_ct.demo import OPERANDO_DRIFT, operando_config, operando_inputs
from electrode_ct.io import read_table
from electrode_ct.pipeline import parse_config, run_pipeline


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    operando_inputs(out, seed=0)
    cfg = operando_config(out)
    cfg["steps"]["cracks"]["enabled"] = False  # not what this test checks
    run_pipeline(parse_config(cfg, source="test"), quiet=True)
    res = out / "operando"
    return res, json.loads((res / "provenance.json").read_text())


def test_cracking_gives_a_significant_change(demo):
    res, _ = demo
    st = read_table(res / "tables/stats.parquet")
    allp = st[st["grouping"] == "all"].set_index("state")
    assert allp.loc[0, "n"] >= 100  # within the size subset q2-q4: 3/4 of the tracked ones
    assert allp.loc[1, "paired"] and allp.loc[1, "Z"] <= -5  # top of charge: cracks open
    assert allp.loc[2, "Z"] < 0 and allp.loc[2, "dI"] > allp.loc[1, "dI"]  # partly closed


def test_the_drift_is_measured(demo):
    _, man = demo
    reg = man["steps"]["track"]["summary"]["registration"]
    for i, off in enumerate(OPERANDO_DRIFT):
        assert reg[i]["calibration"]["drift"][0] == pytest.approx(off, abs=100.0)


def test_radial_profile_darkens_inside(demo):
    res, _ = demo
    prof = read_table(res / "tables/radial_profiles.parquet")
    prof = prof[prof["grouping"] == "all"]
    inner = prof[prof["x"] >= 3].groupby("state").apply(
        lambda p: pd_mean_se(p), include_groups=False)
    (m0, s0), (m1, s1) = inner.loc[0], inner.loc[1]
    assert m1 < m0 - 3 * np.hypot(s0, s1)  # the core darker at the top of charge


def pd_mean_se(p):
    """Particle-weighted mean of the layer means and its SE (layers pooled)."""
    w = p["n"].to_numpy(float)
    m = float(np.average(p["mean"], weights=w))
    se = float(np.sqrt(np.sum((w * p["se"]) ** 2)) / w.sum())
    return m, se
