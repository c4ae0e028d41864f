"""Small hyper-parameter search over :class:`~.config.TrainConfig` fields."""

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
           seed: int = 0) -> Any:
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

    Returns
    -------
    pandas.DataFrame
        One row per trial, best first: the varied parameters, ``val_mean_iou`` (of the
        weights the trial kept, see ``TrainConfig.keep``), ``best_epoch``, ``train_s`` (wall
        seconds), ``rank``.

    Raises
    ------
    ConfigError
        For a parameter that is not a :class:`TrainConfig` field, or an unknown strategy.
    """
    import pandas as pd

    base = config or TrainConfig(members=1)
    known = {f.name for f in fields(TrainConfig)}
    bad = [key for key in space if key not in known]
    if bad:
        raise ConfigError(f"search space: unknown parameter(s) {bad}; known: {sorted(known)}")
    if strategy not in ("grid", "random"):
        raise ConfigError(f"search strategy {strategy!r}: expected grid or random")
    keys = list(space)
    combos = list(itertools.product(*(space[key] for key in keys)))
    if strategy == "random" and len(combos) > n_trials:
        pick = np.random.default_rng(seed).choice(len(combos), n_trials, replace=False)
        combos = [combos[i] for i in sorted(pick)]
    rows = []
    for combo in combos:
        params = dict(zip(keys, combo, strict=True))
        res = train(images, labels, config=replace(base, **params), val=val)
        rows.append({**params, "val_mean_iou": res.model.training["best_val_mean_iou"],
                     "best_epoch": res.best_epoch, "train_s": res.wall_s})
    table = pd.DataFrame(rows).sort_values("val_mean_iou", ascending=False, kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    return table.reset_index(drop=True)
