"""Inference copies of the networks (batch-norm folded into the convolutions): the same
probabilities within float32 rounding and the same labels as the networks as trained."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from electrode_ct.segment.cnn.nets import build_net, fold_batch_norm  # noqa: E402
from electrode_ct.segment.cnn.predict import predict_volume  # noqa: E402


def _net(arch: str, seed: int):
    """A small network whose batch-norms hold non-trivial statistics and affine terms."""
    torch.manual_seed(seed)
    net = build_net(arch, n_classes=3, channels=4, depth=2, kernel=3)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def _image(seed: int, shape=(12, 40, 36)) -> np.ndarray:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.normal(0, 1, shape), 2.0).astype(np.float32) * 4


@pytest.mark.parametrize("arch", ["unet", "lrcs"])
def test_folded_network_gives_the_same_logits(arch):
    net = _net(arch, 1)
    folded = fold_batch_norm(net)
    x = torch.from_numpy(_image(2)[:4, None])
    with torch.inference_mode():
        want, got = net(x), folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # untouched
    scale = float(want.abs().max())
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=2e-6 * scale)


@pytest.fixture(scope="module")
def trained():
    """A two-member U-Net trained a few steps on one slice of an electrode phantom."""
    from electrode_ct.segment.cnn import _torch
    from electrode_ct.segment.cnn.train import TrainConfig, train
    from electrode_ct.synth.phantom import electrode

    ph = electrode((16, 40, 40), seed=2, radius_mean_um=1.5, radius_sd_um=0.3,
                  cracked_fraction=0.0)
    grey = ph.grey.numpy().astype(np.float32)
    truth = ph.phases.numpy().astype(np.uint8) + 1
    cfg = TrainConfig(arch="unet", channels=4, depth=2, kernel=3, patch=16,
                      patches_per_epoch=32, batch_size=8, epochs=6, lr=5e-2, threads=1,
                      members=2, ema=0.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_torch, "DEFAULT_THREADS", 1)
        model = train(grey[8], truth[8], config=cfg,
                      class_names=["pore", "cbd", "active"]).model
    return model, grey


@pytest.mark.parametrize("mode", ["slice", "triplanar"])
def test_model_prediction_equals_the_networks_as_trained(trained, mode):
    """predict_proba (folded copies) against predict_volume on the trained members."""
    model, grey = trained
    assert len(model.nets) == 2
    got = model.predict_proba(grey, mode=mode, tile=16, overlap=4, threads=1)
    with torch.inference_mode():
        want = predict_volume(model.nets, model.normalise(grey), mode=mode, tile=16,
                              overlap=4)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got.argmax(0), want.argmax(0))
    assert len(np.unique(want.argmax(0))) >= 2  # labels that vary: not a collapsed model
