"""SegmentPy figures (Su et al. 2022) and their report section: CNN learning curves, the
hyper-parameter search ranking, the perturbed-label ensemble's spread and the
interface-position histogram with its FWHM.

The figures read the records the library writes (a model's ``training["history"]``, the
search tables, :mod:`electrode_ct.segment.cnn.ensemble_spread` dicts); the section reads
the pipeline's ``steps.segment.summary`` (``learning_curves``, ``ensemble``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from electrode_ct.report.figures import PHASE_COLOURS, bars  # noqa: E402

CURVES = (("train_loss", "training"), ("val_loss", "validation"))
"""Learning-curve keys of a history record drawn on the loss panel (the IoU panel uses
the same with ``_mean_iou``)."""


def save_png(fig: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Write a figure as a PNG file (atomically) and close it."""
    from electrode_ct.io._atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def _series(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in history])


def learning_curves_figure(history: Sequence[Mapping[str, Any]], *, title: str = "") -> Figure:
    """Training and validation loss and mean IoU per epoch, one line per network.

    Parameters
    ----------
    history : sequence of dict
        Per-epoch records (``member``, ``epoch``, ``train_loss``, ``val_loss``,
        ``train_mean_iou``, ``val_mean_iou``; missing or null values are not drawn), e.g.
        a model's ``training["history"]``.
    title : str
        Figure title.
    """
    frame = pd.DataFrame(list(history))
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(9, 3.4))
    for member, part in frame.groupby("member", sort=True):
        recs = part.to_dict(orient="records")
        epoch = part["epoch"].to_numpy()
        faint = {} if member == 0 else {"alpha": 0.35, "label": None}
        for i, (key, name) in enumerate(CURVES):
            loss = _series(recs, key)
            if np.isnan(loss).all():
                continue  # e.g. no validation data
            style = {"color": PHASE_COLOURS[i], "marker": "o", "ms": 3,
                     "label": f"{name}" + (" (network 1)" if frame["member"].nunique() > 1
                                           else ""), **faint}
            ax_loss.plot(epoch, loss, **style)
            ax_iou.plot(epoch, _series(recs, key.replace("_loss", "_mean_iou")), **style)
    ax_loss.set(xlabel="epoch", ylabel="class-weighted cross-entropy", title="loss")
    ax_iou.set(xlabel="epoch", ylabel="mean IoU", title="mean IoU", ylim=(0, 1))
    ax_loss.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def search_figure(table: pd.DataFrame, trials: pd.DataFrame, keys: Sequence[str]) -> Figure:
    """Validation mean IoU of each searched combination, best first: the mean over the
    repeats with its 95 % t-interval, and every repeat as a dot."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(table) + 2), 3.6))
    labels = [", ".join(f"{k}={row[k]:g}" if isinstance(row[k], (int, float)) else
                        f"{k}={row[k]}" for k in keys) for _, row in table.iterrows()]
    x = np.arange(len(table))
    lo = (table["val_mean_iou"] - table["val_mean_iou_ci95_lo"]).fillna(0).to_numpy()
    hi = (table["val_mean_iou_ci95_hi"] - table["val_mean_iou"]).fillna(0).to_numpy()
    ax.errorbar(x, table["val_mean_iou"], yerr=[lo, hi], fmt="s", color=PHASE_COLOURS[0],
                capsize=4, label="mean, 95 % CI over repeats")
    for i, (_, row) in enumerate(table.iterrows()):
        sel = np.all([trials[k] == row[k] for k in keys], axis=0)
        ax.plot(np.full(int(sel.sum()), i) + 0.15, trials.loc[sel, "val_mean_iou"], "o",
                color=PHASE_COLOURS[2], ms=4, label="repeats" if i == 0 else None)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="validation mean IoU", title="hyper-parameter search (rank 1 left)")
    ax.legend(fontsize=8)
    return fig


def interface_position_figure(hists: Mapping[str, Mapping[str, Any]], *,
                              title: str = "") -> Figure:
    """Interface-position histograms (fraction of faces per bin), one line per phase pair,
    with the FWHM in the legend."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, (pair, h) in enumerate(hists.items()):
        counts = np.asarray(h["counts"], float)
        if counts.sum() == 0:
            continue
        width = h.get("fwhm_um")
        label = f"{pair}: FWHM {width:.3g} µm" if width is not None else pair
        ax.step(h["centres_um"], counts / counts.sum(), where="mid",
                color=PHASE_COLOURS[i % len(PHASE_COLOURS)], label=label)
    ax.axvline(0, color="k", lw=0.8, ls=":")
    ax.set(xlabel="interface position relative to the reference (µm; + = phase a beyond)",
           ylabel="fraction of faces", title=title or "interface positions")
    ax.legend(fontsize=8)
    return fig


def spread_figure(block: Mapping[str, Any], key: str, *, ylabel: str, title: str) -> Figure:
    """Bars of ``block[key]`` (mean over members) with the 95 % interval of
    ``block[key + '_ci95']``."""
    return bars(block[key], ylabel=ylabel, intervals=block.get(f"{key}_ci95"), title=title)


def spread_table(block: Mapping[str, Any], keys: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """One row per (figure, phase or pair): mean ± std [95 % CI] over the members."""
    from electrode_ct.uncertainty import interval_text

    rows = []
    for key, label in keys:
        std, ci = block.get(f"{key}_std") or {}, block.get(f"{key}_ci95") or {}
        for name, value in (block.get(key) or {}).items():
            rows.append({"figure": label, "of": name, "mean ± std [95 % CI] over members":
                         interval_text(value, std.get(name), ci.get(name))})
    return pd.DataFrame(rows)


def _ensemble_section(ens: Mapping[str, Any], sec: Any) -> None:
    pred = ens["predicted"]
    n = pred["n_members"]
    sec.text(f"{n} members trained on perturbed labels (ect segment ensemble) segmented the "
             "reference state; bars: mean over members with the 95 % t-interval.")
    sec.figure(spread_figure(pred, "volume_fraction", ylabel="volume fraction",
                             title=f"phase fractions, {n} members"), alt="ensemble fractions")
    sec.figure(spread_figure(pred, "interface_voxel_percent", ylabel="% of voxels",
                             title="interface voxels per phase pair"),
               alt="ensemble interface percentages")
    sec.table(spread_table(pred, (("volume_fraction", "volume fraction"),
                                  ("surface_area_um2", "surface area (µm²)"),
                                  ("interface_voxel_percent", "interface voxels (%)"))))
    sec.figure(interface_position_figure(pred["interface_position"],
                                         title="members' interfaces against their majority "
                                         "vote"), alt="interface-position histogram")
    if ens.get("learning_curves"):
        sec.figure(learning_curves_figure(ens["learning_curves"],
                                          title="members' learning curves (member 1 solid)"),
                   alt="ensemble learning curves")
    ref = ens.get("reference")
    if ref:
        sec.table(spread_table(ref, (("iou", "IoU against the reference labels"),)))
        sec.figure(interface_position_figure(ref["interface_position"],
                                             title="members' interfaces against the "
                                             "reference labels"),
                   alt="interface positions against the reference")


def segmentpy_sections(man: Mapping[str, Any]) -> list[Any]:
    """Report sections from the segment step's ``learning_curves``, ``ensemble`` and
    ``search``."""
    from electrode_ct.report.html import Section

    seg = man.get("steps", {}).get("segment", {}).get("summary", {})
    secs = []
    if seg.get("learning_curves"):
        sec = Section("CNN learning curves")
        sec.figure(learning_curves_figure(seg["learning_curves"]), alt="learning curves")
        sec.text("Per epoch, from the model file: training (first labelled planes, not "
                 "augmented) and validation loss (class-weighted cross-entropy) and mean IoU.",
                 note=True)
        secs.append(sec)
    if seg.get("ensemble"):
        sec = Section("Perturbed-label ensemble")
        _ensemble_section(seg["ensemble"], sec)
        secs.append(sec)
    if seg.get("search"):
        secs.append(_search_section(seg["search"]))
    return secs


def _search_section(found: Mapping[str, Any]) -> Any:
    """The ranked hyper-parameter table of ``ect segment search-cnn`` and its plot."""
    from electrode_ct.report.html import Section

    keys = list(found["parameters"])
    table, trials = pd.DataFrame(found["ranked"]), pd.DataFrame(found["trials"])
    sec = Section("CNN hyper-parameter search")
    sec.text(f"{len(table)} combinations of {', '.join(keys)} (ect segment search-cnn, "
             f"{found['folder']}), ranked by validation mean IoU: mean over the repeats "
             "with its 95 % t-interval, each repeat a dot.")
    sec.figure(search_figure(table, trials, keys), alt="hyper-parameter search")
    cols = ["rank", *keys, "val_mean_iou", "val_mean_iou_std", "val_mean_iou_ci95_lo",
            "val_mean_iou_ci95_hi", "repeats", "best_epoch", "train_s"]
    sec.table(table[[c for c in cols if c in table.columns]])
    return sec
