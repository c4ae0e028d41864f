"""Summaries of a volume: value range, histogram, memory size and a noise estimate."""

from __future__ import annotations

from typing import Any

import numpy as np

from electrode_ct.volume import Volume

_MAX_SAMPLE = 16_000_000


def sample(volume: Volume, *, max_voxels: int = _MAX_SAMPLE) -> np.ndarray:
    """A regular sub-sample (every k-th slice/row/column) of at most ``max_voxels`` voxels.

    For lazy volumes only the needed slices are read.
    """
    n = int(np.prod(volume.shape))
    step = max(1, int(np.ceil((n / max_voxels) ** (1 / 3))))
    data = volume.data[::step, ::step, ::step]
    return np.asarray(data.compute() if hasattr(data, "compute") else data)


def noise_sigma(image: np.ndarray, *, block: int = 8, quantile: float = 0.05) -> float:
    """Noise σ estimated in the flattest regions of an image or volume.

    The array is tiled in blocks of ``block`` voxels per axis (2-D for single slices);
    the σ of each block is computed and the ``quantile`` of those σ is returned, i.e.
    the σ in the flattest few percent of the image, where structure does not add to it.

    Parameters
    ----------
    image : numpy.ndarray
        2-D or 3-D grey image.
    block : int
        Block edge, in voxels.
    quantile : float
        Which quantile of the block σ to report (0.05 = flattest 5 %).

    Returns
    -------
    float
        Noise σ in grey levels (NaN when the image is smaller than one block).
    """
    arr = np.asarray(image, dtype=np.float64)
    arr = np.squeeze(arr)
    if arr.ndim not in (2, 3) or min(arr.shape) < block:
        if arr.ndim == 3 and arr.shape[0] < block and min(arr.shape[1:]) >= block:
            arr = arr[0]
        else:
            return float("nan")
    trimmed = arr[tuple(slice(0, (s // block) * block) for s in arr.shape)]
    shape: list[int] = []
    for s in trimmed.shape:
        shape.extend([s // block, block])
    blocks = trimmed.reshape(shape)
    axes = tuple(range(1, len(shape), 2))
    sig = blocks.std(axis=axes, ddof=1).ravel()
    return float(np.quantile(sig, quantile))


def summary(volume: Volume, *, bins: int = 16) -> dict[str, Any]:
    """A JSON-ready summary of a volume (format, shape, dtype, spacing, range, histogram, noise).

    Parameters
    ----------
    volume : Volume
        Any volume (a lazy one is sub-sampled, never fully loaded when large).
    bins : int
        Number of histogram bins.

    Returns
    -------
    dict
        Keys ``format, source, shape, dtype, spacing_um, spacing_source`` (``file``,
        ``user`` or ``assumed``: no voxel size in the file, 1 µm used), ``size_um, min, max,
        mean, std, nbytes, size_mb, histogram {edges, counts}, percentiles, noise_sigma,
        unique_values`` (the last only for integer volumes with few values), ``class_map``.
    """
    s = sample(volume)
    finite = s[np.isfinite(s)] if s.dtype.kind == "f" else s.ravel()
    out: dict[str, Any] = {
        "format": volume.metadata.get("format", "array"),
        "source": volume.source,
        "shape": list(volume.shape),
        "dtype": str(volume.dtype),
        "spacing_um": list(volume.spacing),
        "spacing_source": volume.metadata.get("spacing_source", "file"),
        "size_um": [n * sp for n, sp in zip(volume.shape, volume.spacing, strict=True)],
        "nbytes": volume.nbytes,
        "size_mb": volume.nbytes / 1e6,
        "sampled": bool(s.size < np.prod(volume.shape)),
        "class_map": volume.class_map,
    }
    if finite.size == 0:
        out.update({"min": None, "max": None, "mean": None, "std": None})
        return out
    out.update({
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "n_nan": int(s.size - finite.size) if s.dtype.kind == "f" else 0,
    })
    pct = np.percentile(finite, [0.5, 5, 25, 50, 75, 95, 99.5])
    out["percentiles"] = {k: float(v) for k, v in zip(
        ["p0.5", "p5", "p25", "p50", "p75", "p95", "p99.5"], pct, strict=True)}
    counts, edges = np.histogram(finite, bins=bins)
    out["histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
    if s.dtype.kind in "iub":
        uniq = np.unique(finite)
        if uniq.size <= 64:
            out["unique_values"] = uniq.tolist()
    out["noise_sigma"] = noise_sigma(s)
    return out
