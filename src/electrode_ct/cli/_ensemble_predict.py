"""``ect segment ensemble --predict / --test-image --test-labels``: the trained members
applied to a volume and to labelled test slices (option parsing and files only; the
figures are :mod:`electrode_ct.segment.cnn.ensemble_spread`'s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from electrode_ct.cli._common import info, read_input
from electrode_ct.errors import InputError


def paired_tests(images: list[str] | None, labels: list[str] | None) -> list[tuple[str, str]]:
    """``--test-image`` / ``--test-labels`` paired in the order given (checked before any
    training)."""
    images, labels = list(images or []), list(labels or [])
    if len(images) != len(labels):
        raise InputError(f"--test-image / --test-labels: give one labels file per test image "
                         f"(got {len(images)} image(s) and {len(labels)} labels file(s))")
    return list(zip(images, labels, strict=True))


def _read_test(image: str, labels: str, voxel: str | None) -> tuple[Any, np.ndarray]:
    vol = read_input(image, voxel=voxel)
    lab = read_input(labels, role="labels")
    if lab.shape != vol.shape:
        raise InputError(f"{labels}: test labels of shape {lab.shape} do not match the test "
                         f"image {image} of shape {vol.shape}")
    return vol.numpy(), lab.numpy()


def read_tests(pairs: list[tuple[str, str]], voxel: str | None
               ) -> list[tuple[Any, np.ndarray]]:
    """The test images and labels (read before training, so bad input costs nothing)."""
    return [_read_test(image, labels, voxel) for image, labels in pairs]


def predicted_outputs(models: list[Any], vol: Any, cmap: dict[str, int], out: Path, *,
                      two_d: bool) -> dict[str, Any]:
    """Members applied to the volume ``vol``: vote and disagreement written to ``out``; the
    spread (``predicted`` key of the summary)."""
    from electrode_ct.io import write
    from electrode_ct.segment.cnn.ensemble import _vote
    from electrode_ct.segment.cnn.ensemble_spread import member_predictions, volume_spread

    info(f"predicting {vol.shape} with {len(models)} members")
    preds = member_predictions(models, vol.numpy())
    vote, disagreement = _vote(preds, list(cmap.values()))
    write(vol.with_data(vote).with_class_map(cmap), out / "predicted_segmentation.tif")
    write(vol.with_data(disagreement), out / "predicted_disagreement.tif")
    res = volume_spread(preds, cmap, reference=vote, spacing=vol.spacing, two_d=two_d)
    res["members"] = _member_rows(res["members"])
    _plot(res["interface_position"], out / "predicted_interface_positions.png",
          "members' interfaces against their majority vote")
    return res


def _plot(hists: dict[str, Any], path: Path, title: str) -> None:
    from electrode_ct.report.segmentpy import interface_position_figure, save_png

    save_png(interface_position_figure(hists, title=title), path)


def scored_tests(models: list[Any], tests: list[tuple[Any, np.ndarray]], cmap: dict[str, int],
                 out: Path, *, spacing: Any) -> dict[str, Any]:
    """Members scored on the labelled test images (``test`` key of the summary)."""
    from electrode_ct.segment.cnn.ensemble_spread import labelled_spread, member_predictions

    preds = [member_predictions(models, img) for img, _ in tests]  # [test][member]
    per_member = [[p[m] for p in preds] for m in range(len(models))]
    labels = [lab for _, lab in tests]
    res = labelled_spread(per_member, labels, cmap, spacing=spacing, two_d=True)
    _plot(res["interface_position"], out / "test_interface_positions.png",
          "members' interfaces against the test labels")
    return res


def _member_rows(per: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """Per-member figures as rows ``member, quantity, key, value``."""
    return [{"member": m, "quantity": q, "key": k, "value": v}
            for q, rows in per.items() for m, row in enumerate(rows) for k, v in row.items()]


def say_spread(summary: dict[str, Any], say: Any) -> None:
    """Text lines of the predicted-volume and test spread."""
    from electrode_ct.uncertainty import interval_text

    pred = summary.get("predicted")
    if pred:
        for k, v in pred["volume_fraction"].items():
            text = interval_text(v, pred["volume_fraction_std"][k],
                                 pred["volume_fraction_ci95"][k])
            say(f"predicted {k}: volume fraction {text}")
    test = summary.get("test")
    if test:
        say(f"test slices: mean IoU "
            f"{interval_text(test['mean_iou'], test['mean_iou_std'], test['mean_iou_ci95'])}")
