"""GREAT2 figures: radial profiles with ±k·SE bands, Ī / ΔĪ vs state, condition charts,
a per-particle property painted back into image space, intra-particle change maps.

Every function returns a matplotlib Figure (Agg backend).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from electrode_ct.errors import InputError  # noqa: E402


def radial_profile_plot(
    profiles: pd.DataFrame, *, k: float = 2.0, xlabel: str = "layer (from the surface)",
    ylabel: str = "normalised grey level", title: str = "",
) -> Figure:
    """Mean radial profile per subset (or state) with a ±k·SE band.

    Parameters
    ----------
    profiles : pandas.DataFrame
        :func:`electrode_ct.stats.aggregate_radial` output (``subset``, ``x``, ``mean``,
        ``se``); an optional ``state`` column draws one line per (state, subset).
    k : float
        Half-width of the band in standard errors.
    xlabel, ylabel, title : str
        Axis labels and title.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    keys = ["state", "subset"] if "state" in profiles.columns else ["subset"]
    for key, part in profiles.sort_values("x").groupby(keys):
        name = " / ".join(str(v) for v in (key if isinstance(key, tuple) else (key,)))
        x, m, se = part["x"].to_numpy(), part["mean"].to_numpy(), part["se"].to_numpy()
        (line,) = ax.plot(x, m, marker="o", ms=3, label=name)
        ax.fill_between(x, m - k * np.nan_to_num(se), m + k * np.nan_to_num(se),
                        color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"radial profiles (band ±{k:g}·SE)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def state_plot(summary: pd.DataFrame, *, value: str = "I_mean", k: float = 1.0) -> Figure:
    """Ī (``value="I_mean"``, error SE_tot) or ΔĪ (``"dI"``, error dI_SE_tot) vs state.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`electrode_ct.stats.summarise` output.
    value : {"I_mean", "dI"}
        Quantity plotted (grey levels).
    k : float
        Error bars of ±k standard errors.
    """
    err = {"I_mean": "SE_tot", "dI": "dI_SE_tot"}.get(value)
    if err is None:
        raise InputError(f"value: expected I_mean or dI, got {value!r}")
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for (grouping, subset), part in summary.groupby(["grouping", "subset"], sort=False):
        part = part.sort_values("state")
        y = part[value].to_numpy(float) if value in part else np.full(len(part), np.nan)
        e = part[err].to_numpy(float) if err in part else np.zeros(len(part))
        ax.errorbar(part["state"], y, yerr=k * np.nan_to_num(e), marker="o", capsize=3,
                    label=f"{grouping}={subset}")
    if value == "dI":
        ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("state")
    ax.set_ylabel("ΔĪ (grey levels)" if value == "dI" else "Ī (grey levels)")
    ax.set_title(f"{'ΔĪ vs reference' if value == 'dI' else 'Ī'} (±{k:g}·SE_tot)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def condition_chart(percentages: Mapping[str, float] | pd.Series,
                    errors: Mapping[str, float] | None = None, *,
                    title: str = "particles satisfying the condition") -> Figure:
    """Bar chart of the percentage of particles satisfying a condition per group."""
    s = pd.Series(percentages, dtype=float)
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    yerr = None if errors is None else [float(errors.get(k, 0.0)) for k in s.index]
    ax.bar([str(i) for i in s.index], s.to_numpy(), yerr=yerr, capsize=3, color="#4a7ab5")
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of particles")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def condition_pies(shares: pd.DataFrame, *, title: str = "particles per condition"
                   ) -> Figure:
    """One pie per state of :func:`electrode_ct.conditions.state_conditions` output.

    Each particle is in exactly one category, so each pie's wedges sum to 100 %; the
    wedge labels give the percentage and the particle count.
    """
    states = list(dict.fromkeys(shares["state"]))
    cats = list(dict.fromkeys(shares["category"]))
    colours = dict(zip(cats, plt.get_cmap("tab10").colors, strict=False))
    fig, axes = plt.subplots(1, len(states), figsize=(3.4 * len(states) + 1.2, 3.6),
                             squeeze=False)
    for ax, st in zip(axes[0], states, strict=True):
        part = shares[shares["state"] == st]
        ax.pie(part["n"], colors=[colours[c] for c in part["category"]], startangle=90,
               counterclock=False, wedgeprops={"linewidth": 0.8, "edgecolor": "white"},
               autopct=lambda v: f"{v:.0f} %" if v >= 4 else "")
        ax.set_title(f"state {st} (n = {int(part['n_total'].iloc[0])})", fontsize=10)
    fig.legend([plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in cats], cats,
               loc="lower center", ncol=min(len(cats), 3), fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def state_normals(summary: pd.DataFrame, *, title: str = "") -> Figure:
    """The modelled normal distribution N(Ī, SE_tot²) of each state's mean grey level.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`electrode_ct.stats.summarise` rows (``state``, ``I_mean``, ``SE_tot``) of
        one subset; rows without a finite positive SE_tot are left out.
    """
    ok = summary[np.isfinite(summary["SE_tot"]) & (summary["SE_tot"] > 0)]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    lo = float((ok["I_mean"] - 4 * ok["SE_tot"]).min())
    hi = float((ok["I_mean"] + 4 * ok["SE_tot"]).max())
    x = np.linspace(lo, hi, 400)
    for _, r in ok.sort_values("state").iterrows():
        m, s = float(r["I_mean"]), float(r["SE_tot"])
        y = np.exp(-0.5 * ((x - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))
        (line,) = ax.plot(x, y, label=f"state {r['state']}: Ī = {m:.6g} ± {s:.2g}")
        ax.fill_between(x, y, color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("Ī (grey levels)")
    ax.set_ylabel("probability density")
    ax.set_title(title or "modelled normal distributions of Ī per state (σ = SE_tot)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def paint_property(labels: np.ndarray, table: pd.DataFrame, column: str, *,
                   fill: float = np.nan) -> np.ndarray:
    """A per-particle property painted back into image space (float32).

    Vectorised: one lookup array indexed by label (``lut[labels]``), no per-particle loop.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer particle labels.
    table : pandas.DataFrame
        Must hold ``label`` and ``column``.
    column : str
        The property.
    fill : float
        Value of the background and of particles missing from the table.
    """
    if column not in table.columns or "label" not in table.columns:
        raise InputError(f"paint: the table needs 'label' and {column!r} columns")
    lab = np.asarray(labels)
    top = int(max(lab.max(initial=0), table["label"].max() if len(table) else 0))
    lut = np.full(top + 1, fill, dtype=np.float32)
    lut[table["label"].to_numpy(np.int64)] = table[column].to_numpy(np.float32)
    return lut[lab]


def painted_figure(labels: np.ndarray, table: pd.DataFrame, column: str, *,
                   index: int | None = None, cmap: str = "viridis") -> Figure:
    """Central (or ``index``) z slice of a painted property with a colour bar."""
    img = paint_property(labels, table, column)
    if img.ndim == 3:
        img = img[img.shape[0] // 2 if index is None else index]
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    im = ax.imshow(img, cmap=cmap, interpolation="nearest")
    fig.colorbar(im, ax=ax, label=column)
    ax.set_axis_off()
    ax.set_title(f"{column} per particle")
    fig.tight_layout()
    return fig


def change_map_figure(diff: np.ndarray, *, limit: float | None = None,
                      title: str = "grey-level change (state − reference)",
                      label: str = "Δ grey level", diverging: bool = True) -> Figure:
    """Orthogonal centre slices of a volume: an intra-particle change map (diverging
    colours, symmetric about 0) or, ``diverging=False``, a painted particle property
    (sequential colours over its 2–98 % range). NaN (background) stays blank."""
    d = np.asarray(diff, dtype=np.float32)
    if d.ndim == 2:
        d = d[None]
    fin = np.isfinite(d).any()
    if diverging:
        lim = limit or (float(np.nanpercentile(np.abs(d), 98)) if fin else 1.0)
        kw = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}
    else:
        lo, hi = np.nanpercentile(d, [2, 98]) if fin else (0.0, 1.0)
        kw = {"cmap": "viridis", "vmin": float(lo), "vmax": float(hi)}
    z, y, x = (s // 2 for s in d.shape)
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.4))
    for ax, (name, img) in zip(axes, [("XY", d[z]), ("XZ", d[:, y]), ("YZ", d[:, :, x])],
                               strict=True):
        im = ax.imshow(img, interpolation="nearest", **kw)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("0.85")  # NaN (background) grey, apart from a change of 0
    fig.colorbar(im, ax=list(axes), label=label, shrink=0.8)
    fig.suptitle(title)
    return fig
