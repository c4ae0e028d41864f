"""Tests of CNN segmentation: training, tiled prediction, model files, errors, GPU path."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from electrode_ct.errors import (  # noqa: E402
    ConfigError,
    DependencyError,
    InputError,
    ModelError,
    ShapeError,
)
from electrode_ct.metrics.compare import compare  # noqa: E402
from electrode_ct.segment.cnn.evaluate import collapse_check  # noqa: E402
from electrode_ct.segment.cnn.train import TrainConfig, train  # noqa: E402

TINY = dict(arch="lrcs", channels=8, depth=2, kernel=3, patch=32, patches_per_epoch=64,
            batch_size=8, epochs=20, lr=5e-3, threads=1, members=1, ema=0.0)
"""A tiny network trained for 160 steps. It still improves at its last epoch, so no weight
averaging (an average over its last third scores ~0.03 mean IoU lower on the phantom; the
default EMA is for runs that reach a plateau, see docs/cnn.md)."""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: tiny nets gain nothing from more, and the test machine is shared."""
    from electrode_ct.segment.cnn import _torch

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_torch, "DEFAULT_THREADS", 1)
        yield


def phantom_slice(seed: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Discs (3) with 4-pixel shells (2) in pore (1); grey 50/120/200 + noise σ 12. Exact truth."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    truth = np.ones((size, size), np.uint8)
    for _ in range(7):
        cy, cx, r = rng.uniform(8, size - 8), rng.uniform(8, size - 8), rng.uniform(6, 12)
        d = np.hypot(y - cy, x - cx)
        truth[(d <= r + 4) & (truth == 1)] = 2
        truth[d <= r] = 3
    grey = np.array([0, 50.0, 120.0, 200.0])[truth] + rng.normal(0, 12, truth.shape)
    return grey.astype(np.float32), truth


@pytest.fixture(scope="module")
def trained():
    img, lab = phantom_slice(0)
    vimg, vlab = phantom_slice(1)
    return train(img, lab, config=TrainConfig(**TINY), val=(vimg, vlab),
                 class_names=["pore", "cbd", "active"])


def test_tiny_model_reaches_iou_on_phantom(trained):
    img, lab = phantom_slice(2, size=120)
    pred = trained.model.predict(img).labels[0]
    res = compare(pred, lab)
    assert res["mean_iou"] >= 0.9, res["iou"]
    assert trained.model.class_values == [1, 2, 3]
    assert not trained.collapsed


def test_sparse_labels_are_ignored(trained):
    img, lab = phantom_slice(3)
    sparse = lab.copy()
    sparse[:, ::2] = 0  # half the pixels unlabelled
    cfg = TrainConfig(**{**TINY, "epochs": 1, "patches_per_epoch": 8})
    res = train(img, sparse, config=cfg)
    assert res.model.class_values == [1, 2, 3]
    assert res.history[0]["loss"] > 0


def test_tiled_prediction_equals_untiled(trained):
    from electrode_ct.segment.cnn.predict import predict_plane

    img, _ = phantom_slice(4, size=150)
    norm = trained.model.normalise(img)
    whole = predict_plane(trained.model.net, norm, tile=512)
    tiled = predict_plane(trained.model.net, norm, tile=64, overlap=24, batch_size=3)
    assert whole.shape == tiled.shape == (3, 150, 150)
    np.testing.assert_allclose(tiled.sum(axis=0), 1.0, atol=1e-5)
    assert np.abs(whole - tiled).mean() < 0.01
    assert (whole.argmax(0) == tiled.argmax(0)).mean() > 0.99


@pytest.mark.parametrize("threads", [1, 2])
def test_stacked_volume_prediction_equals_plane_by_plane(trained, monkeypatch, threads):
    """Several whole planes per forward pass (tri-planar, a non-cubic volume, transforms,
    a last partial stack; stacks on 1 or 2 threads) give the numbers of predicting one
    plane at a time."""
    from electrode_ct.segment.cnn import predict as pred_mod

    monkeypatch.setattr(pred_mod, "PIXELS_PER_PASS", 3 * 40 * 40)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(6)
    vol = trained.model.normalise(np.stack([phantom_slice(s, size=40)[0][:, :36]
                                            for s in range(7)]) + rng.normal(0, 1, (7, 40, 36)))
    net = trained.model.net
    try:
        stacked = pred_mod.predict_volume(net, vol, mode="triplanar", transforms=2)
    finally:
        torch.set_num_threads(before)
    one = np.zeros_like(stacked)
    for ax in range(3):
        for i in range(vol.shape[ax]):
            sl = [slice(None)] * 3
            sl[ax] = i
            one[(slice(None), *sl)] += pred_mod.predict_plane(net, vol[tuple(sl)],
                                                              transforms=2)
    np.testing.assert_allclose(stacked, one / 3, atol=1e-5)
    assert np.ptp(stacked) > 0.5  # a real prediction, not a constant


def test_any_image_size_keeps_borders(trained):
    img, lab = phantom_slice(5, size=77)
    pred = trained.model.predict(img, probabilities=True, uncertainty=True)
    assert pred.labels.shape == (1, 77, 77)
    assert pred.probabilities.shape == (3, 1, 77, 77)
    assert pred.uncertainty.min() >= 0 and pred.uncertainty.max() <= 1
    assert compare(pred.labels[0], lab)["mean_iou"] > 0.8
    # the 4-pixel border band (reflect-padded to a multiple of 2**depth) is as right as inside
    band = np.ones(lab.shape, bool)
    band[4:-4, 4:-4] = False
    hit = pred.labels[0] == lab
    assert hit[band].mean() > 0.9 and hit[band].mean() > hit[~band].mean() - 0.05


def test_volume_slicewise_and_triplanar(trained):
    img, _ = phantom_slice(6, size=24)
    vol = np.repeat(img[None], 8, axis=0)
    m = trained.model
    by_z = m.predict(vol, mode="slice", axis=0, probabilities=True).probabilities
    assert by_z.shape == (3, 8, 24, 24)
    # identical slices along z: slice-wise along z gives identical planes
    np.testing.assert_allclose(by_z[:, 0], by_z[:, 5], atol=1e-6)
    tri = m.predict(vol, mode="triplanar").labels
    assert tri.shape == (8, 24, 24)
    assert set(np.unique(tri)) <= {1, 2, 3}
    by_z_labels = np.asarray(m.class_values)[by_z.argmax(0)]
    assert (tri == by_z_labels).mean() > 0.5


def test_model_round_trip(tmp_path, trained):
    from electrode_ct.segment.models import load_model, read_header

    path = trained.model.save(tmp_path / "m.cnn")
    head = read_header(path)
    assert head["kind"] == "cnn" and head["class_names"] == ["pore", "cbd", "active"]
    assert head["arch"] == {"name": "lrcs", "channels": 8, "depth": 2, "kernel": 3}
    assert head["normalisation"] == trained.model.normalisation
    assert head["normalisation"]["mode"] in ("image", "fixed")  # "auto" resolves to one
    loaded = load_model(path)
    img, _ = phantom_slice(7, size=50)
    a = trained.model.predict(img, probabilities=True).probabilities
    b = loaded.predict(img, probabilities=True).probabilities
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_members_average_probabilities_and_round_trip(tmp_path, trained):
    from electrode_ct.segment.cnn.model import CNNModel
    from electrode_ct.segment.models import load_model, read_header

    img, lab = phantom_slice(9)
    cfg = TrainConfig(**{**TINY, "epochs": 2, "patches_per_epoch": 16, "members": 2})
    res = train(img, lab, config=cfg, val=phantom_slice(10), class_names=["p", "c", "a"])
    m = res.model
    assert len(m.nets) == 2 and [r["seed"] for r in m.training["members"]] == [0, 1]
    assert sorted({h["member"] for h in res.history}) == [0, 1]
    # the two members differ (different seeds), the model is their probability mean
    test, _ = phantom_slice(11, size=40)
    single = [CNNModel(n, arch=m.arch, class_values=m.class_values, class_names=m.class_names,
                       normalisation=m.normalisation).predict(test, probabilities=True)
              .probabilities for n in m.nets]
    assert np.abs(single[0] - single[1]).max() > 1e-3
    both = m.predict(test, probabilities=True).probabilities
    np.testing.assert_allclose(both, (single[0] + single[1]) / 2, atol=1e-5)
    path = m.save(tmp_path / "e.cnn")
    assert read_header(path)["members"] == 2
    np.testing.assert_allclose(load_model(path).predict(test, probabilities=True).probabilities,
                               both, atol=1e-6)


def test_model_of_another_kind_is_refused(tmp_path, trained):
    from electrode_ct.segment.cnn.model import load_cnn
    from electrode_ct.segment.models import load_model, write_archive

    other = write_archive(tmp_path / "f.model", {"kind": "forest", "class_values": [1, 2],
                                                  "class_names": ["a", "b"]}, {})
    with pytest.raises(ModelError, match="expected a 'cnn' model"):
        load_cnn(other)
    cnn = trained.model.save(tmp_path / "m.cnn")
    with pytest.raises(ModelError, match="is a 'cnn' model"):
        load_model(cnn, kind="forest")


def test_transfer_learning_starts_from_init(trained, tmp_path):
    path = trained.model.save(tmp_path / "m0.cnn")
    img, lab = phantom_slice(8)
    cfg = TrainConfig(**{**TINY, "epochs": 1, "patches_per_epoch": 8, "lr": 1e-5,
                         "channels": 99})
    res = train(img, lab, config=cfg, init=str(path))
    assert res.model.arch == trained.model.arch  # the init's architecture is kept
    out = compare(res.model.predict(img).labels[0], lab)
    assert out["mean_iou"] > 0.85  # barely changed weights still segment


def test_lr_schedules():
    from electrode_ct.segment.cnn.fit import learning_rate

    step = TrainConfig(lr=1e-3, schedule="step", step_epochs=2, step_gamma=0.3, lr_floor=5e-5)
    rates = [learning_rate(e, step) for e in range(12)]
    assert rates[:2] == [1e-3, 1e-3] and rates[2] == pytest.approx(3e-4)
    assert min(rates) == 5e-5
    cos = TrainConfig(lr=1e-3, epochs=5, lr_floor=1e-5)
    assert learning_rate(0, cos) == pytest.approx(1e-3)
    assert learning_rate(4, cos) == pytest.approx(1e-5)
    # time-boxed: the cosine follows the elapsed fraction when it is further along
    boxed = TrainConfig(lr=1e-3, epochs=100, lr_floor=1e-5, time_limit_s=60.0)
    assert learning_rate(1, boxed, elapsed_s=30.0) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert learning_rate(1, boxed, elapsed_s=90.0) == pytest.approx(1e-5)
    unboxed = TrainConfig(lr=1e-3, epochs=100, lr_floor=1e-5)
    assert learning_rate(1, boxed) == learning_rate(1, unboxed)  # no elapsed time: by epoch


def test_collapse_detection():
    assert collapse_check(np.array([0.0, 0.001, 0.999]), np.array([0.2, 0.1, 0.7]))
    assert collapse_check(np.array([0.18, 0.12, 0.7]), np.array([0.2, 0.1, 0.7])) is None


def test_collapse_warns_on_training_that_fails():
    from electrode_ct.segment.cnn.train import CollapseWarning

    img, lab = phantom_slice(9)
    cfg = TrainConfig(**{**TINY, "epochs": 1, "patches_per_epoch": 8, "lr": 1e-9,
                         "class_weighting": "none", "balance": 0.0, "dice_weight": 0.0})
    # untrained head biased towards the majority class: must be detected
    res = None
    with pytest.warns(CollapseWarning, match="collapsed"):
        import electrode_ct.segment.cnn.train as tr

        orig = tr.net_from_arch

        def biased(arch, k):
            net = orig(arch, k)
            with torch.no_grad():
                net.head.bias[:] = torch.tensor([0.0, 0.0, 50.0])
            return net

        tr.net_from_arch = biased
        try:
            res = train(img, lab, config=cfg)
        finally:
            tr.net_from_arch = orig
    assert res.collapsed


def test_hyperparameter_search_ranks(trained):
    from electrode_ct.segment.cnn.search import search

    img, lab = phantom_slice(10, size=64)
    vimg, vlab = phantom_slice(11, size=64)
    base = TrainConfig(**{**TINY, "epochs": 2, "patches_per_epoch": 16})
    table = search(img, lab, val=(vimg, vlab), space={"lr": [1e-7, 5e-3], "kernel": [3, 5]},
                   config=base, strategy="random", n_trials=3)
    assert list(table["rank"]) == [1, 2, 3] and len(table.drop_duplicates(["lr", "kernel"])) == 3
    assert table["val_mean_iou"].is_monotonic_decreasing
    assert table["val_mean_iou"].between(0, 1).all()
    with pytest.raises(ConfigError, match="unknown parameter"):
        search(img, lab, val=(vimg, vlab), space={"colour": [1]}, config=base)


@pytest.mark.parametrize("option", ["label_smoothing", "adapt_bn", "priors", "distill",
                                    "patience"])
def test_retired_options_are_refused(option):
    """Options measured without gain were removed (docs/cnn.md): an error, not ignored."""
    with pytest.raises(TypeError, match=option):
        TrainConfig(**{option: 1})


def test_retired_training_inputs_and_normalisation_are_refused():
    img, lab = phantom_slice(0, size=48)
    cfg = TrainConfig(**{**TINY, "epochs": 1, "patches_per_epoch": 8})
    for key in ("unlabelled", "teachers"):
        with pytest.raises(TypeError, match=key):
            train(img, lab, config=cfg, **{key: img})
    with pytest.raises(ConfigError, match="normalisation 'slice': expected one of auto, "
                                          "image, fixed"):
        train(img, lab, config=TrainConfig(**{**TINY, "normalisation": "slice"}))


# -- bad input ----------------------------------------------------------------------------
def test_bad_inputs():
    img, lab = phantom_slice(0, size=48)
    cfg = TrainConfig(**{**TINY, "epochs": 1, "patches_per_epoch": 8})
    with pytest.raises(ShapeError, match="differs from the image shape"):
        train(img, lab[:40], config=cfg)
    with pytest.raises(InputError, match="at least 2 labelled classes"):
        train(img, np.where(lab > 0, 2, 0).astype(np.uint8), config=cfg)
    with pytest.raises(InputError, match="--patch 64: larger than a training image"):
        train(img, lab, config=TrainConfig(**{**TINY, "patch": 64}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: the error path is moot")
def test_cuda_absent_gives_clear_error():
    from electrode_ct.segment.cnn._torch import resolve_device

    with pytest.raises(InputError, match="CUDA is not available.*use --device cpu"):
        resolve_device("cuda")
    img, lab = phantom_slice(0, size=48)
    with pytest.raises(InputError, match="--device cpu"):
        train(img, lab, config=TrainConfig(**{**TINY, "device": "cuda"}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_training_and_prediction():
    img, lab = phantom_slice(0)
    res = train(img, lab, config=TrainConfig(**{**TINY, "device": "cuda"}))
    pred = res.model.predict(img, device="cuda").labels[0]
    assert compare(pred, lab)["mean_iou"] >= 0.9


def test_missing_torch_gives_dependency_error(monkeypatch):
    from electrode_ct.segment.cnn._torch import require_torch

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(DependencyError, match="dl"):
        require_torch()


def test_retired_prediction_options_are_refused(trained):
    img, _ = phantom_slice(12, size=40)
    for option, value in (("adapt_bn", True), ("priors", "em")):
        with pytest.raises(ConfigError, match=f"unknown prediction option.*{option}"):
            trained.model.predict(img, **{option: value})


class _Threshold(torch.nn.Module):
    """Toy 'network': class 1 where the normalised input is above 0 (logits ±10 x)."""

    def forward(self, x):
        return torch.cat([-10 * x, 10 * x], dim=1)


def _val_case(bright_fraction: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Dark (grey 0-0.4, label 1) and bright (0.6-1, label 2) columns of a 64 × 64 image,
    ``bright_fraction`` of them bright, grey + ``shift``."""
    lab = np.ones((64, 64), np.uint8)
    lab[:, : int(64 * bright_fraction)] = 2
    ramp = np.linspace(0.0, 0.4, 64, dtype=np.float32)[:, None]
    grey = np.where(lab == 2, 0.6, 0.0).astype(np.float32) + ramp + shift
    return grey, lab


@pytest.mark.parametrize(("bright", "shift", "expected"),
                         [(0.85, 0.0, "fixed"),   # same grey scale, other phase fractions
                          (0.5, 0.7, "image")])   # balanced fractions, grey levels drifted
def test_auto_normalisation_keeps_what_validates_better(bright, shift, expected):
    from electrode_ct.segment.cnn.data import validation_planes
    from electrode_ct.segment.cnn.evaluate import choose_normalisation
    from electrode_ct.segment.cnn.normalise import robust_stats

    train_img, _ = _val_case(0.5, 0.0)
    stats = robust_stats(train_img)  # centre 0.5: the threshold sits between the phases
    val = _val_case(bright, shift)
    values = np.array([1, 2])
    image_planes = validation_planes(val, "image", stats, values)
    fixed_planes = validation_planes(val, "fixed", stats, values)
    assert np.allclose(fixed_planes[0][0], (val[0] - stats[0]) / stats[1])  # training stats
    mode, scores, planes, _ = choose_normalisation([_Threshold().eval()], image_planes,
                                                    fixed_planes, 2, "cpu")
    assert mode == expected and planes is (fixed_planes if expected == "fixed" else image_planes)
    other = "image" if expected == "fixed" else "fixed"
    assert scores[expected] == pytest.approx(1.0) and scores[other] < 0.9


def test_auto_normalisation_is_recorded(trained):
    choice = trained.model.training["normalisation_choice"]
    assert set(choice) == {"image", "fixed"}
    best = "fixed" if choice["fixed"] > choice["image"] else "image"
    assert trained.model.normalisation["mode"] == best
    with pytest.raises(ConfigError, match="normalisation"):
        TrainConfig(normalisation="zscore").check()


def test_model_file_states_training_data_hash(trained, tmp_path):
    """#27: the header carries the SHA-256 of the training images and labels."""
    from electrode_ct.segment.models import array_digest, read_header

    img, lab = phantom_slice(0)
    head = read_header(trained.model.save(tmp_path / "m.ectmodel"))
    assert head["training_data"] == {"images_labels_sha256": array_digest(img, lab)}
    assert head["format_version"] == 2 and "training_spacing_um" in head
    other = array_digest(*phantom_slice(1))
    assert other != head["training_data"]["images_labels_sha256"]


def test_torch_threads_follow_the_process_cap(monkeypatch):
    """An engine worker (OMP_NUM_THREADS = its threads) runs torch on that many threads;
    an explicit count wins; without a cap the default."""
    from electrode_ct.segment.cnn import _torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _torch.default_threads(None) == 1
    assert _torch.default_threads(3) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _torch.default_threads(None) == _torch.DEFAULT_THREADS
