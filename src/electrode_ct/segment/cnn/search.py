"""Small hyper-parameter search over :class:`~.config.TrainConfig` fields.

Each combination is trained ``repeats`` times (seeds ``seed``, ``seed + 1``, ...); the
ranked table gives the mean validation mean IoU over the repeats with its sample std and
Student t-interval (:func:`electrode_ct.uncertainty.t_interval`), so two settings whose
intervals overlap are not told apart by the search.
"""

from __future__ import annotations

import itertools
from dataclasses import fields, replace
from typing import Any

import numpy as np

from electrode_ct.errors import ConfigError
from electrode_ct.segment.cnn.config import TrainConfig
from electrode_ct.segment.cnn.train import train


def search(images: Any, labels: Any, *, val: tuple[Any, Any], space: dict[str, list[Any]],
           config: TrainConfig | None = None, strategy: str = "grid", n_trials: int = 8,
           seed: int = 0, repeats: int = 1, trials: list[dict[str, Any]] | None = None,
           callback: Any = None) -> Any:
    """Small hyper-parameter search ranked by validation mean IoU.

    Parameters
    ----------
    images, labels
        Training data as for :func:`~.train.train`.
    val : (image, labels)
        Validation data (required: the ranking criterion).
    space : dict
        Candidate values per :class:`TrainConfig` field, e.g.
        ``{"lr": [1e-3, 3e-3], "channels": [8, 16], "kernel": [3, 5]}``.
    config : TrainConfig, optional
        Base configuration (default: one network; short ``epochs`` recommended).
    strategy : {"grid", "random"}
        Every combination, or ``n_trials`` random draws from the grid.
    n_trials : int
        Trials for the random strategy.
    seed : int
        Seed of the random draws.
    repeats : int
        Trainings per combination, with training seeds ``config.seed + r`` (>= 1).
    trials : list, optional
        Receives one dict per training (the varied parameters, ``repeat``, ``seed``,
        ``val_mean_iou``, ``best_epoch``, ``train_s``, ``history``).
    callback : callable, optional
        ``callback(trial_dict)`` after each training.

    Returns
    -------
    pandas.DataFrame
        One row per combination, best first: the varied parameters, ``val_mean_iou`` (mean
        over the repeats of the validation mean IoU of the weights each kept, see
        ``TrainConfig.keep``), ``val_mean_iou_std`` (sample std; NaN for one repeat),
        ``val_mean_iou_ci95_lo`` / ``_hi`` (t-interval of the mean; NaN for one repeat),
        ``repeats``, ``best_epoch`` and ``train_s`` (means; wall seconds), ``rank``.

    Raises
    ------
    ConfigError
        For a parameter that is not a :class:`TrainConfig` field, or an unknown strategy.
    """
    import pandas as pd

    base = config or TrainConfig(members=1)
    known = {f.name for f in fields(TrainConfig)}
    bad = [key for key in space if key not in known or key == "seed"]
    if bad:
        raise ConfigError(f"search space: unknown parameter(s) {bad} (seeds vary with the "
                          f"repeats); known: {sorted(known - {'seed'})}")
    if strategy not in ("grid", "random"):
        raise ConfigError(f"search strategy {strategy!r}: expected grid or random")
    if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 1:
        raise ConfigError(f"search repeats: expected a whole number >= 1, got {repeats!r}")
    keys = list(space)
    combos = list(itertools.product(*(space[key] for key in keys)))
    if strategy == "random" and len(combos) > n_trials:
        pick = np.random.default_rng(seed).choice(len(combos), n_trials, replace=False)
        combos = [combos[i] for i in sorted(pick)]
    rows = [] if trials is None else trials
    for combo in combos:
        params = dict(zip(keys, combo, strict=True))
        for r in range(int(repeats)):
            res = train(images, labels, config=replace(base, **params, seed=base.seed + r),
                        val=val)
            rows.append({**params, "repeat": r, "seed": base.seed + r,
                         "val_mean_iou": res.model.training["best_val_mean_iou"],
                         "best_epoch": res.best_epoch, "train_s": res.wall_s,
                         "history": res.history})
            if callback is not None:
                callback(rows[-1])
    return ranked(pd.DataFrame(rows), keys)


def ranked(trials: Any, keys: list[str]) -> Any:
    """Per combination of ``keys``: mean, std and t-interval of ``val_mean_iou`` over the
    repeats, best first, with ``rank`` (see :func:`search`)."""
    import pandas as pd

    from electrode_ct.uncertainty import t_interval

    rows = []
    for params, part in trials.groupby(keys, sort=False):
        t = t_interval(part["val_mean_iou"].to_numpy(float))
        lo, hi = t["ci95"] or (np.nan, np.nan)
        std = np.nan if t["std"] is None else t["std"]
        rows.append({**dict(zip(keys, params if isinstance(params, tuple) else (params,),
                                strict=True)),
                     "val_mean_iou": t["mean"], "val_mean_iou_std": std,
                     "val_mean_iou_ci95_lo": lo, "val_mean_iou_ci95_hi": hi,
                     "repeats": len(part), "best_epoch": part["best_epoch"].mean(),
                     "train_s": part["train_s"].mean()})
    table = pd.DataFrame(rows).sort_values("val_mean_iou", ascending=False, kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    return table.reset_index(drop=True)
