"""Tests of ensemble distillation (one student trained on its teachers' probabilities)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from electrode_ct.errors import InputError  # noqa: E402
from electrode_ct.metrics.compare import compare  # noqa: E402
from electrode_ct.segment.cnn.distill import (  # noqa: E402
    soft_loss,
    teacher_targets,
    unlabelled_planes,
)
from electrode_ct.segment.cnn.train import IGNORE, TrainConfig, loss_fn, train  # noqa: E402
from test_cnn import TINY, one_thread, phantom_slice  # noqa: E402,F401


@pytest.fixture(scope="module")
def distilled():
    """Two teachers and a student distilled on the labelled slice and one unlabelled slice."""
    img, lab = phantom_slice(0)
    cfg = TrainConfig(**{**TINY, "epochs": 10, "members": 2, "distill": True})
    return train(img, lab, config=cfg, val=phantom_slice(1), unlabelled=[phantom_slice(4)[0]],
                 class_names=["pore", "cbd", "active"])


def test_soft_loss_with_one_hot_targets_equals_the_hard_loss():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn((2, 3, 12, 12), generator=gen)
    target = torch.randint(0, 3, (2, 12, 12), generator=gen)
    weight = torch.tensor([0.5, 2.0, 1.0])
    onehot = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    for dice in (0.0, 1.0):
        assert float(soft_loss(logits, onehot, weight, dice)) == pytest.approx(
            float(loss_fn(logits, target, weight, dice)), rel=1e-5)
    assert IGNORE < 0


def test_unlabelled_planes_of_a_volume_along_each_axis():
    vol = np.random.default_rng(0).normal(size=(5, 20, 30)).astype(np.float32)
    planes = unlabelled_planes([vol, vol[0]], normalisation="image", stats=(0.0, 1.0),
                               all_axes=True, max_planes=4)
    # z: 4 of 5 planes, y: 4 of 20, x: 4 of 30, and the 2-D image
    assert [p.shape for p in planes] == [(20, 30)] * 4 + [(5, 30)] * 4 + [(5, 20)] * 4 + [
        (20, 30)]
    assert len(unlabelled_planes([vol], normalisation="image", stats=(0.0, 1.0),
                                 all_axes=False)) == 5


def test_distilled_model_is_one_student_close_to_its_teachers(distilled):
    m, teachers = distilled.model, distilled.teachers
    assert len(m.nets) == 1 and len(teachers.nets) == 2
    rec = m.training["distilled"]
    assert [t["seed"] for t in rec["teachers"]] == [0, 1]
    assert rec["labelled_planes"] == 1 and rec["unlabelled_planes"] == 1
    assert m.training["members"][0]["seed"] == 2
    assert sorted({h["member"] for h in distilled.history}) == [0, 1, 2]  # 2 = the student
    img, lab = phantom_slice(2, size=120)
    student = m.predict(img).labels[0]
    teacher = teachers.predict(img).labels[0]
    assert compare(student, lab)["mean_iou"] >= 0.8  # untrained: ~0.3
    assert (student == teacher).mean() >= 0.9
    # the teachers' targets are probabilities
    probs = teacher_targets(teachers.nets, [m.normalise(img)], device="cpu", transforms=2)[0]
    np.testing.assert_allclose(probs.sum(axis=0), 1, atol=1e-5)


@pytest.mark.filterwarnings("ignore::electrode_ct.segment.cnn.train.CollapseWarning")
def test_distil_again_from_given_teachers(distilled, tmp_path):
    from electrode_ct.segment.models import load_model

    img, lab = phantom_slice(0)
    path = distilled.teachers.save(tmp_path / "teachers.cnn")
    cfg = TrainConfig(**{**TINY, "epochs": 2, "patches_per_epoch": 16})
    res = train(img, lab, config=cfg, teachers=str(path))
    assert len(res.model.nets) == 1 and res.model.training["config"]["distill"]
    assert res.model.training["distilled"]["unlabelled_planes"] == 0
    assert len(load_model(res.model.save(tmp_path / "s.cnn")).nets) == 1
    with pytest.raises(InputError, match="teachers"):
        train(img, np.where(lab == 3, 2, lab).astype(np.uint8), config=cfg,
              teachers=distilled.teachers)
