"""Tests of weight averaging (EMA) in CNN training."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from electrode_ct.errors import ConfigError  # noqa: E402
from electrode_ct.segment.cnn.averaging import WeightAverage, capped_decay  # noqa: E402
from electrode_ct.segment.cnn.train import TrainConfig, train  # noqa: E402
from test_cnn import TINY, one_thread, phantom_slice  # noqa: E402,F401


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))


def test_ema_follows_the_closed_form_with_warm_up():
    net = _net()
    avg = WeightAverage(net, 0.6)
    for t, c in enumerate([1.0, -2.0, 3.0, 0.5, 4.0]):
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(c)
        net[1].num_batches_tracked.fill_(t + 1)
        avg.update(net)
    # decay_t = min(0.6, t / (t + 1)) = 0, 0.5, 0.6, 0.6, 0.6 (the random start is dropped):
    # 1 -> (1 - 2) / 2 = -0.5 -> 0.6 * -0.5 + 0.4 * 3 = 0.9 -> 0.74 -> 0.6 * 0.74 + 1.6 = 2.044
    torch.testing.assert_close(avg.net[0].weight, torch.full_like(net[0].weight, 2.044))
    torch.testing.assert_close(avg.net[1].bias, torch.full((2,), 2.044))
    assert avg.steps == 5 and int(avg.net[1].num_batches_tracked) == 5  # counters copied
    # the averaged copy is separate from the trained network and needs no gradients
    assert torch.equal(net[0].weight, torch.full_like(net[0].weight, 4.0))
    assert not any(p.requires_grad for p in avg.net.parameters())
    # batch-norm running statistics are averaged too (the net's stay at 0)
    with torch.no_grad():
        net[1].running_mean.fill_(10.0)
    avg.update(net)
    torch.testing.assert_close(avg.net[1].running_mean, torch.full((2,), 4.0))


def test_ema_decay_is_checked():
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match="ema"):
            TrainConfig(ema=bad).check()
    with pytest.raises(ConfigError, match="ema"):
        WeightAverage(_net(), -0.1)


def test_decay_is_capped_to_a_third_of_the_planned_steps():
    assert capped_decay(0.995, 640) == 0.995  # 200-step span < 213
    assert capped_decay(0.995, 160) == pytest.approx(1 - 3 / 160)  # tiny runs: 53 steps
    assert capped_decay(0.9, 6) == 0.5  # span 2 steps
    assert capped_decay(0.9, 3) == 0.0 and capped_decay(0.9, 0) == 0.0  # last weights
    # decay 0 keeps exactly the last weights
    net = _net()
    avg = WeightAverage(net, 0.0)
    for c in (1.0, 2.0):
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(c)
        avg.update(net)
    torch.testing.assert_close(avg.net[0].weight, net[0].weight)


def test_training_keeps_the_averaged_weights():
    img, lab = phantom_slice(0)
    cfg = TrainConfig(**{**TINY, "epochs": 6, "ema": 0.9})
    base = train(img, lab, config=TrainConfig(**{**TINY, "epochs": 6}),
                 val=phantom_slice(1)).model
    ema = train(img, lab, config=cfg, val=phantom_slice(1))
    # same seed, same optimiser trajectory: only the kept (averaged) weights differ
    a = dict(base.net.state_dict())
    b = dict(ema.model.net.state_dict())
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].dtype.is_floating_point)
    assert ema.model.training["config"]["ema"] == 0.9
    test, truth = phantom_slice(2, size=64)
    assert np.mean(ema.model.predict(test).labels[0] == truth) > 0.8


def test_keep_last_or_best_validation_weights():
    from electrode_ct.segment.cnn.data import training_planes
    from electrode_ct.segment.cnn.evaluate import evaluate

    img, lab = phantom_slice(3)
    vimg, vlab = phantom_slice(4)
    vplanes, _, _ = training_planes(vimg, vlab, all_axes=False)
    cfg = {**TINY, "epochs": 5, "patches_per_epoch": 32}
    for keep in ("best", "last"):
        res = train(img, lab, config=TrainConfig(**{**cfg, "keep": keep}), val=(vimg, vlab))
        scores = [h["val_mean_iou"] for h in res.history]
        kept = evaluate(res.model.nets, vplanes, 3, "cpu")[0]
        assert len(scores) == 5  # every epoch runs: no early stopping
        if keep == "best":  # the best epoch's weights
            assert kept == pytest.approx(max(scores), abs=1e-9)
            assert res.best_epoch == 1 + int(np.argmax(scores))
        else:  # the final weights
            assert res.best_epoch == 5
            assert kept == pytest.approx(scores[-1], abs=1e-9)
        assert res.model.training["best_val_mean_iou"] == pytest.approx(kept, abs=1e-9)
    with pytest.raises(ConfigError, match="keep"):
        TrainConfig(keep="first").check()
