"""The segment step's SegmentPy extras: the CNN's learning curves, with
``steps.segment.ensemble`` the perturbed-label ensemble's spread on the reference state, and
with ``steps.segment.search`` the ranking of an ``ect segment search-cnn`` run.

They go into the segment step's summary (``learning_curves``, ``ensemble``, ``search``),
which the report draws (:mod:`electrode_ct.report.segmentpy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from electrode_ct.errors import ConfigError

if TYPE_CHECKING:
    from electrode_ct.pipeline.runner import Run

MEMBER_GLOB = "member_*.model"
"""Member files taken from a folder given in ``steps.segment.ensemble``."""


def member_files(entries: list[str]) -> list[Path]:
    """The ensemble's model files: files as given, folders expanded to their
    :data:`MEMBER_GLOB` (sorted)."""
    files: list[Path] = []
    for entry in entries:
        p = Path(entry)
        files += sorted(p.glob(MEMBER_GLOB)) if p.is_dir() else [p]
    if len(files) < 2:
        raise ConfigError(f"steps.segment.ensemble: {len(files)} member model(s) found in "
                          f"{entries}; an ensemble of one member has no spread to report "
                          "(give at least 2 model files or a folder of member_*.model)")
    return files


def segmentpy_summary(run: Run, model: Any) -> dict[str, Any]:
    """``learning_curves`` (the CNN model's per-epoch history) and ``ensemble`` (the
    members' spread on the reference state) for the segment step's summary."""
    out: dict[str, Any] = {}
    history = (getattr(model, "training", None) or {}).get("history")
    if getattr(model, "kind", None) == "cnn" and history:
        out["learning_curves"] = history
    entries = run.cfg.steps.segment.ensemble
    if entries:
        out["ensemble"] = _ensemble(run, member_files(entries))
    if run.cfg.steps.segment.search:
        out["search"] = search_results(run.cfg.steps.segment.search)
    return out


def search_results(folder: str | Path) -> dict[str, Any]:
    """The ranked table, the trials (without their histories) and the searched parameter
    names of an ``ect segment search-cnn`` output folder (its ``search.json``)."""
    import json

    path = Path(folder) / "search.json"
    try:
        found = json.loads(path.read_text())
        res = {"folder": str(folder), "parameters": list(found["parameters"]),
               "ranked": list(found["ranked"]),
               "trials": [{k: v for k, v in t.items() if k != "history"}
                          for t in found["trials"]]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"steps.segment.search: expected a folder written by `ect segment "
                          f"search-cnn --out DIR` (with search.json), could not read {path}: "
                          f"{exc.__class__.__name__}") from None
    if not res["ranked"]:
        raise ConfigError(f"steps.segment.search: {path} holds no ranked combination")
    return res


def _ensemble(run: Run, files: list[Path]) -> dict[str, Any]:
    """Members applied to the reference state's grey volume; against ``input.reference``
    too when the run has one of the same shape."""
    from electrode_ct.pipeline.steps import _crop, grey, reference_state
    from electrode_ct.segment.cnn.ensemble import _vote
    from electrode_ct.segment.cnn.ensemble_spread import (
        labelled_spread,
        member_predictions,
        volume_spread,
    )
    from electrode_ct.segment.models import load_model

    models = [load_model(f) for f in files]
    vol = grey(run, reference_state(run))
    two_d = run.cfg.steps.segment.two_d
    preds = member_predictions(models, vol, {"two_d": True} if two_d else None)
    cmap = dict(zip(models[0].class_names, (int(v) for v in models[0].class_values),
                    strict=True))
    vote, _ = _vote(preds, list(cmap.values()))
    curves = [[{**rec, "member": i} for rec in (m.training or {}).get("history") or []]
              for i, m in enumerate(models) if getattr(m, "kind", None) == "cnn"]
    res = {"members": [str(f) for f in files], "class_map": cmap,
           "learning_curves": [rec for member in curves for rec in member],
           "predicted": volume_spread(preds, cmap, reference=vote, spacing=vol.spacing,
                                      two_d=two_d)}
    if run.cfg.input.reference:
        from electrode_ct.io import read

        ref = _crop(run, read(run.cfg.input.reference)).numpy()
        if ref.shape == vote.shape:
            res["reference"] = labelled_spread([[p] for p in preds], [ref], cmap,
                                               spacing=vol.spacing, two_d=two_d,
                                               ignore=run.cfg.input.reference_ignore)
    return res
