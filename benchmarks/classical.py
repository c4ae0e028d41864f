"""Throughput of the filters and classical segmenters, and the multi-Otsu baseline on real data.

Prints ONE JSON object:
- ``throughput_mvox_s``: Mvoxel/s of every filter and segmentation on an N³ float32
  three-phase phantom (N = 256, ``--quick``: 96); non-local means runs on a smaller crop
  (``nlm_crop``) because it is ~100× slower than the other filters.
- ``reference_mvox_s``: the same-run speed of a plain numpy copy and of the scipy/skimage
  functions our filters wrap, to judge timings on a shared machine.
- ``phantom_mean_iou``: each segmenter against the phantom's exact truth.
- ``segmentpy_multiotsu``: multi-Otsu (3 classes, per slice) against the expert labels of
  the SegmentPy nano-CT slices in ``tests/data`` (sub-volumes A and C; label 0 = NMC, 1/2 =
  CBD or pore decided ONCE per sub-volume by the pooled mean grey level — the brighter is
  CBD — see ``benchmarks/_segmentpy.py``), per slice and mean IoU — the baseline learned
  methods must beat.
- ``uint16_multiotsu``: multi-Otsu (3 classes) on an N³ uint16 phantom (full 16-bit range;
  N = 512, ``--quick``: 128), seconds: the whole ``threshold_values`` call, the fine
  histogram alone, and the same-run references (a plain min/max pass, ``np.histogram``
  with 4096 float bins), best of 3; the same on a 48³ crop, and with
  ``--skimage-per-level`` scikit-image's one bin per 16-bit level on it (minutes).
- ``peak_rss_mb``: peak resident memory of the process.

Usage: ``.venv/bin/python benchmarks/classical.py [--quick] [--uint16-only]
[--skimage-per-level]``
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from electrode_ct import filters
from electrode_ct.metrics.compare import compare
from electrode_ct.segment.cleanup import fill_holes, majority_filter, remove_islands
from electrode_ct.segment.kmeans import kmeans
from electrode_ct.segment.threshold import grey_histogram, threshold, threshold_values
from electrode_ct.segment.watershed import seeded_watershed, window_around

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _segmentpy import PHASE_MAP, SUBVOLUMES, load_subvolume  # noqa: E402
from _segmentpy import phases as segmentpy_phases  # noqa: E402


def phantom(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spheres of active material (r = 10 voxels) with 2-voxel CBD shells in pore, noisy."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((n, n, n), bool)
    k = max(4, int(0.6 * (n / 24) ** 3))
    centres[tuple(rng.integers(0, n, (3, k)))] = True
    d = ndi.distance_transform_edt(~centres)
    truth = np.zeros((n, n, n), np.uint8)
    truth[d <= 12] = 1
    truth[d <= 10] = 2
    grey = np.array([50.0, 120.0, 200.0], np.float32)[truth]
    grey += rng.normal(0, 8, grey.shape).astype(np.float32)
    return truth, grey


def timed(fn, nvox: int, repeat: int = 1) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return nvox / best / 1e6, out


def seconds(fn, repeat: int = 3) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls (a shared machine adds noise, never speed)."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def uint16_phantom(n: int, seed: int = 0) -> np.ndarray:
    """A 64³ three-phase phantom tiled to n³, noise σ 8/255 of the range, full 16 bits."""
    truth, _ = phantom(64, seed)
    truth = np.tile(truth, (-(-n // 64),) * 3)[:n, :n, :n]
    rng = np.random.default_rng(seed)
    grey = np.array([50.0, 120.0, 200.0], np.float32)[truth]
    for z in range(n):  # slice by slice: bounded float temporaries
        grey[z] += rng.standard_normal((n, n), dtype=np.float32) * np.float32(8.0)
    grey *= np.float32(257.0)
    np.clip(grey, 0, 65535, out=grey)
    return np.rint(grey).astype(np.uint16)


def uint16_multiotsu(n: int, skimage_per_level: bool = False) -> dict:
    """Seconds of 3-class multi-Otsu on an n³ uint16 volume and its same-run references."""
    from skimage import filters as skf

    img = uint16_phantom(n)
    out: dict = {"shape": [n, n, n], "dtype": "uint16", "min": int(img.min()),
                 "max": int(img.max())}
    out["min_max_pass_s"], _ = seconds(lambda: (img.min(), img.max()))
    out["np_histogram_4096_bins_s"], _ = seconds(lambda: np.histogram(img, bins=4096))
    out["grey_histogram_s"], _ = seconds(lambda: grey_histogram(img))
    out["multiotsu_s"], cuts = seconds(lambda: threshold_values(img, method="multiotsu"))
    out["cuts"] = [float(c) for c in cuts]
    crop = img[:48, :48, :48]
    out["multiotsu_48cube_s"], _ = seconds(lambda: threshold_values(crop, method="multiotsu"))
    if skimage_per_level:  # minutes: its search is quadratic in the 2¹⁶ levels
        out["skimage_one_bin_per_level_48cube_s"], _ = seconds(
            lambda: skf.threshold_multiotsu(crop, classes=3), repeat=1)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def segmentpy_baseline() -> dict:
    per_slice, ious = {}, {}
    for sub in SUBVOLUMES:
        sv = load_subvolume(sub)
        vals = []
        for n in sv.slices:
            ref = segmentpy_phases(sv.labels[n])  # 0 pore, 1 CBD, 2 NMC (one mapping)
            seg = threshold(sv.images[n], method="multiotsu", classes=3)
            c = compare(seg, ref, class_map=PHASE_MAP)
            per_slice[f"{sub}/{n}"] = {"mean_iou": c["mean_iou"], "iou": c["iou"],
                                       "accuracy": c["accuracy"]}
            vals.append(c["mean_iou"])
        ious[sub] = float(np.mean(vals))
    allv = [v["mean_iou"] for v in per_slice.values()]
    cls = {k: float(np.mean([v["iou"][k] for v in per_slice.values()]))
           for k in ("pore", "cbd", "active")}
    return {"mean_iou": float(np.mean(allv)), "mean_iou_by_subvolume": ious,
            "mean_iou_by_class": cls, "per_slice": per_slice, "n_slices": len(allv),
            "label_mapping": "one per sub-volume (pooled mean grey)"}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="96³ instead of 256³")
    ap.add_argument("--uint16-only", action="store_true",
                    help="only the uint16 multi-Otsu section")
    ap.add_argument("--skimage-per-level", action="store_true",
                    help="also time scikit-image's one bin per 16-bit level (minutes)")
    args = ap.parse_args(argv)
    n16 = 128 if args.quick else 512
    if args.uint16_only:
        result = {"benchmark": "classical",
                  "uint16_multiotsu": uint16_multiotsu(n16, args.skimage_per_level),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return result
    n = 96 if args.quick else 256
    m = 32 if args.quick else 64
    truth, grey = phantom(n)
    nvox = grey.size
    crop = grey[:m, :m, :m]
    thr = {}
    ref = {}
    ref["numpy_copy"], _ = timed(lambda: grey.copy(), nvox, repeat=3)
    ref["scipy_gaussian_sigma1"], _ = timed(lambda: ndi.gaussian_filter(grey, 1.0), nvox)
    ref["scipy_median_3"], _ = timed(lambda: ndi.median_filter(grey, 3), nvox)

    thr["gaussian_sigma1"], _ = timed(lambda: filters.gaussian(grey, sigma=1.0), nvox)
    thr["median_3"], _ = timed(lambda: filters.median(grey, size=3), nvox)
    thr["unsharp_r1"], _ = timed(lambda: filters.unsharp(grey, radius=1.0), nvox)
    thr["nlm_crop"], _ = timed(
        lambda: filters.nlm(crop, patch_size=5, patch_distance=6, slab=m // 2, workers=2),
        crop.size)
    thr["rings"], _ = timed(lambda: filters.suppress_rings(grey), nvox)
    thr["normalise_percentile_uint8"], _ = timed(
        lambda: filters.normalise(grey, dtype="uint8"), nvox)
    thr["crop_half"], _ = timed(lambda: filters.crop(grey, z=(0, n // 2)), nvox)
    thr["resample_to_0.5x"], _ = timed(
        lambda: filters.resample(grey, spacing=1.0, voxel_size=2.0), nvox)
    thr["bin2"], _ = timed(lambda: filters.bin2(grey), nvox)

    segs = {}
    for meth in ("otsu", "triangle", "li", "multiotsu"):
        thr[f"threshold_{meth}"], segs[meth] = timed(
            lambda meth=meth: threshold(grey, method=meth), nvox)
    cuts = threshold_values(grey, method="multiotsu", classes=3)
    thr["threshold_hysteresis"], _ = timed(
        lambda: threshold(grey, method="hysteresis", thresholds=cuts), nvox)
    frac = np.bincount(truth.ravel(), minlength=3) / truth.size
    thr["threshold_fraction"], segs["fraction"] = timed(
        lambda: threshold(grey, method="fraction", fractions=frac), nvox)
    thr["threshold_multiotsu_2d"], _ = timed(
        lambda: threshold(grey, method="multiotsu", two_d=True), nvox)
    low, high = window_around(cuts, half_width=15.0)
    thr["watershed"], segs["watershed"] = timed(
        lambda: seeded_watershed(grey, low=low, high=high), nvox)
    thr["kmeans"], segs["kmeans"] = timed(lambda: kmeans(grey, classes=3, seed=0), nvox)
    lab = segs["multiotsu"]
    thr["cleanup_fill_holes"], _ = timed(lambda: fill_holes(lab), nvox)
    thr["cleanup_remove_islands"], _ = timed(
        lambda: remove_islands(lab, min_volume_um3=10.0), nvox)
    thr["cleanup_majority_3"], _ = timed(lambda: majority_filter(lab, size=3), nvox)

    ious = {k: compare(v, truth)["mean_iou"] for k, v in segs.items() if k in
            ("multiotsu", "fraction", "watershed", "kmeans")}
    result = {
        "benchmark": "classical",
        "shape": [n, n, n],
        "nlm_crop_shape": [m, m, m],
        "throughput_mvox_s": {k: round(v, 3) for k, v in thr.items()},
        "reference_mvox_s": {k: round(v, 3) for k, v in ref.items()},
        "phantom_mean_iou": ious,
        "segmentpy_multiotsu": segmentpy_baseline(),
        "uint16_multiotsu": uint16_multiotsu(n16, args.skimage_per_level),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return result


if __name__ == "__main__":
    main()
