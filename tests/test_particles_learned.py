"""The learned particle instance model: training, tri-planar assembly, CLI, pipeline, errors."""

from dataclasses import replace

import numpy as np
import pytest
import tifffile
import yaml

pytest.importorskip("torch")

from electrode_ct.errors import InputError, ModelError, ShapeError  # noqa: E402
from electrode_ct.metrics.instances import away_from_border, match_instances  # noqa: E402
from electrode_ct.particles import separate_particles  # noqa: E402
from electrode_ct.particles.learned import (  # noqa: E402
    _learned_result,
    default_model,
    separate_learned,
    tri_planar,
)
from electrode_ct.segment.cnn.instances import (  # noqa: E402
    INSTANCE_CLASSES,
    INSTANCE_CONFIG,
    instance_targets,
    load_instance_model,
    train_instances,
)
from electrode_ct.synth import electrode  # noqa: E402
from test_particles import spheres as _spheres  # noqa: E402

EASY = {"voxel_size": 1.0, "radius_mean_um": 5.0, "radius_sd_um": 1.0, "cbd_fraction": 0.0,
        "active_fraction": 0.4, "cracked_fraction": 0.3, "crack_width_um": 1.5,
        "crack_kinds": ("radial",), "snr": 20.0, "psf_sigma_vox": 0.7, "noise_corr_vox": 0.0,
        "cupping": 0.0, "shading": 0.0, "particle_sd": 0.0}
"""A small, clean phantom (touching and cracked particles of 5 voxels radius, CNR 20)."""


def _phantom(seed, n=48):
    ph = electrode((n, n, n), seed=seed, **EASY)
    exact = ph.phases.numpy() == ph.phases.class_map["active"]
    return ph.grey.numpy(), ph.particles.numpy(), np.where(exact, ph.particles.numpy(), 0)


@pytest.fixture(scope="module")
def tiny():
    """A tiny model trained on seed 1 (~20 CPU-s: 20 epochs of 16 steps, one thread)."""
    grey, labels, _ = _phantom(1)
    cfg = replace(INSTANCE_CONFIG, epochs=20, threads=1)
    return train_instances(grey, labels, config=cfg)


def spheres(shape, centres, r):
    """``test_particles.spheres`` as uint32 instance labels."""
    return _spheres(shape, centres, r).astype(np.uint32)


def touching_grey(truth, seed=0):
    """The touching spheres imaged like the micro-CT preset (blur 1.4 voxel, CNR 6)."""
    from scipy import ndimage as ndi

    ideal = np.where(truth > 0, 0.545, 0.385).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 0.16 / 6, truth.shape)
    return ((ndi.gaussian_filter(ideal, 1.4) + noise) * 40000).astype(np.uint16)


def test_tiny_model_separates_an_unseen_phantom(tiny):
    model = tiny.model
    assert model.kind == "particles-cnn" and model.class_names == list(INSTANCE_CLASSES)
    grey, _, truth = _phantom(2)
    sep = separate_learned(grey, model, spacing=1.0, h=0.25, threads=1)
    m = match_instances(*away_from_border(sep.labels, truth), scores=sep.scores)
    assert sep.method == "learned" and m["ap50"] >= 0.9


def test_model_round_trip_and_kind(tiny, tmp_path):
    path = tiny.model.save(tmp_path / "m.ectmodel")
    back = load_instance_model(path)
    grey = _phantom(2, n=24)[0]
    a = tiny.model.predict_proba(grey, mode="triplanar", threads=1)
    b = back.predict_proba(grey, mode="triplanar", threads=1)
    assert np.allclose(a, b, atol=1e-6)
    # a segmentation model is not an instance model
    from electrode_ct.segment.cnn.train import TrainConfig, train

    lab = np.where(grey > np.median(grey), 2, 1).astype(np.uint8)
    seg = train(grey, lab, config=TrainConfig(channels=4, depth=1, patch=16, epochs=1,
                                               patches_per_epoch=8, members=1, threads=1))
    seg.model.save(tmp_path / "seg.ectmodel")
    with pytest.raises(ModelError, match="is a 'cnn' model, expected a 'particles-cnn'"):
        load_instance_model(tmp_path / "seg.ectmodel")
    with pytest.raises(ModelError):
        separate_learned(grey, tmp_path / "seg.ectmodel")


def test_perfect_plane_predictions_reproduce_the_truth():
    truth = spheres((24, 28, 44), [(12, 14, 11), (12, 14, 29), (12, 4, 20)], 9)
    # perfect per-plane probabilities: one-hot of the targets, the same along every axis
    targets = instance_targets(truth)
    onehot = np.stack([(targets == v).astype(np.float32) for v in INSTANCE_CLASSES.values()])
    prob = tri_planar([onehot, onehot, onehot])
    region, bnd = prob[0] < 0.5, prob[2]
    sep = _learned_result(region, region, bnd, spacing=(1.0, 1.0, 1.0), h=None,
                          min_volume_um3=0.0, compactness=0.0, smooth=1.0)
    assert sep.n_particles == 3
    m = match_instances(sep.labels, truth)
    assert m["ap50"] == 1.0 and m["mean_matched_iou"] > 0.97
    # 2-D instance planes voted by the tri-planar assembly
    tri = separate_particles(truth > 0, method="triplanar", planes=[truth, truth, truth])
    assert tri.n_particles == 3 and match_instances(tri.labels, truth)["ap50"] == 1.0


def test_shipped_model_separates_touching_spheres():
    model = default_model()
    assert model.kind == "particles-cnn" and model.training.get("phantoms")
    truth = spheres((24, 24, 44), [(12, 12, 11), (12, 12, 29)], 9)
    sep = separate_learned(touching_grey(truth), spacing=0.5, threads=1)
    m = match_instances(sep.labels, truth)
    assert sep.n_particles == 2 and m["ap50"] == 1.0 and m["merges"] == 0


def test_bad_inputs():
    truth = spheres((16, 16, 32), [(8, 8, 8), (8, 8, 22)], 7)
    grey = touching_grey(truth)
    with pytest.raises(InputError, match="binary mask"):
        train_instances(grey, (truth > 0).astype(np.uint8))
    with pytest.raises(ShapeError, match="differs from the grey"):
        train_instances(grey, truth[1:])
    with pytest.raises(InputError, match="no contact"):
        train_instances(grey, spheres((16, 16, 32), [(8, 8, 6), (8, 8, 25)], 5))
    bnd = np.zeros(truth.shape, np.float32)
    bnd[0, 0, 0] = 1.5
    with pytest.raises(InputError, match=r"boundary probability map must lie in \[0, 1\]"):
        separate_particles(truth > 0, method="boundary", boundary=bnd)
    bnd[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        separate_particles(truth > 0, method="boundary", boundary=bnd)


def test_cli_train_predict_boundary_and_errors(run_cli, tmp_path):
    grey, labels, _ = _phantom(1, n=32)
    tifffile.imwrite(tmp_path / "g.tif", grey)
    tifffile.imwrite(tmp_path / "l.tif", labels.astype(np.uint16))
    tifffile.imwrite(tmp_path / "mask.tif", (labels > 0).astype(np.uint8))
    code, out, err = run_cli("particles", "train", tmp_path / "g.tif", tmp_path / "l.tif",
                             "--model", tmp_path / "m.ectmodel", "--epochs", "1",
                             "--threads", "1", "--val", tmp_path / "g.tif", tmp_path / "l.tif",
                             "--json")
    assert code == 0, err
    import json

    assert json.loads(out)["kind"] == "particles-cnn"
    code, out, err = run_cli("particles", tmp_path / "g.tif", tmp_path / "p.tif", "--method",
                             "learned", "--model", tmp_path / "m.ectmodel", "--json")
    assert code == 0, err
    res = json.loads(out)
    lab = tifffile.imread(tmp_path / "p.tif")
    assert res["method"] == "learned" and res["n_particles"] == int(lab.max())
    code, out, err = run_cli("compare-instances", tmp_path / "p.tif", tmp_path / "l.tif",
                             "--slices", "5", "--plot", tmp_path / "pr.png", "--overlay",
                             tmp_path / "ov.png", "--grey", tmp_path / "g.tif", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["plot"] == str(tmp_path / "pr.png") and len(res["slices"]["slices"]) == 5
    from PIL import Image

    assert Image.open(tmp_path / "pr.png").size[0] > 100
    assert Image.open(tmp_path / "ov.png").size[0] > 100
    code, _, err = run_cli("segment", "predict", tmp_path / "m.ectmodel", tmp_path / "g.tif",
                           tmp_path / "c.tif", "--boundary", tmp_path / "b.tif")
    assert code == 0, err
    b = tifffile.imread(tmp_path / "b.tif")
    assert b.shape == grey.shape and b.min() >= 0 and b.max() <= 1
    code, _, err = run_cli("particles", tmp_path / "mask.tif", tmp_path / "pb.tif", "--phase",
                           "1", "--method", "boundary", "--boundary", tmp_path / "b.tif")
    assert code == 0, err
    # bad input: one error line, exit 2, nothing written
    tifffile.imwrite(tmp_path / "bad.tif", (b * 3).astype(np.float32))
    cases = [
        (("particles", "train", tmp_path / "g.tif", tmp_path / "mask.tif", "--model",
          tmp_path / "x.ectmodel"), "binary mask", tmp_path / "x.ectmodel"),
        (("particles", "train", tmp_path / "g.tif", tmp_path / "c.tif", "--model",
          tmp_path / "x.ectmodel"), "no background", tmp_path / "x.ectmodel"),
        (("particles", "train", tmp_path / "g.tif", tmp_path / "b.tif", "--model",
          tmp_path / "x.ectmodel"), "integer", tmp_path / "x.ectmodel"),
        (("particles", tmp_path / "mask.tif", tmp_path / "q.tif", "--phase", "1", "--method",
          "boundary", "--boundary", tmp_path / "bad.tif"), "[0, 1]", tmp_path / "q.tif"),
        (("particles", tmp_path / "g.tif", tmp_path / "q.tif", "--method", "learned",
          "--model", tmp_path / "bad.tif"), "not an electrode-ct model", tmp_path / "q.tif"),
    ]
    tifffile.imwrite(tmp_path / "g2.tif", grey[1:])
    cases.append((("particles", "train", tmp_path / "g2.tif", tmp_path / "l.tif", "--model",
                   tmp_path / "x.ectmodel"), "do not match", tmp_path / "x.ectmodel"))
    for args, message, target in cases:
        code, _, err = run_cli(*args)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
        assert "Traceback" not in err and not target.exists()


@pytest.mark.parametrize(("method", "least_ap50"),
                         [("learned", 0.75), ("triplanar", 0.65), ("boundary", 0.15)])
def test_pipeline_model_methods(tiny, tmp_path, method, least_ap50):
    """Each model-driven method of the pipeline runs end to end on the tiny model; the
    boundary method (cores below 0.5 of a map the tiny model keeps under-confident)
    merges most."""
    from electrode_ct.pipeline import parse_config, run_pipeline

    grey, _, truth = _phantom(2, n=40)
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    tifffile.imwrite(tmp_path / "phases.tif", (truth > 0).astype(np.uint8) * 2)
    tiny.model.save(tmp_path / "m.ectmodel")
    cfg = {"input": {"grey": str(tmp_path / "grey.tif"), "voxel_size": 1.0,
                     "phases": str(tmp_path / "phases.tif"),
                     "class_map": {"pore": 0, "active": 2}},
           "output": str(tmp_path / "out"),
           "steps": {"segment": {"enabled": False},
                     "particles": {"phase": "active", "method": method,
                                   "model": str(tmp_path / "m.ectmodel")},
                     "measure": {"enabled": False}, "metrics": {"enabled": False},
                     "cracks": {"enabled": False}, "stats": {"enabled": False},
                     "report": {"enabled": method == "learned"}}}
    tifffile.imwrite(tmp_path / "truth.tif", truth.astype(np.uint32))
    cfg["input"]["reference_particles"] = str(tmp_path / "truth.tif")
    run_pipeline(parse_config(yaml.safe_load(yaml.safe_dump(cfg))), quiet=True)
    lab = tifffile.imread(next((tmp_path / "out" / "volumes").glob("particles.*")))
    m = match_instances(*away_from_border(lab.astype(np.uint32), truth.astype(np.uint32)))
    assert lab.max() > 10 and m["ap50"] >= least_ap50
    if method == "learned":  # the report's instance evaluation of the same labels
        html = (tmp_path / "out" / "report.html").read_text()
        assert "Particle instances vs reference" in html and "precision-recall" in html
        whole = match_instances(lab.astype(np.uint32), truth.astype(np.uint32))
        assert f"{whole['ap50']:.4g}"[:4] in html


@pytest.mark.parametrize("scale", [1, 2])
def test_relative_seeds_follow_shape_not_size(scale):
    """A peanut (centres r apart: saddle 0.87 of the peaks) is one seed and two spheres
    with a thin neck (centres 1.8 r apart: 0.44) are two, at any size; an absolute h of
    1 voxel splits the large peanut."""
    from electrode_ct.particles.seeding import (
        distance_map,
        relative_seed_markers,
        seed_markers,
    )

    r = 6 * scale
    n = 8 * r
    for gap, seeds in ((1.0, 1), (1.8, 2)):
        c = n // 2
        body = spheres((2 * r + 4, 2 * r + 4, n), [(r + 2, r + 2, c - gap * r / 2),
                                                   (r + 2, r + 2, c + gap * r / 2)], r) > 0
        dist = distance_map(body, (1.0, 1.0, 1.0))
        assert relative_seed_markers(dist, 0.4, body, voxel_um=1.0).max() == seeds
        if gap == 1.0:
            assert seed_markers(dist, 1.0, body).max() == scale  # absolute h: size-dependent
