"""The documentation's screenshots: every widget run on the embedded real sample."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="the napari extra is not installed")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "napari_screenshots.py"


def test_screenshots_of_every_widget_on_the_real_sample(make_napari_viewer, qtbot, tmp_path):
    from skimage.io import imread

    spec = importlib.util.spec_from_file_location("napari_screenshots", SCRIPT)
    shots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shots)

    def wait(panel):
        qtbot.waitUntil(lambda: not panel.running, timeout=120_000)

    paths = shots.take(tmp_path, make_napari_viewer, wait)
    assert [p.name for p in paths] == [f"napari_{n}.png" for n in shots.SHOTS]
    for p in paths:
        img = imread(p)
        assert img.ndim == 3 and img.shape[0] > 400 and np.ptp(img[..., :3]) > 100
