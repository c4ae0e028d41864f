"""Report figures of the cracks step (Daemi et al.): the % flawed with its binomial and
sub-volume intervals, the % flawed against the number of flawed slices required, the
classifier's training curves, ROC, precision–recall curve and confusion matrix, and 3-D
views of the labelled and of the flawed particles.

:func:`add_cracks_figures` adds them to the report's cracks section from what the run
wrote (provenance.json, the cracks tables, the particle labels, the model file).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from electrode_ct.report.figures import plt  # the Agg backend, no display
from electrode_ct.report.html import Section

FLAWED, INTACT = "#d04040", "#b8c0cc"
"""Colours of flawed and intact particles in the 3-D views."""


def interval_figure(summary: Mapping[str, Mapping[str, Any]]) -> Figure:
    """% flawed per state with its 95 % Wilson interval (particles as binomial trials)
    beside the 95 % t-interval over sub-volumes (``percent_flawed_subvolumes``)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    states = list(summary)
    x = np.arange(len(states), dtype=float)
    for dx, (name, colour, pick) in zip((-0.12, 0.12), (
            ("binomial (Wilson)", "#1f3b73",
             lambda s: (s.get("percent_flawed"), s.get("percent_flawed_ci95"))),
            ("sub-volumes (t)", "#e0a030",
             lambda s: ((s.get("percent_flawed_subvolumes") or {}).get("mean"),
                        (s.get("percent_flawed_subvolumes") or {}).get("ci95")))), strict=True):
        for xi, st in zip(x, states, strict=True):
            val, ci = pick(summary[st])
            if val is None:
                continue
            err = None if ci is None else [[val - ci[0]], [ci[1] - val]]
            ax.errorbar(xi + dx, val, yerr=err, fmt="o", color=colour, capsize=4,
                        label=name if xi == x[0] else None)
    ax.set_xticks(x, states)
    ax.set(xlim=(-0.5, len(states) - 0.5), ylabel="% flawed",
           title="% flawed particles, 95 % intervals")
    ax.legend(fontsize=8)
    return fig


def sweep_figure(summary: Mapping[str, Mapping[str, Any]]) -> Figure:
    """% flawed against m, the flawed slices required (``percent_flawed_vs_m``), per state,
    with Wilson 95 % bands (``percent_flawed_vs_m_ci95``)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for st, s in summary.items():
        sweep = s.get("percent_flawed_vs_m")
        if not sweep:
            continue
        m = np.array([int(k) for k in sweep])
        p = np.array(list(sweep.values()), float)
        ci = s.get("percent_flawed_vs_m_ci95") or {}
        band = np.array([ci.get(k) or (np.nan, np.nan) for k in sweep], float)
        (line,) = ax.plot(m, p, "o-", label=st)
        ax.fill_between(m, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.2)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(xlabel="m: flawed slices required", ylabel="% flawed",
           title="% flawed against the number of flawed slices required (95 % Wilson band)")
    ax.legend(fontsize=8)
    return fig


def training_figure(training: Mapping[str, Any]) -> Figure:
    """Loss and accuracy per epoch (training and validation) of a CNN model's
    ``training.history``; the best epoch marked."""
    h = training["history"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, what in zip(axes, ("loss", "accuracy"), strict=True):
        for part, style in (("train", "o-"), ("val", "s--")):
            ax.plot(h["epoch"], h[f"{part}_{what}"], style, label=f"{part} {what}")
        if training.get("best_epoch") is not None:
            ax.axvline(int(training["best_epoch"]) + 1, color="grey", lw=0.8, ls=":")
        ax.set(xlabel="epoch", ylabel=what)
        ax.legend(fontsize=8)
    fig.suptitle("CNN classifier training (dotted: best epoch, weights kept)", fontsize=10)
    return fig


def classifier_figure(curves: Mapping[str, Mapping[str, Any]], *, title: str) -> Figure:
    """ROC (with AUC) and precision–recall curves (with average precision) of every entry
    overlaid, and one confusion matrix per entry; each entry is a
    :func:`electrode_ct.cracks.evaluate.curves` result (a state, or the validation set)."""
    n = len(curves)
    fig, axes = plt.subplots(1, 2 + n, figsize=(3.2 * (2 + n), 3.2),
                             gridspec_kw={"width_ratios": [1.4, 1.4] + [1] * n})
    a1, a2 = axes[:2]
    a1.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    for (name, c), a3 in zip(curves.items(), axes[2:], strict=True):
        roc, pr, cm = c["roc"], c["pr"], c["confusion"]
        both = c.get("auc") is not None and np.isfinite(c["auc"])  # else: no curve to draw
        a1.plot(roc["fpr"] if both else [], roc["tpr"] if both else [],
                drawstyle="steps-post", label=f"{name}: AUC {_num(c.get('auc'))}")
        a2.plot(pr["recall"] if both else [], pr["precision"] if both else [], "o-", ms=3,
                label=f"{name}: AP {_num(c.get('average_precision'))}")
        mat = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
        a3.imshow(mat, cmap="Blues", vmin=0)
        for (r, col), v in np.ndenumerate(mat):
            a3.text(col, r, str(v), ha="center", va="center",
                    color="white" if v > mat.max() / 2 else "black")
        a3.set_xticks([0, 1], ["intact", "flawed"])
        a3.set_yticks([0, 1], ["intact", "flawed"])
        a3.set(xlabel="called", ylabel="reference", title=f"confusion, {name}")
    a1.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    a2.set(xlabel="recall", ylabel="precision", xlim=(0, 1.05), ylim=(0, 1.05),
           title="precision–recall")
    for ax in (a1, a2):
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _num(v: Any) -> str:
    return "n/a (one class only)" if v is None or not np.isfinite(v) else f"{v:.3f}"


def render_figure(labels: np.ndarray, spacing: Any, flawed_ids: np.ndarray, *,
                  max_particles: int = 60) -> tuple[Figure, dict[str, Any]]:
    """Two 3-D views side by side: the labelled particles (one colour each) and the flawed
    particles (red) among the intact ones (grey) — the largest ``max_particles`` of each
    view (:func:`electrode_ct.report.render3d.render_particles`)."""
    from electrode_ct.report.render3d import largest, render_particles

    fig = plt.figure(figsize=(10, 4.5))
    a1 = fig.add_subplot(1, 2, 1, projection="3d")
    a2 = fig.add_subplot(1, 2, 2, projection="3d")
    _, info1 = render_particles(labels, spacing, ax=a1, max_particles=max_particles,
                                title="labelled particles")
    coarse = labels[::2, ::2, ::2]
    fl = largest(coarse, flawed_ids, max_particles)
    rest = largest(coarse, np.setdiff1d(np.unique(coarse), np.r_[0, flawed_ids]),
                   max_particles - len(fl))
    colours = {**{int(i): FLAWED for i in fl}, **{int(i): INTACT for i in rest}}
    _, info2 = render_particles(labels, spacing, ax=a2, colours=colours, ids=np.r_[fl, rest],
                                max_particles=max_particles,
                                title=f"flawed (red, {len(fl)} largest) and intact (grey)")
    return fig, {"labelled": info1, "flawed": info2}


def _model_training(man: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``training`` record of the run's cracks model file (the shipped CNN for
    ``method: cnn`` without one; None for the shipped features model or a missing file)."""
    from electrode_ct.cracks.models import DEFAULT_CNN_MODEL
    from electrode_ct.segment.models import read_header

    step = man.get("config", {}).get("steps", {}).get("cracks", {})
    path = step.get("model") or (DEFAULT_CNN_MODEL if step.get("method") == "cnn" else None)
    if not path or not Path(path).exists():
        return None
    return read_header(Path(path)).get("training")


def _labels_of_state(out: Path, man: Mapping[str, Any], i: int) -> Any:
    """Particle labels of state ``i`` as the cracks step saw them (tracked or not)."""
    from electrode_ct.io import read

    steps = man.get("steps", {})
    rel = steps.get("track", {}).get("outputs", {}).get(f"labels_{i}") \
        or steps.get("particles", {}).get("outputs", {}).get("particles")
    return read(out / rel).compute() if rel and (out / rel).exists() else None


def _renders(sec: Section, out: Path, man: Mapping[str, Any], state: int) -> None:
    from electrode_ct.io import read_table

    rel = man["steps"]["cracks"].get("outputs", {}).get(f"cracks_{state}")
    lab = _labels_of_state(out, man, state)
    if not rel or lab is None:
        return
    table = read_table(out / rel)
    flawed = table.loc[table["flawed"].astype(bool), "label"].to_numpy(np.int64)
    fig, info = render_figure(lab.numpy(), lab.spacing, flawed)
    sec.figure(fig, alt="3-D views of labelled and flawed particles")
    sec.text(f"State {state}: marching-cubes surfaces of the {info['labelled']['n_particles']} "
             f"largest particles (volume down-sampled by {info['labelled']['stride']}); "
             f"{len(flawed)} particles flawed in all.", note=True)


def add_cracks_figures(sec: Section, out: Path, man: Mapping[str, Any], *,
                       state: int = 0) -> None:
    """Add the cracks figures of a run to its report section (state ``state`` rendered).

    Parameters
    ----------
    sec : Section
        The report's cracks section.
    out : pathlib.Path
        The run's output folder.
    man : mapping
        Its provenance.json.
    state : int
        The state whose particles are rendered in 3-D (the run's reference state).
    """
    summ = man.get("steps", {}).get("cracks", {}).get("summary", {})
    if not summ:
        return
    sec.figure(interval_figure(summ), alt="% flawed with binomial and sub-volume intervals")
    sub = next(iter(summ.values())).get("percent_flawed_subvolumes") or {}
    if sub:
        sec.text(f"Binomial: Wilson interval, particles as independent trials. Sub-volumes: "
                 f"{sub.get('n')} of {sub.get('n_grid')} cubes of {sub.get('size_um', 0):g} µm "
                 f"holding particle centroids ({sub.get('method')}).", note=True)
    if any(s.get("percent_flawed_vs_m") for s in summ.values()):
        sec.figure(sweep_figure(summ), alt="% flawed against flawed slices required")
    training = _model_training(man)
    if training and training.get("history"):
        sec.figure(training_figure(training), alt="classifier training curves")
        if training.get("validation"):
            sec.figure(classifier_figure({"validation": training["validation"]},
                                         title="validation particles of the training scan"),
                       alt="validation ROC, precision-recall and confusion matrix")
    judged = {st: s for st, s in summ.items() if s.get("roc")}
    if judged:
        sec.figure(classifier_figure(judged, title="against the reference "
                                     "(steps.cracks.truth), at the run's threshold"),
                   alt="ROC, precision-recall and confusion matrices against the reference")
    _renders(sec, out, man, state)
