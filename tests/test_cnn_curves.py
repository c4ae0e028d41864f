"""Learning curves: the per-epoch training/validation loss and IoU, stored with the model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_cnn import one_thread, phantom_slice  # noqa: E402, F401 (module fixture)


def test_curve_point_of_a_uniform_network_is_log_k_and_known_iou():
    from electrode_ct.segment.cnn.evaluate import curve_point

    net = torch.nn.Conv2d(1, 3, 1)
    torch.nn.init.zeros_(net.weight)
    torch.nn.init.zeros_(net.bias)
    from electrode_ct.segment.cnn.data import IGNORE

    lab = np.full((32, 32), IGNORE, np.int64)
    lab[:8] = 0
    lab[8:24] = 1
    lab[24:] = 2
    img = np.zeros((32, 32), np.float32)
    iou, loss = curve_point(net, [(img, lab)], 3, "cpu", np.array([1.0, 2.0, 0.5]))
    assert loss == pytest.approx(np.log(3), rel=1e-6)  # uniform probabilities, any weights
    # argmax of equal logits is class 0 everywhere: IoU 8/32 for class 0, 0 for the others
    assert iou == pytest.approx((8 / 32 + 0 + 0) / 3)


def test_history_has_learning_curves_and_the_model_keeps_them():
    from electrode_ct.segment.cnn.config import TrainConfig
    from electrode_ct.segment.cnn.train import train

    img, lab = phantom_slice(0, size=48)
    vimg, vlab = phantom_slice(1, size=48)
    cfg = TrainConfig(channels=4, depth=1, patch=24, patches_per_epoch=16, epochs=2,
                      batch_size=8, members=1)
    res = train(img, lab, config=cfg, val=(vimg, vlab))
    assert [r["epoch"] for r in res.history] == [1, 2]
    for rec in res.history:
        assert 0 <= rec["train_mean_iou"] <= 1 and 0 <= rec["val_mean_iou"] <= 1
        assert rec["train_loss"] > 0 and rec["val_loss"] > 0
    assert res.model.training["history"][-1]["val_loss"] == res.history[-1]["val_loss"]
    # the last epoch's validation IoU is the kept model's (keep=last, one member)
    assert res.model.training["best_val_mean_iou"] == pytest.approx(res.history[-1][
        "val_mean_iou"])
    none = train(img, lab, config=cfg)
    assert none.model.training["history"][0]["val_loss"] is None  # NaN stored as null
    assert np.isnan(none.history[0]["val_mean_iou"])


@pytest.fixture
def pair_files(tmp_path):
    import tifffile

    paths = {}
    for name, seed in (("img", 0), ("val", 1)):
        img, lab = phantom_slice(seed, size=48)
        paths[name] = tmp_path / f"{name}.tif"
        paths[name + "_lab"] = tmp_path / f"{name}_lab.tif"
        tifffile.imwrite(paths[name], img)
        tifffile.imwrite(paths[name + "_lab"], lab)
    return paths


TINY = ["--channels", "4", "--patch", "24", "--patches-per-epoch", "16", "--epochs", "2"]


def test_search_cnn_ranks_mean_and_std_over_repeats(run_cli, pair_files, tmp_path):
    import json

    from electrode_ct.io import read_table

    out = tmp_path / "search"
    code, stdout, err = run_cli("segment", "search-cnn", pair_files["img"],
                                pair_files["img_lab"], "--val", pair_files["val"],
                                pair_files["val_lab"], "--out", out, "--space", "lr=1e-7,5e-3",
                                "--space", "kernel=3", "--repeats", "2", *TINY, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    trials = read_table(out / "trials.parquet")
    assert len(trials) == 4 and sorted(trials["seed"]) == [0, 0, 1, 1]
    ranked = res["ranked"]
    assert [r["rank"] for r in ranked] == [1, 2]
    assert ranked[0]["val_mean_iou"] >= ranked[1]["val_mean_iou"]
    for row in ranked:
        mine = trials.loc[trials["lr"] == row["lr"], "val_mean_iou"].to_numpy()
        assert row["val_mean_iou"] == pytest.approx(mine.mean())
        assert row["val_mean_iou_std"] == pytest.approx(mine.std(ddof=1))
        assert row["val_mean_iou_ci95_lo"] <= row["val_mean_iou"] <= row["val_mean_iou_ci95_hi"]
    assert len(res["trials"][0]["history"]) == 2
    assert (out / "search.png").read_bytes()[:4] == b"\x89PNG"
    for bad, want in ((["--space", "lr"], "expected NAME=V1,V2"),
                      (["--space", "colour=1"], "unknown parameter"),
                      (["--space", "lr=1e-3", "--repeats", "0"], "--repeats: expected at least 1"),
                      ([], "--space: give at least one parameter")):
        code, _, err = run_cli("segment", "search-cnn", pair_files["img"], pair_files["img_lab"],
                               "--val", pair_files["val"], pair_files["val_lab"], "--out",
                               tmp_path / "bad", *bad, *TINY)
        assert code == 2 and want in err and err.count("\n") == 1, err
        assert not (tmp_path / "bad").exists()


def test_curves_cli_plots_the_stored_history(run_cli, pair_files, tmp_path):
    import json

    model = tmp_path / "m.cnn"
    code, stdout, err = run_cli("segment", "train-cnn", pair_files["img"], pair_files["img_lab"],
                                "--model", model, "--val", pair_files["val"],
                                pair_files["val_lab"], "--members", "1", *TINY, "--json")
    assert code == 0, err
    trained = json.loads(stdout)
    assert {"train_loss", "train_mean_iou", "val_loss", "val_mean_iou"} <= set(
        trained["history"][0])
    code, stdout, err = run_cli("segment", "curves", model, "--out", tmp_path / "c.png", "--json")
    assert code == 0, err
    assert json.loads(stdout)["history"] == trained["history"]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    code, _, err = run_cli("segment", "curves", tmp_path / "none.cnn")
    assert code == 2 and "no such model file" in err


def test_curve_planes_cut_windows_around_the_labels_within_the_budget():
    from electrode_ct.segment.cnn.data import IGNORE
    from electrode_ct.segment.cnn.fit import CURVE_WINDOW, curve_planes

    lab = np.full((1200, 700), IGNORE, np.int64)
    lab[1100:1150, 20:60] = 1  # scribble near the bottom-left corner
    img = np.arange(lab.size, dtype=np.float32).reshape(lab.shape)
    empty = np.full((64, 64), IGNORE, np.int64)
    small = np.zeros((40, 30), np.int64)
    planes = [(img[:64, :64], empty), (img, lab), (img[:40, :30], small), (img, lab), (img, lab)]
    got = curve_planes(planes)
    assert len(got) == 3  # the unlabelled plane skipped; 512² + 40·30 + 512² reach the budget
    win_img, win_lab = got[0]
    assert win_lab.shape == (CURVE_WINDOW, CURVE_WINDOW)
    assert (win_lab == 1).sum() == (lab == 1).sum()  # every labelled pixel inside the window
    assert win_img[0, 0] == img[1200 - CURVE_WINDOW, 0]  # clipped at the image's edge
    assert got[1][1].shape == (40, 30)
