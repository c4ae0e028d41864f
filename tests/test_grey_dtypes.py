"""Grey-level reductions on any dtype: mergeable histograms and the GREAT2 noise σ_bg.

The same phantom written as uint8, uint16 (full range) and float32 must give the same
background noise σ, SEM, SE_tot and Z up to the grey scale (issue #19).
"""

from __future__ import annotations

import numpy as np
import pytest

from electrode_ct import stats
from electrode_ct.histogram import (
    bins_for,
    group_levels,
    histogram,
    image_histogram,
    populated_levels,
    value_range,
)
from electrode_ct.measure.intensity import measure_grey, peak_sigma

SIGMA = 10.0  # noise σ in 8-bit grey levels


def _phantom(seed: int = 3, dark: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Particle labels and a float grey image in 8-bit units: particles at 190 − ``dark``,
    a CBD-like shell at 95 beside the pore at 60, noise σ 10."""
    rng = np.random.default_rng(seed)
    shape = (40, 48, 48)
    lab = np.zeros(shape, np.uint32)
    grid = np.ogrid[:40, :48, :48]
    dist = np.full(shape, np.inf)
    spheres = [((20, 14, 14), 9), ((20, 33, 32), 10), ((9, 10, 37), 6), ((31, 36, 10), 7)]
    for i, (c, r) in enumerate(spheres, 1):
        d = np.sqrt(sum((gi - ci) ** 2.0 for gi, ci in zip(grid, c, strict=True))) - r
        lab[d < 0] = i
        dist = np.minimum(dist, d)
    level = np.where(lab > 0, 190.0 - dark, np.where(dist < 2.5, 95.0, 60.0))
    return lab, level + rng.normal(0, SIGMA, shape)


def _quantised(base: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    """Each dtype quantised on its own (as a scanner would write it), with its scale."""
    return {
        "uint8": (np.clip(np.rint(base), 0, 255).astype(np.uint8), 1.0),
        "uint16": (np.clip(np.rint(base * 257), 0, 65535).astype(np.uint16), 257.0),
        "float32": ((base / 255).astype(np.float32), 1 / 255),
    }


def _same_levels(base: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    """One 8-bit image written exactly as uint16 (× 257, full range) and float32 (/ 255)."""
    u8 = np.clip(np.rint(base), 0, 255).astype(np.uint8)
    return {"uint8": (u8, 1.0), "uint16": (u8.astype(np.uint16) * 257, 257.0),
            "float32": (u8.astype(np.float32) / 255, 1 / 255)}


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_background_sigma_within_5_percent(dtype):
    lab, base = _phantom()
    for images in (_quantised(base), _same_levels(base)):
        grey, scale = images[dtype]
        table, _ = measure_grey(lab, grey, exclude_layers=2)
        assert table.attrs["background_sigma"] / scale == pytest.approx(SIGMA, rel=0.05)


def test_background_sigma_when_particle_histograms_are_binned(monkeypatch):
    """Many particles on 16-bit data: per-particle histograms fall back to 1024 bins; the
    background keeps 64 fine bins per bin for σ_bg."""
    from electrode_ct.measure import radial

    lab, base = _phantom()
    grey, scale = _quantised(base)["uint16"]
    monkeypatch.setattr(radial, "_EXACT_BINS", 1000)  # as if there were > 10⁴ particles
    table, _ = measure_grey(lab, grey, exclude_layers=2)
    assert table.attrs["background_sigma"] / scale == pytest.approx(SIGMA, rel=0.05)


def test_sem_se_tot_and_z_identical_across_dtypes():
    lab, base = _phantom()
    _, later = _phantom(seed=4, dark=6.0)
    out = {}
    for (name, (g0, scale)), (g1, _) in zip(_same_levels(base).items(),
                                            _same_levels(later).values(), strict=True):
        t0, _ = measure_grey(lab, g0, exclude_layers=2)
        t1, _ = measure_grey(lab, g1, exclude_layers=2)
        summary, _ = stats.paired(t0, t1, column="roi_mean")
        out[name] = (t0["sem"].to_numpy() / scale, summary["SEM"] / scale,
                     summary["SE_tot"] / scale, summary["Z"])
    ref = out["uint8"]
    assert abs(ref[3]) > 3  # the planted darkening is detected
    for name in ("uint16", "float32"):
        np.testing.assert_allclose(out[name][0], ref[0], rtol=1e-4)
        assert out[name][1:] == pytest.approx(ref[1:], rel=1e-4)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_peak_sigma_of_fine_histograms(dtype):
    rng = np.random.default_rng(1)
    vals = np.concatenate([rng.normal(60, SIGMA, 100_000), rng.normal(95, SIGMA, 20_000)])
    grey, scale = _quantised(vals)[dtype]
    counts, bins = image_histogram(grey)
    peak, sigma = peak_sigma(counts, low=float(bins.centres()[0]), width=bins.width)
    assert sigma / scale == pytest.approx(SIGMA, rel=0.05)
    assert peak / scale == pytest.approx(60, abs=1.0)


def test_histograms_of_blocks_add_up_exactly():
    rng = np.random.default_rng(0)
    for img in (rng.integers(0, 65536, (6, 7, 8)).astype(np.uint16),
                rng.normal(0, 1, (6, 7, 8)).astype(np.float32),
                rng.integers(-70_000, 70_000, (6, 7, 8)).astype(np.int32)):
        bins = bins_for(*value_range(img), integer=img.dtype.kind in "ui", max_bins=4096)
        parts = sum(histogram(img[z:z + 2], bins) for z in range(0, 6, 2))
        whole = histogram(img, bins)
        np.testing.assert_array_equal(parts, whole)
        assert whole.sum() == img.size and whole.size <= 4096
        ref, _ = np.histogram(img, bins=bins.count, range=(bins.low, bins.low + bins.count
                                                            * bins.width))
        if img.dtype == np.uint16:
            np.testing.assert_array_equal(whole, ref)
        else:  # float edges: at most the values on an edge move to the neighbour bin
            assert np.abs(whole - ref).sum() <= 2


def test_levels_of_stretched_and_float_8_bit_data():
    u8 = np.repeat(np.array([10, 12, 15, 17, 20, 22, 25], np.uint8), 3)  # uneven spacing
    for data, scale in ((u8, 1.0), (u8.astype(np.uint16) * 257, 257.0),
                        (u8.astype(np.float32) / 255, 1 / 255)):
        counts, bins = image_histogram(data)
        pos, n, cells = populated_levels(counts)
        np.testing.assert_allclose(bins.centres()[pos.astype(int)] / scale, np.unique(u8),
                                   atol=1e-3)
        assert (n == 3).all()
        # cells tile the range: halfway to each neighbour, in grey levels
        np.testing.assert_allclose(cells * bins.width / scale, [2, 2.5, 2.5, 2.5, 2.5, 2.5, 3],
                                   atol=1e-3)
        x, gn, gc = group_levels(pos, n, cells, 3)
        assert gn.tolist() == [9, 9, 3] and gc.sum() == pytest.approx(cells.sum())
