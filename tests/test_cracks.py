"""Tests of electrode_ct.cracks: 3-phase known answers, slice geometry, classifiers, models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from electrode_ct.cracks import (
    heal_labels,
    prepare_scan,
    sample_slices,
    slice_indices,
    three_phase,
)
from electrode_ct.cracks.evaluate import (
    confusion,
    depth_profile,
    expected_count_threshold,
    percent_flawed,
    roc_auc,
    roc_curve,
    select_threshold,
)
from electrode_ct.errors import InputError, ModelError, ShapeError


def _cracked_sphere(n=40, r=14, half_width=1, disc=10, cut=False, level=(40.0, 200.0),
                    noise=0.0, seed=0):
    """A sphere with a planar crack (z = c .. c + 2*half_width - 1) within a disc of radius."""
    c = n // 2
    z, y, x = np.mgrid[:n, :n, :n]
    sphere = (z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2 <= r * r
    slab = (z >= c - half_width) & (z < c + half_width) & ((y - c) ** 2 + (x - c) ** 2
                                                           <= disc * disc)
    crack = sphere & slab
    grey = np.where(sphere & ~crack, level[1], level[0]).astype(np.float32)
    if noise:
        grey += np.random.default_rng(seed).normal(0, noise, grey.shape).astype(np.float32)
    labels = (sphere & ~crack if cut else sphere).astype(np.uint32)
    return grey, labels, sphere, crack


# -- 3-phase known answers ------------------------------------------------------------------
def test_three_phase_planar_crack_known_volume():
    grey, labels, sphere, crack = _cracked_sphere()
    phases, tab, thr = three_phase(grey, labels, np.array([1]), spacing=0.5, sigma=0,
                                   method="120")
    assert thr == 120
    assert np.array_equal(phases == 2, crack)
    assert np.array_equal(phases == 0, ~sphere)
    row = tab.iloc[0]
    assert row["crack_voxels"] == crack.sum()
    assert row["crack_volume_um3"] == pytest.approx(crack.sum() * 0.125)
    assert row["crack_volume_fraction"] == pytest.approx(crack.sum() / sphere.sum())
    # the crack is horizontal: normal along z, tilt 0
    assert abs(row["crack_normal_z"]) == pytest.approx(1.0, abs=1e-6)
    assert row["crack_tilt_deg"] == pytest.approx(0.0, abs=1e-3)
    # two faces of the disc (top and bottom) plus the rim, in µm²
    disc_faces = 2 * (crack[20]).sum() * 0.25
    assert disc_faces <= row["crack_surface_um2"] <= disc_faces * 1.3
    # crack voxels lie between 4 and 14 voxels from the surface
    assert 2.0 < row["crack_depth_um"] < 7.0


def test_three_phase_triangle_on_noisy_sphere_and_healing():
    grey, cut, sphere, crack = _cracked_sphere(half_width=2, noise=15.0, cut=True)
    healed = heal_labels(cut, width_um=2.5, spacing=0.5)
    assert np.array_equal(healed > 0, sphere)
    phases, tab, thr = three_phase(grey, healed, np.array([1]), labels=cut, spacing=0.5)
    assert 40 < thr < 200
    assert tab["crack_voxels"].iloc[0] == pytest.approx(crack.sum(), rel=0.1)
    assert np.abs(tab["crack_normal_z"].iloc[0]) > 0.99


# -- slice sampling geometry ------------------------------------------------------------------
def test_slice_indices_central_80_percent():
    idx = slice_indices(0, 100, 10)
    assert idx.tolist() == [int(np.floor(10 + 80 * j / 9)) for j in range(10)]
    assert slice_indices(5, 6, 3).tolist() == [5, 5, 5]
    assert slice_indices(10, 20, 1).tolist() == [15]
    with pytest.raises(InputError):
        slice_indices(0, 10, 0)


def test_sample_slices_geometry():
    shape = (60, 40, 40)
    z, y, x = np.mgrid[:60, :40, :40]
    labels = np.zeros(shape, np.uint32)
    labels[10:50, 5:25, 8:28] = 1  # a box: 40 slices along z, 20 x 20 in-plane
    labels[(z - 30) ** 2 + (y - 30) ** 2 + (x - 30) ** 2 <= 36] = 2  # a small sphere
    grey = z.astype(np.float32)  # grey = slice index
    out = sample_slices(grey, labels, np.array([1, 2]), k=10, size=32, solid=100.0,
                        background=0.0)
    assert out.shape == (2, 10, 32, 32)
    expect = 10 + slice_indices(0, 40, 10)
    centre = out[0, :, 16, 16] * 100 + 100
    assert np.allclose(centre, expect, atol=1e-3)
    # the sphere is masked: corners are outside (-1), the centre inside
    assert np.all(out[1, :, 0, 0] == -1) and np.all(out[1, :, 16, 16] > -1)
    both = sample_slices(grey, labels, np.array([1]), k=4, axes="all", size=16, solid=100.0,
                         background=0.0)
    assert both.shape == (1, 12, 16, 16)
    # along y the grey (z index) varies across the slice: rows span the box's z range
    assert both[0, 4, 0, 8] * 100 + 100 == pytest.approx(10, abs=1.5)


# -- evaluation -------------------------------------------------------------------------------
def test_evaluation_against_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.3
    s = y * 0.8 + rng.normal(0, 0.5, 200)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    fpr, tpr, _ = roc_curve(y, s)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, s))
    t = select_threshold(y, s, rule="prevalence")
    assert percent_flawed(s >= t) == pytest.approx(100 * y.mean())
    cm = confusion(y, s >= t)
    assert sum(cm.values()) == 200 and cm["tp"] + cm["fn"] == y.sum()
    # calibrated scores: the count-matching threshold flags round(sum(p)) particles, and
    # Bernoulli draws from those probabilities have that expected count
    p = rng.beta(0.6, 1.4, 4000)
    t = expected_count_threshold(p)
    assert int((p >= t).sum()) == round(p.sum())
    drawn = rng.random((50, p.size)) < p
    assert abs(drawn.sum(1).mean() - (p >= t).sum()) < 0.01 * p.size
    assert expected_count_threshold(np.zeros(5)) == np.inf
    prof = depth_profile([1, 0, 1, 1], [1.0, 2.0, 8.0, 9.0], extent=(0, 10), bins=2)
    assert prof["percent_flawed"].tolist() == [50.0, 100.0]
    rev = depth_profile([1, 0, 1, 1], [1.0, 2.0, 8.0, 9.0], extent=(0, 10), bins=2,
                        from_end=True)
    assert rev["percent_flawed"].tolist() == [100.0, 50.0]


# -- classifiers on phantoms ------------------------------------------------------------------
@pytest.fixture(scope="module")
def phantoms():
    from electrode_ct.synth import electrode

    kw = dict(voxel_size=0.5, radius_mean_um=3.0, radius_sd_um=0.7, modality="nano",
              crack_width_um=1.0)
    a = electrode((64, 64, 64), seed=21, **kw)
    b = electrode((64, 64, 64), seed=22, **kw)
    pa = prepare_scan(a.grey.numpy(), a.particles.numpy(), spacing=a.grey.spacing)
    pb = prepare_scan(b.grey.numpy(), b.particles.numpy(), spacing=b.grey.spacing)
    return a, b, pa, pb


def test_known_cracked_vs_intact_descriptors():
    # two spheres, one with a crack: the cracked one has the larger deficit and dark fraction
    g1, l1, _, _ = _cracked_sphere(n=36, r=12, half_width=1, noise=10.0, seed=1)
    g2, l2, _, _ = _cracked_sphere(n=36, r=12, half_width=0, noise=10.0, seed=2)
    grey = np.concatenate([g1, g2], axis=2)
    labels = np.concatenate([l1, l2 * 2], axis=2)
    from electrode_ct.cracks.descriptors import particle_descriptors

    d, ref = particle_descriptors(grey, labels, np.array([1, 2]), spacing=0.5)
    assert ref.contrast > 100
    cracked, intact = d.iloc[0], d.iloc[1]
    for col in ("pv_deficit", "dark_fraction", "tophat_mean", "deficit_inner"):
        assert cracked[col] > intact[col] + 0.01, col
    assert cracked["core_rel"] < intact["core_rel"]


def test_features_classifier_generalises(phantoms):
    from electrode_ct.cracks import classify_scan, train_cracks_model

    a, b, pa, pb = phantoms
    model = train_cracks_model(pa, a.truth)
    res = classify_scan(pb, model, truth=b.truth)
    assert res.summary["auc"] > 0.8
    assert abs(res.summary["percent_flawed"] - res.summary["percent_flawed_truth"]) < 25
    # reference levels map back to the input grey units (the CNN slices use them)
    ref = pb.reference
    raw_solid = float(np.median(pb.grey[(pb.healed > 0) & ~b.cracks.numpy().astype(bool)]))
    raw_bg = float(np.median(pb.grey[pb.labels == 0]))
    contrast = raw_solid - raw_bg
    assert abs(ref.to_input(ref.solid) - raw_solid) < 0.15 * contrast
    assert abs(ref.to_input(ref.background) - raw_bg) < 0.15 * contrast
    # default rule: as many flawed as the calibrated scores expect
    assert model.threshold_rule == "expected"
    n_expected = round(float(res.table["flaw_score"].sum()))
    assert res.summary["n_flawed"] == n_expected
    assert res.summary["percent_flawed_expected"] == pytest.approx(
        100 * res.table["flaw_score"].mean())
    cols = {"label", "flaw_score", "flawed", "crack_volume_um3", "crack_volume_fraction",
            "crack_surface_um2", "crack_tilt_deg", "crack_depth_um", "reference_flawed"}
    assert cols <= set(res.table.columns)
    # 3-phase volume: flaw voxels only inside flawed particles
    flawed_ids = res.table.loc[res.table["flawed"], "label"].to_numpy()
    lab_at_flaw = pb.healed[res.phases == 2]
    assert np.isin(lab_at_flaw, flawed_ids).all()


def test_default_model_matches_retrained(phantoms, tmp_path):
    import importlib.util
    from pathlib import Path

    from electrode_ct.cracks import DEFAULT_MODEL, classify_scan, load_cracks_model
    from electrode_ct.cracks.evaluate import roc_auc as auc

    spec = importlib.util.spec_from_file_location(
        "tdc", Path(__file__).parents[1] / "scripts" / "train_default_cracks_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    retrained = mod.train_default(shape=(64, 64, 64), seeds=(11,), modalities=("nano",))
    shipped = load_cracks_model(DEFAULT_MODEL)
    assert shipped.features == retrained.features
    _, b, _, pb = phantoms
    y = classify_scan(pb, shipped, truth=b.truth).table
    s_ship = shipped.score(pb.descriptors)
    s_new = retrained.score(pb.descriptors)
    ref = y["reference_flawed"].to_numpy()
    assert auc(ref, s_ship) > 0.8 and auc(ref, s_new) > 0.8
    assert abs(auc(ref, s_ship) - auc(ref, s_new)) < 0.08
    assert np.corrcoef(s_ship, s_new)[0, 1] > 0.85


def test_classify_chain_equals_its_steps_and_checks_its_options(phantoms):
    import json

    from electrode_ct.cracks import classify, classify_scan, load_cracks_model
    from electrode_ct.cracks.models import resolve_model

    _, b, _, pb = phantoms
    whole = classify(b.grey.numpy(), b.particles.numpy(), spacing=b.grey.spacing,
                     truth=b.truth, depth_bins=3)
    shipped = load_cracks_model(None)
    steps = classify_scan(pb, shipped, truth=b.truth, depth_bins=3)
    pd.testing.assert_frame_equal(whole.table, steps.table, check_exact=True)
    assert np.array_equal(whole.phases, steps.phases)
    assert json.dumps(whole.summary) == json.dumps(steps.summary)
    assert len(whole.summary["percent_flawed_by_depth"]) == 3
    assert whole.summary["n_flawed"] == int(whole.table["flawed"].sum())
    assert resolve_model(shipped) is shipped
    with pytest.raises(InputError, match="method: expected features or cnn"):
        resolve_model(None, method="magic")
    assert resolve_model(None, method="cnn").method == "cnn"  # the shipped CNN
    with pytest.raises(ModelError, match="'features' cracks model"):
        resolve_model(shipped, method="cnn")
    with pytest.raises(InputError, match="split"):
        classify_scan(pb, shipped, split="some")
    with pytest.raises(InputError, match="min_slices"):
        classify_scan(pb, shipped, min_slices=2)


# -- models -----------------------------------------------------------------------------------
def test_features_model_round_trip(phantoms, tmp_path):
    from electrode_ct.cracks import load_cracks_model, train_cracks_model

    a, _, pa, pb = phantoms
    model = train_cracks_model(pa, a.truth, estimator="boosting")
    path = model.save(tmp_path / "f.ectmodel")
    again = load_cracks_model(path, method="features")
    assert np.array_equal(model.score(pb.descriptors), again.score(pb.descriptors))
    with pytest.raises(ModelError, match="features"):
        load_cracks_model(path, method="cnn")
    from electrode_ct.segment.models import read_header

    head = read_header(path)  # #27: what the model was trained on
    assert head["training_spacing_um"] == list(pa.spacing)
    assert len(head["training_data"]["descriptors_sha256"]) == 64


def test_cnn_train_round_trip_and_slice_size(phantoms, tmp_path):
    pytest.importorskip("torch")
    from electrode_ct.cracks import (
        classify_scan,
        load_cracks_model,
        reference_flawed,
        train_cracks_model,
    )
    from electrode_ct.cracks.cnn_model import CNNConfig, CrackSliceCNN, m_sweep

    a, _, pa, pb = phantoms
    cfg = CNNConfig(channels=(4, 8), epochs=2, patience=1, batch=64, seed=1)
    model = train_cracks_model(pa, a.truth, method="cnn", k=4, slice_size=24, cnn_config=cfg)
    assert isinstance(model, CrackSliceCNN)
    assert model.size == 24 and model.training["epochs_run"] >= 1
    # "auto" resolved on the training scan: nano-CT phantom, the fine scale carries cracks
    from electrode_ct.cracks.evaluate import roc_auc
    from electrode_ct.cracks.train import choose_image

    assert roc_auc(reference_flawed(a.truth, pa.ids),
                   pa.descriptors["fine_dark_fraction"].to_numpy()) > 0.65
    assert model.config.image == "both" and model.config.n_images == 2
    assert choose_image("grey", pa.descriptors, np.zeros(len(pa.ids))) == "grey"
    path = model.save(tmp_path / "c.ectmodel")
    again = load_cracks_model(path, method="cnn")
    from electrode_ct.segment.models import read_header

    head = read_header(path)  # #27: what the model was trained on
    assert head["training_spacing_um"] == list(pa.spacing)
    assert len(head["training_data"]["slices_sha256"]) == 64
    res1 = classify_scan(pb, model)
    res2 = classify_scan(pb, again)
    assert np.allclose(res1.table["flaw_score"], res2.table["flaw_score"], atol=1e-6)
    assert res1.slice_prob.shape == (len(pb.ids), 4)
    sweep = m_sweep(res1.slice_prob)
    assert list(sweep) == [1, 2, 3, 4]
    assert all(sweep[m] >= sweep[m + 1] for m in (1, 2, 3))
    assert res1.summary["percent_flawed_vs_m"] == sweep
    with pytest.raises(ModelError, match="24x24"):
        classify_scan(pb, again, slice_size=32)
    with pytest.raises(ModelError, match="cnn"):
        load_cracks_model(path, method="features")
    # the scores are the mean slice probabilities
    assert np.allclose(res1.table["flaw_score"], res1.slice_prob.mean(axis=1))
    # the validation particles are a particle-wise split of the training scan
    order = np.random.default_rng(cfg.seed).permutation(len(pa.ids))
    val = order[:max(2, round(cfg.val_fraction * len(pa.ids)))]
    y_val = reference_flawed(a.truth, pa.ids[val])
    assert 0 < y_val.sum() < len(val) and y_val.sum() == model.training["n_val_flawed"]
    # default rule: the published 0.4, kept by the archive
    assert model.threshold == again.threshold == 0.4 and res1.summary["threshold"] == 0.4
    assert res1.summary["n_flawed"] == int((res1.table["flaw_score"] >= 0.4).sum())
    assert classify_scan(pb, again, threshold=0.4).summary["n_flawed"] == res1.summary["n_flawed"]


def _rewrite_header(path, out, edit):
    """Copy a model archive with its ``model.json`` changed by ``edit(head)``."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "model.json":
                head = json.loads(data)
                edit(head)
                data = json.dumps(head).encode()
            dst.writestr(item, data)
    return out


def test_cnn_grey_image_and_models_saved_by_earlier_versions(phantoms, tmp_path):
    pytest.importorskip("torch")
    from electrode_ct.cracks import classify_scan, load_cracks_model, train_cracks_model
    from electrode_ct.cracks.cnn_model import CNNConfig

    a, _, pa, pb = phantoms
    cfg = CNNConfig(channels=(4,), epochs=1, patience=1, batch=64, seed=1, image="grey")
    model = train_cracks_model(pa, a.truth, method="cnn", k=2, slice_size=16, cnn_config=cfg)
    path = model.save(tmp_path / "g.ectmodel")
    # an archive written before the image option: no such key, loads as a grey model
    old = _rewrite_header(path, tmp_path / "old.ectmodel",
                          lambda head: head["config"].pop("image"))
    again = load_cracks_model(old, method="cnn")
    assert again.config.image == "grey" and again.threshold == 0.4
    res = classify_scan(pb, again)
    assert res.slice_prob.shape == (len(pb.ids), 2)
    assert np.allclose(res.table["flaw_score"], res.slice_prob.mean(axis=1))

    # an archive of the version with the (removed) calibration and count-threshold options,
    # both off: loads, same scores and the published threshold
    def previous(head, calibration=None, rule="fixed"):
        head["config"].update(calibrate=calibration is not None, count_folds=1)
        head.update(calibration=calibration, threshold_rule=rule, count_threshold=0.47)

    prev = load_cracks_model(_rewrite_header(path, tmp_path / "prev.ectmodel", previous))
    assert prev.threshold == 0.4
    assert np.allclose(classify_scan(pb, prev).table["flaw_score"],
                       classify_scan(pb, model).table["flaw_score"], atol=1e-6)
    # either option on: not loaded silently with other scores or another threshold
    for name, kw in (("cal", {"calibration": [1.2, -0.1]}), ("count", {"rule": "count"})):
        bad = _rewrite_header(path, tmp_path / f"{name}.ectmodel",
                              lambda head, kw=kw: previous(head, **kw))
        with pytest.raises(ModelError, match="removed in this version"):
            load_cracks_model(bad)
    with pytest.raises(InputError, match="image"):
        train_cracks_model(pa, a.truth, method="cnn", k=2, slice_size=16,
                           cnn_config=CNNConfig(channels=(4,), epochs=1, image="edges"))


# -- bad input --------------------------------------------------------------------------------
def test_bad_inputs(phantoms):
    from electrode_ct.cracks import reference_flawed

    _, b, _, pb = phantoms
    with pytest.raises(InputError, match="no particles"):
        prepare_scan(np.zeros((8, 8, 8)), np.zeros((8, 8, 8), np.uint32))
    with pytest.raises(ShapeError, match="differs"):
        prepare_scan(np.zeros((8, 8, 9)), np.ones((8, 8, 8), np.uint32))
    with pytest.raises(InputError, match="no row"):
        reference_flawed(b.truth.iloc[5:], pb.ids)
    with pytest.raises(InputError, match="flawed"):
        reference_flawed(pd.DataFrame({"label": pb.ids}), pb.ids)
