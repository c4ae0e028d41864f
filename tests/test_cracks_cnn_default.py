"""The shipped CNN crack classifier (#26): a pickle-free model file with its training
curves, better than chance on a phantom seed it never saw, and the demo's operando cracks
step (which uses it) puts the training curves and the flawed-slices sweep in the report."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("torch")

UNSEEN_SEED = 41
"""A phantom seed neither the training script nor the demo uses."""


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """A micro-CT phantom with 30 % of its particles flawed (seed never trained on)."""
    from electrode_ct.synth import electrode

    ph = electrode((56, 64, 64), voxel_size=0.5, radius_mean_um=3.0, radius_sd_um=0.75,
                   modality="micro", cracked_fraction=0.3, seed=UNSEEN_SEED)
    out = tmp_path_factory.mktemp("cnn_default") / "ph"
    ph.save(out)
    return ph, out


def test_shipped_cnn_is_pickle_free_with_its_curves():
    from electrode_ct.cracks.cnn_model import HISTORY_KEYS, KIND
    from electrode_ct.cracks.models import DEFAULT_CNN_MODEL
    from electrode_ct.segment.models import MODEL_FORMAT_VERSION, read_header

    head = read_header(DEFAULT_CNN_MODEL)
    assert head["kind"] == KIND and head["format_version"] == MODEL_FORMAT_VERSION
    with zipfile.ZipFile(DEFAULT_CNN_MODEL) as zf:
        assert sorted(zf.namelist()) == ["model.json", "state_dict.pt"]
    assert DEFAULT_CNN_MODEL.stat().st_size < 3e6
    tr = head["training"]
    assert set(tr["history"]) == set(HISTORY_KEYS)
    assert len(tr["history"]["train_loss"]) == tr["epochs_run"] > 1
    assert {"roc", "pr", "confusion"} <= set(tr["validation"])
    seeds = tr["phantoms"]["seeds"] + tr["phantoms"]["test_seeds"]
    assert UNSEEN_SEED not in seeds and 0 not in seeds  # the demo renders seed 0
    assert all(0.5 < h["auc"] <= 1 for h in tr["held_out"].values())


def test_shipped_cnn_beats_chance_on_an_unseen_phantom(phantom):
    from electrode_ct.cracks import classify_scan, prepare_scan
    from electrode_ct.cracks.models import resolve_model

    ph, _ = phantom
    model = resolve_model(None, method="cnn")  # no model file: the shipped CNN
    assert model.method == "cnn"
    scan = prepare_scan(ph.grey.numpy(), ph.particles.numpy(), spacing=ph.grey.spacing)
    res = classify_scan(scan, model, truth=ph.truth)
    y = res.table["reference_flawed"].to_numpy(bool)
    assert 10 <= y.sum() <= len(y) - 10
    assert res.summary["auc"] >= 0.7
    # the sweep of the published rule: m = 1 flags the most particles, m = k the fewest
    sweep = list(res.summary["percent_flawed_vs_m"].values())
    assert len(sweep) == model.k and sweep == sorted(sweep, reverse=True)
    assert np.isfinite(res.summary["percent_flawed"])


def test_demo_cracks_step_reports_training_curves_and_sweep(phantom, tmp_path):
    from _browser import render
    from electrode_ct.demo import _configs
    from electrode_ct.pipeline import parse_config, run_pipeline

    _, ph = phantom
    step = _configs(tmp_path)["operando phantom (3 states)"]["steps"]["cracks"]
    assert step["method"] == "cnn" and step.get("model") is None
    cfg = parse_config({
        "input": {"grey": [str(ph / "grey.tif")]}, "output": str(tmp_path / "out"),
        "steps": {"segment": {"method": "threshold", "threshold_method": "multiotsu",
                              "classes": 3},
                  "particles": {"phase": "active", "heal_cracks_um": 0.6,
                                "min_volume_um3": 5.0},
                  "measure": {"radial": False, "bootstrap": 20},
                  "metrics": {"enabled": False}, "stats": {"enabled": False},
                  "cracks": {**step, "truth": [str(ph / "truth.parquet")],
                             "truth_labels": [str(ph / "particles.tif")]}}})
    run_pipeline(cfg, quiet=True)
    out = tmp_path / "out"
    summ = json.loads((out / "provenance.json").read_text())["steps"]["cracks"]["summary"]
    assert summ["state_0"]["percent_flawed_vs_m"]
    result = render(out / "report.html", tmp_path)
    alts = {img["alt"] for img in result["images"]}
    assert {"% flawed against flawed slices required", "classifier training curves",
            "validation ROC, precision-recall and confusion matrix"} <= alts
    assert all(img["ok"] for img in result["images"]) and result["errors"] == []
