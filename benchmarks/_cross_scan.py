"""Cross-scan protocol of ``benchmarks/cnn.py --cross-scan`` (issue #23).

Every candidate configuration is trained on ONE labelled slice of each SegmentPy
sub-volume (A: 200, C: 546) and scored on the sub-volume's test slices (every slice but the
training and validation slices: A 1, 100, 400; C 394, 470, 698, 774), in the two settings a
user has:

- ``no_val`` — one labelled slice, nothing else (``normalisation="auto"`` is then
  ``image``; with ``keep="last"`` nothing else reads a validation slice);
- ``val`` — the same plus a labelled validation slice of the same sub-volume (A 300,
  C 622), which the training uses as it documents (the ``auto`` normalisation choice).

With ``keep="last"`` the validation slice changes nothing in the training itself, so both
settings come from ONE training run: ``no_val`` is the trained networks with the ``image``
normalisation that ``auto`` gives without a validation slice. A candidate with
``keep=best`` is trained twice.

Cross-scan selection: for each direction X → Y the candidate with the best ``no_val`` mean
IoU on X is chosen (using X only) and its score on Y is the cross-scan figure of Y. With one
candidate (the shipped defaults) the selection is trivial and the figure is the default's
score on each sub-volume; the docs say which data chose each default.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np
from _segmentpy import CLASS_NAMES, SubVolume

SPLITS = {"A": {"train": 200, "val": 300}, "C": {"train": 546, "val": 622}}
"""Training and validation slice of each sub-volume (the others are test slices)."""

CLASS_MAP = {name: i + 1 for i, name in enumerate(CLASS_NAMES)}
TARGET = {"mean_iou": 0.62, "margin_over_forest": 0.03}


def parse_candidate(text: str) -> tuple[str, dict[str, str]]:
    """``NAME=key:value,key:value`` (or ``NAME`` alone: the defaults) -> name, overrides."""
    name, _, rest = text.partition("=")
    pairs = [p.split(":", 1) for p in rest.split(",") if p]
    return name, {k: v for k, v in pairs}


def candidate_config(base: Any, overrides: dict[str, str]) -> Any:
    """``base`` (a TrainConfig) with string overrides cast to each field's type."""
    types = {k: type(v) for k, v in asdict(base).items()}
    out = {}
    for key, val in overrides.items():
        if key not in types:
            raise SystemExit(f"candidate {key}: not a TrainConfig field; known: {sorted(types)}")
        kind = types[key]
        out[key] = (val.lower() in ("1", "true", "yes")) if kind is bool else (
            kind(val) if kind in (int, float) else val)
    return replace(base, **out)


def score(preds: list[np.ndarray], refs: list[np.ndarray]) -> dict[str, Any]:
    """Per-class and mean IoU of the pooled test slices."""
    from electrode_ct.metrics.compare import compare

    res = compare(np.concatenate([p.ravel() for p in preds]),
                  np.concatenate([r.ravel() for r in refs]), class_map=CLASS_MAP)
    return {"iou": res["iou"], "mean_iou": res["mean_iou"]}


def test_slices(sv: SubVolume) -> list[int]:
    """The slices scored in both settings (neither training nor validation slice)."""
    split = SPLITS[sv.name]
    return [s for s in sv.slices if s not in (split["train"], split["val"])]


def _scores(model: Any, sv: SubVolume, tests: list[int]) -> dict[str, Any]:
    return score([model.predict(sv.images[s]).labels[0] for s in tests],
                 [sv.labels[s] for s in tests])


def _without_validation(model: Any) -> Any:
    """The same networks as ``auto`` keeps them without a validation slice (``image``)."""
    plain = copy.copy(model)
    plain.normalisation = {**model.normalisation, "mode": "image"}
    return plain


def run_candidate(sv: SubVolume, cfg: Any, tests: list[int]) -> dict[str, Any]:
    """Both settings of one candidate on one sub-volume."""
    from electrode_ct.segment.cnn.train import train

    split = SPLITS[sv.name]
    tr, va = split["train"], split["val"]
    val = (sv.images[va], sv.labels[va])
    res = train(sv.images[tr], sv.labels[tr], config=cfg, val=val,
                class_names=list(CLASS_NAMES))
    out = {"val": _scores(res.model, sv, tests),
           "train_wall_s": res.wall_s, "train_cpu_s": res.cpu_s,
           "epochs_run": len(res.history),
           "normalisation_with_val": res.model.normalisation["mode"]}
    if cfg.keep == "last":
        out["no_val"] = _scores(_without_validation(res.model), sv, tests)
    else:
        alone = train(sv.images[tr], sv.labels[tr], config=cfg, class_names=list(CLASS_NAMES))
        out["no_val"] = _scores(alone.model, sv, tests)
    return out


def forest_reference(sv: SubVolume, tests: list[int]) -> dict[str, Any]:
    """The project's forest (defaults) on the same training slice and dense labels."""
    from electrode_ct.segment.forest_train import train_forest

    tr = SPLITS[sv.name]["train"]
    t0 = time.perf_counter()
    model = train_forest(sv.images[tr], sv.labels[tr], class_names=list(CLASS_NAMES), seed=0,
                         n_jobs=1)
    out = score([model.predict(sv.images[s]).labels[0] for s in tests],
                [sv.labels[s] for s in tests])
    out["wall_s"] = time.perf_counter() - t0
    return out


def select(results: dict[str, dict[str, Any]], forest: dict[str, dict[str, Any]]
           ) -> dict[str, Any]:
    """Cross-scan figures: chosen on X (``no_val`` mean IoU) and scored on Y, both ways.

    Parameters
    ----------
    results : dict
        Sub-volume -> candidate -> :func:`run_candidate` result.
    forest : dict
        Sub-volume -> :func:`forest_reference` result.
    """
    out = {}
    for x, y in (("A", "C"), ("C", "A")):
        if x not in results or y not in results:
            continue
        chosen = max(results[x], key=lambda c: results[x][c]["no_val"]["mean_iou"])
        got = results[y][chosen]
        cnn_nv, cnn_v = got["no_val"]["mean_iou"], got["val"]["mean_iou"]
        fo = forest.get(y, {}).get("mean_iou", float("nan"))
        out[y] = {"chosen_on": x, "candidate": chosen, "mean_iou_no_val": cnn_nv,
                  "mean_iou_val": cnn_v, "forest_mean_iou": fo,
                  "margin_over_forest_no_val": cnn_nv - fo,
                  "meets_target_no_val": bool(cnn_nv >= TARGET["mean_iou"]
                                              and cnn_nv >= fo + TARGET["margin_over_forest"])}
    return out


def cross_scan(names: list[str], candidates: dict[str, Any], *, load, log,
               forest: bool = True) -> dict[str, Any]:
    """The whole protocol: every candidate on every sub-volume, then the selection.

    Parameters
    ----------
    names : list of str
        Sub-volumes (``A``, ``C``).
    candidates : dict
        Name -> TrainConfig.
    load : callable
        Sub-volume name -> :class:`SubVolume`.
    log : callable
        Called with one progress line.
    forest : bool
        Also score the forest reference.
    """
    results: dict[str, dict[str, Any]] = {}
    forests: dict[str, dict[str, Any]] = {}
    for name in names:
        sv = load(name)
        tests = test_slices(sv)
        results[name] = {}
        for cname, cfg in candidates.items():
            results[name][cname] = run_candidate(sv, cfg, tests)
            log(f"{name} {cname}: {results[name][cname]['no_val']['mean_iou']:.3f} (no val) "
                f"{results[name][cname]['val']['mean_iou']:.3f} (val)")
        if forest:
            forests[name] = forest_reference(sv, tests)
    return {"protocol": "cross_scan", "splits": SPLITS,
            "candidates": {c: asdict(cfg) for c, cfg in candidates.items()},
            "per_subvolume": results, "forest_same_split": forests,
            "cross_scan": select(results, forests), "target": TARGET}


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several ``--cross-scan`` outputs (other sub-volumes or candidates) as one, selected."""
    out = copy.deepcopy(parts[0])
    for part in parts[1:]:
        out["candidates"].update(part["candidates"])
        out["forest_same_split"].update(part["forest_same_split"])
        for name, cands in part["per_subvolume"].items():
            out["per_subvolume"].setdefault(name, {}).update(cands)
    out["cross_scan"] = select(out["per_subvolume"], out["forest_same_split"])
    return out
