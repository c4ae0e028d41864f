"""Training of the random-forest pixel classifier from sparse labels (scribbles).

:func:`train_forest` computes the filter-bank features of
:mod:`electrode_ct.segment.features` at the labelled voxels (block by block, with the
halo the filters need) and fits a scikit-learn random forest, optionally on intensity-
jittered copies of the rows (:func:`augment_intensity`). The result is a
:class:`~electrode_ct.segment.forest.ForestModel`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from electrode_ct.blocks import Block, block_grid
from electrode_ct.errors import ConfigError, InputError, ShapeError
from electrode_ct.segment import features as ft
from electrode_ct.segment.forest import ForestModel
from electrode_ct.segment.models import array_digest
from electrode_ct.volume import Volume, as_spacing

AUGMENT = 0.1
"""Default intensity augmentation: training rows are repeated with gains within ±10 % and
offsets within ±5 % of the normalised range, the spread left by per-image percentile
normalisation between images of one sample (measured on SegmentPy: the 0.5–99.5 %
ranges of one sub-volume's slices differ by ±10 % with the phase fractions)."""


def _check_training(image: Any, labels: Any, class_names: Sequence[str] | None,
                    where: str) -> tuple[np.ndarray, list[int]]:
    lab = np.asarray(labels)
    if lab.ndim == 2:
        lab = lab[None]
    if tuple(lab.shape) != tuple(image.shape):
        raise ShapeError(f"{where}: scribbles have shape {tuple(lab.shape)} but the image has "
                         f"shape {tuple(image.shape)}; expected the same shape")
    if lab.dtype.kind == "f":
        if not np.all(np.isfinite(lab)) or np.any(lab != np.round(lab)):
            raise InputError(f"{where}: scribbles must be integer labels (0 = unlabelled)")
        lab = lab.astype(np.int64)
    if lab.dtype.kind not in "iub":
        raise InputError(f"{where}: scribbles must be integer labels, got dtype {lab.dtype}")
    if lab.min() < 0 or lab.max() > 255:
        raise InputError(f"{where}: scribble values must be 0 (unlabelled) or 1..255, "
                         f"got {int(lab.min())}..{int(lab.max())}")
    counts = np.bincount(lab.ravel().astype(np.int64), minlength=1)
    present = [int(v) for v in np.nonzero(counts)[0] if v != 0]
    if not present:
        raise InputError(f"{where}: no labelled voxels (every value is 0 = unlabelled); "
                         "paint at least one stroke per class")
    if class_names is not None:
        names = list(class_names)
        if len(present) != len(names) or present != list(range(1, len(names) + 1)):
            missing = [i + 1 for i in range(len(names)) if i + 1 not in present]
            extra = [v for v in present if v > len(names)]
            msg = (f"class {missing[0]} ({names[missing[0] - 1]!r}) has no scribbles"
                   if missing else f"values {extra} have no name")
            raise InputError(f"{where}: {len(names)} class names given "
                             f"({','.join(names)}) but scribbles hold values {present}: {msg}")
    if len(present) < 2:
        raise InputError(f"{where}: scribbles hold only class {present}; "
                         "at least two classes are needed")
    return lab.astype(np.uint8, copy=False), present


def _sample(lab: np.ndarray, values: Sequence[int], max_samples: int | None,
            seed: int) -> np.ndarray:
    """Sorted flat indices of the training voxels (at most ``max_samples``, per-class fair)."""
    idx = np.flatnonzero(lab.ravel())
    return idx[sample_rows(lab.ravel()[idx], max_samples, seed)]


def sample_rows(y: np.ndarray, max_rows: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_rows`` rows, drawn fairly per class of ``y`` (seeded)."""
    if max_rows is None or y.size <= max_rows:
        return np.arange(y.size)
    rng = np.random.default_rng(seed)
    values = np.unique(y)
    per = max(1, max_rows // len(values))
    keep = []
    for v in values:  # K classes, not per voxel
        members = np.flatnonzero(y == v)
        keep.append(members if members.size <= per else rng.choice(members, per, replace=False))
    return np.sort(np.concatenate(keep))


def _label_blocks(blocks: list[Block], shape: Sequence[int], bshape: Sequence[int],
                  idx: np.ndarray) -> Iterator[tuple[Block, np.ndarray]]:
    """Blocks of ``blocks`` (a :func:`blocks.block_grid`, C order) that hold training
    voxels, with the (sorted) flat indices inside each."""
    coords = np.unravel_index(idx, tuple(shape))
    bid = [c // b for c, b in zip(coords, bshape, strict=True)]
    nb = [-(-int(s) // int(b)) for s, b in zip(shape, bshape, strict=True)]
    key = np.ravel_multi_index(bid, nb)
    order = np.argsort(key, kind="stable")
    keys, starts = np.unique(key[order], return_index=True)
    ends = np.append(starts[1:], order.size)
    for kk, s, e in zip(keys, starts, ends, strict=True):
        yield blocks[int(kk)], np.sort(idx[order[s:e]])


def _local(idx: np.ndarray, region: tuple[slice, ...], shape: Sequence[int]) -> tuple:
    coords = np.unravel_index(idx, tuple(shape))
    return tuple(c - r.start for c, r in zip(coords, region, strict=True))


def _make_forest(n_trees: int, *, balance: bool, max_depth: int | None, seed: int,
                 n_jobs: int, oob: bool) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=n_trees, class_weight="balanced" if balance else None,
        max_depth=max_depth, min_samples_leaf=2, max_features="sqrt", oob_score=oob,
        bootstrap=True, n_jobs=n_jobs, random_state=seed)


def train_forest(
    image: Volume | np.ndarray,
    labels: Volume | np.ndarray,
    *,
    features: ft.FeatureConfig | str | None = None,
    mode: str | None = None,
    spacing: Any = None,
    class_names: Sequence[str] | None = None,
    n_trees: int = 100,
    balance: bool = True,
    max_depth: int | None = 14,
    max_samples: int | None = 200_000,
    block_shape: Sequence[int] | None = None,
    augment: float = AUGMENT,
    seed: int = 0,
    n_jobs: int = -1,
    oob: bool = True,
) -> ForestModel:
    """Train a random forest from sparse labels (scribbles).

    Parameters
    ----------
    image : Volume or numpy.ndarray
        Grey image, 2-D or 3-D (z, y, x).
    labels : Volume or numpy.ndarray
        Same shape; 0 = unlabelled, 1..K = classes (any slices).
    features : FeatureConfig or str or dict, optional
        Feature set (``"default"``, ``"full"``, item list, see
        :func:`features.parse_features`); a dict name -> FeatureConfig (or text) of
        candidates, e.g. :func:`forest_select.candidate_configs`: the set is chosen from
        the scribbles themselves by
        cross-validation over held-out strokes (or labelled slices),
        :mod:`electrode_ct.segment.forest_select`, and recorded in the report's
        ``feature_selection``.
    mode : {"3d", "2d"}, optional
        Feature mode; default ``2d`` for a single 2-D image, else ``3d`` (or the config's).
    spacing : float or 3 floats, optional
        Voxel size in µm (default: the Volume's, else 1).
    class_names : sequence of str, optional
        Names of classes 1..K (every class must have scribbles); default from the labels'
        class map, else ``class1..classK``.
    n_trees : int
        Trees in the forest (100).
    balance : bool
        Weight classes inversely to their number of scribbled voxels.
    max_depth : int or None
        Tree depth limit (bounds prediction time; None grows full trees).
    max_samples : int or None
        At most this many training voxels (drawn fairly per class, seeded).
    block_shape : 3 ints, optional
        Block size for feature computation.
    augment : float
        Intensity augmentation (:func:`augment_intensity`): two jittered copies of every
        training row with gains in 1 ± ``augment`` and offsets in ±``augment``/2 of the
        normalised range, so the model tolerates the residual gain/offset between images
        that per-image normalisation leaves; 0 switches it off (default :data:`AUGMENT`).
    seed : int
        Random seed (sampling and forest).
    n_jobs : int
        Threads (-1 = all cores).
    oob : bool
        Compute the out-of-bag accuracy (about as long as the fit; NaN when off).

    Returns
    -------
    ForestModel
        With ``report``: ``n_samples`` per class, ``oob_accuracy`` (out-of-bag accuracy,
        fraction), ``feature_importance`` (name -> mean decrease in impurity).

    Raises
    ------
    ShapeError, InputError
        Scribbles of another shape, no labelled voxels, a named class without scribbles,
        fewer than two classes, an image of a single value.
    ConfigError
        3-D features for a 2-D image, fewer than one tree, ``augment`` outside [0, 1).
    """
    img_vol = image if isinstance(image, Volume) else Volume(np.asarray(image))
    lab, values, class_names = training_labels(img_vol, labels, class_names)
    cands = _candidates(features, mode, img_vol)
    if n_trees < 1:
        raise ConfigError(f"--trees: expected at least 1 tree, got {n_trees}")
    if augment < 0 or augment >= 1:
        raise ConfigError(f"--augment: expected a fraction in [0, 1), got {augment}")
    data = img_vol.data
    prange = ft.robust_range(data)  # one pass over the image's subsample
    idx = _sample(lab, values, max_samples, seed)
    y = lab.ravel()[idx]
    sp = as_spacing(spacing if spacing is not None else img_vol.spacing)
    rows = {}
    for name, cfg in cands.items():  # a few candidate feature sets
        model = ForestModel(config=cfg, class_values=list(values), class_names=list(class_names),
                            spacing=sp, stage1=None, reference_width=prange[1] - prange[0])
        vrange = ft.normalisation_range(prange, cfg.normalise)
        rows[name] = (model, vrange, _training_rows(model, data, idx, block_shape, vrange))
    chosen, selection = _select(rows, y, lab, idx, prange, augment=augment, seed=seed)
    model, vrange, x = rows[chosen]
    fit_rows(model, x, y, lab, ranges=(prange, vrange), n_trees=n_trees, balance=balance,
             max_depth=max_depth, augment=augment, seed=seed, n_jobs=n_jobs, oob=oob)
    if selection is not None:
        model.report["feature_selection"] = selection
    return model


def _candidates(features: Any, mode: str | None, image: Volume) -> dict[str, ft.FeatureConfig]:
    """Name -> FeatureConfig of the feature sets to train on (one, or the candidates)."""
    if isinstance(features, dict):
        if not features:
            raise ConfigError("features: expected at least one candidate feature set")
        return {k: _feature_config(c, mode, image) for k, c in features.items()}
    return {"given": _feature_config(features, mode, image)}


def _select(rows: dict[str, tuple[ForestModel, tuple[float, float], np.ndarray]],
            y: np.ndarray, lab: np.ndarray, idx: np.ndarray, prange: tuple[float, float], *,
            augment: float, seed: int) -> tuple[str, dict[str, Any] | None]:
    """The candidate with the best held-out-stroke score (:mod:`forest_select`)."""
    from electrode_ct.segment import forest_select as fs

    if len(rows) == 1:
        return next(iter(rows)), None
    first = next(iter(rows.values()))[0]
    n_slices = int(np.count_nonzero(lab.reshape(lab.shape[0], -1).any(1)))
    by_slice = first.config.mode == "2d" and n_slices >= 2
    fold = fs.stroke_folds(lab, seed=seed, by_slice=by_slice).ravel()[idx]
    name, scores = fs.select_features(
        {k: (x, m.config, offset_unit(prange, vr)) for k, (m, vr, x) in rows.items()}, y,
        fold, augment=augment, seed=seed)
    return name, fs.describe(name, scores, by_slice)


def fit_rows(model: ForestModel, x: np.ndarray, y: np.ndarray, lab: np.ndarray, *,
             ranges: tuple[tuple[float, float], tuple[float, float]], n_trees: int,
             balance: bool, max_depth: int | None, augment: float, seed: int, n_jobs: int,
             oob: bool = True, bootstrap_fraction: float | None = None) -> ForestModel:
    """Fit ``model.stage1`` on training rows and fill ``model.report`` (in place).

    Parameters
    ----------
    model : ForestModel
        Its ``config``, class values and names set; ``stage1`` is replaced.
    x, y : numpy.ndarray
        (n, F) float32 features of the training voxels (flat order) and their labels.
    lab : numpy.ndarray
        The scribbles (for the report's counts and digest).
    ranges : ((float, float), (float, float))
        The image's robust range and its normalisation range (grey units).
    n_trees, balance, max_depth, augment, seed, n_jobs
        As in :func:`train_forest`.
    oob : bool
        Compute the out-of-bag accuracy (about as long as the fit); NaN when off.
    bootstrap_fraction : float, optional
        Each tree's bootstrap sample as a fraction of the rows (default: all rows).

    Returns
    -------
    ForestModel
        ``model``, fitted.
    """
    cfg, values = model.config, model.class_values
    model.stage1 = fit_estimator(x, y, cfg, augment=augment, offset_unit=offset_unit(*ranges),
                                 n_trees=n_trees, balance=balance, max_depth=max_depth,
                                 seed=seed, n_jobs=n_jobs, oob=oob,
                                 bootstrap_fraction=bootstrap_fraction)
    imp = dict(zip(cfg.names, model.stage1.feature_importances_.tolist(), strict=True))
    model.report = {
        "n_samples": {n: int((y == v).sum())
                      for v, n in zip(values, model.class_names, strict=True)},
        "n_labelled": int(np.count_nonzero(lab)),
        "seed": seed, "max_depth": max_depth, "balance": balance, "augment": augment,
        "oob_accuracy": _oob_accuracy(model.stage1, y) if oob else float("nan"),
        "feature_importance": dict(sorted(imp.items(), key=lambda kv: -kv[1])),
        "training_data": {"scribbles_sha256": array_digest(lab),
                          "training_rows_sha256": array_digest(x, y)},
    }
    return model


def offset_unit(prange: tuple[float, float], vrange: tuple[float, float]) -> float:
    """One robust (percentile) range of the image in normalised feature units."""
    return (prange[1] - prange[0]) / (vrange[1] - vrange[0])


def fit_estimator(x: np.ndarray, y: np.ndarray, config: ft.FeatureConfig, *, augment: float,
                  offset_unit: float, n_trees: int, seed: int, n_jobs: int,
                  balance: bool = True, max_depth: int | None = 14, oob: bool = False,
                  bootstrap_fraction: float | None = None) -> Any:
    """A fitted scikit-learn forest on the rows ``x``, ``y`` (plus augmented copies).

    Parameters are those of :func:`fit_rows`; ``offset_unit`` scales the augmentation's
    offsets (:func:`augment_intensity`).
    """
    xa, ya = x, y
    if augment > 0:
        xa, ya = augment_intensity(x, y, config, amount=augment, offset_unit=offset_unit,
                                   seed=seed)
    est = _make_forest(n_trees, balance=balance, max_depth=max_depth, seed=seed,
                       n_jobs=n_jobs, oob=oob)
    if bootstrap_fraction is not None:
        est.set_params(max_samples=bootstrap_fraction)
    return _fit(est, xa, ya)


def stack_slices(images: Sequence[Volume], labels: Sequence[Volume]) -> tuple[Volume, Volume]:
    """Several labelled images of one size as one z stack (for 2-D features).

    Parameters
    ----------
    images, labels : sequence of Volume
        Grey images (2-D, or z stacks) and their scribbles, pairwise of the same shape;
        every image of the same (y, x) size.

    Returns
    -------
    image : Volume
        The images stacked along z (the first one's voxel size, source and metadata).
    labels : Volume
        The scribbles stacked the same way (the first one's class map).

    Raises
    ------
    ShapeError
        Images of different (y, x) sizes, or scribbles of another shape than their image.
    """
    first = images[0]
    for img, lab in zip(images, labels, strict=True):
        if tuple(lab.shape) != tuple(img.shape):
            raise ShapeError(f"{lab.source}: scribbles have shape {tuple(lab.shape)} but "
                             f"{img.source} has shape {tuple(img.shape)}; expected the same")
        if tuple(img.shape[1:]) != tuple(first.shape[1:]):
            raise ShapeError(f"{img.source}: labelled slices of different sizes, "
                             f"{tuple(img.shape[1:])} here but {tuple(first.shape[1:])} in "
                             f"{first.source}; expected one (y, x) size (crop them alike)")
    grey = np.concatenate([np.asarray(v.numpy()) for v in images])
    lab = np.concatenate([np.asarray(v.numpy()) for v in labels])
    return first.with_data(grey, ndim=3), labels[0].with_data(lab, ndim=3)


def training_labels(image: Volume, labels: Volume | np.ndarray,
                    class_names: Sequence[str] | None) -> tuple[np.ndarray, list[int], list[str]]:
    """Checked scribbles (uint8), their class values and names (see :func:`train_forest`).

    Names default to the labels' class map, else ``class1..classK``.
    """
    lab_vol = labels if isinstance(labels, Volume) else Volume(np.asarray(labels))
    where = lab_vol.source if lab_vol.source != "<array>" else "scribbles"
    lab, values = _check_training(image.data, lab_vol.numpy(), class_names, where)
    if class_names is None:
        cmap = {int(v): k for k, v in (lab_vol.class_map or {}).items()}
        class_names = [cmap.get(v, f"class{v}") for v in values]
    return lab, values, list(class_names)


def _feature_config(features: ft.FeatureConfig | str | None, mode: str | None,
                    image: Volume) -> ft.FeatureConfig:
    """The training features: ``features`` in ``mode`` (default 2-D for a single image)."""
    if isinstance(features, ft.FeatureConfig):
        cfg = features if mode is None else ft.FeatureConfig(features.features, mode=mode,
                                                             normalise=features.normalise)
    else:
        cfg = ft.parse_features(features, mode=mode or ("2d" if image.shape[0] == 1 else "3d"))
    if cfg.mode == "3d" and image.shape[0] == 1:
        raise ConfigError(f"{image.source}: a 2-D image needs 2-D features (--2d)")
    return cfg


def _training_rows(model: ForestModel, data: Any, idx: np.ndarray,
                   block_shape: Sequence[int] | None,
                   value_range: tuple[float, float]) -> np.ndarray:
    """Features (n, F) float32 of the training voxels ``idx`` (sorted flat indices).

    Computed block by block (only the blocks that hold training voxels, each with its
    halo), so the result does not depend on the block shape.
    """
    shape = tuple(data.shape)
    bshape = tuple(block_shape) if block_shape else model.default_block(shape)
    x = np.empty((idx.size, model.config.n_features), np.float32)
    blocks = block_grid(shape, bshape, ft.halo(model.config, model.spacing))
    features = ft.block_function(model.config, spacing=model.spacing, value_range=value_range)
    for block, bidx in _label_blocks(blocks, shape, bshape, idx):
        f = features(np.asarray(data[block.read]), block)
        x[np.searchsorted(idx, bidx)] = f[(slice(None), *_local(bidx, block.write, shape))].T
    return x


def _oob_accuracy(est: Any, y: np.ndarray) -> float:
    """Out-of-bag accuracy on the first ``len(y)`` (original, not jittered) training rows.

    With augmentation a jittered copy of a voxel may be in a tree's bag while the voxel is
    out of it, so the figure is then somewhat optimistic.
    """
    d = est.oob_decision_function_[: y.size]
    ok = np.all(np.isfinite(d), axis=1)
    if not ok.any():
        return float("nan")
    return float(np.mean(est.classes_[np.argmax(d[ok], axis=1)] == y[ok]))


def augment_intensity(x: np.ndarray, y: np.ndarray, config: ft.FeatureConfig, *,
                      amount: float, offset_unit: float = 1.0, copies: int = 2,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training rows plus copies as if the image had another gain and offset.

    Per-image normalisation leaves a residual gain/offset between images (percentile
    ranges depend on the phase fractions of each image); training on jittered copies makes
    the forest tolerate it. Every filter is linear in the grey values, so the features of
    ``a·v + b`` follow from those of ``v`` without refiltering: ``gaussian`` → a·f + b,
    ``ste`` (quadratic) → a²·f, every other filter (``std`` included) → a·f.

    Parameters
    ----------
    x : numpy.ndarray
        (n, F) float32 features of the training voxels.
    y : numpy.ndarray
        (n,) labels.
    config : FeatureConfig
        The features' configuration (gives each column's filter).
    amount : float
        Gains are drawn in [1 − amount, 1 + amount], offsets in ±amount/2 (per row).
    offset_unit : float
        Size of one normalised intensity unit in the features' units (1 with
        ``percentile`` normalisation).
    copies : int
        Jittered copies added to the original rows.
    seed : int
        Random seed.

    Returns
    -------
    x, y : numpy.ndarray
        (n · (copies + 1), F) features and labels, the original rows first.
    """
    rng = np.random.default_rng(seed + 7919)
    xs, ys = [x], [y]
    for _ in range(int(copies)):  # a couple of copies, vectorised over rows
        a = rng.uniform(1 - amount, 1 + amount, (x.shape[0], 1)).astype(np.float32)
        b = (rng.uniform(-amount / 2, amount / 2, (x.shape[0], 1))
             * offset_unit).astype(np.float32)
        xs.append(affine_features(x, config, a, b))
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def affine_features(x: np.ndarray, config: ft.FeatureConfig, gain: Any,
                    offset: Any) -> np.ndarray:
    """Features of the image ``gain · v + offset`` from the features ``x`` of ``v``.

    Parameters
    ----------
    x : numpy.ndarray
        (n, F) features in ``config.names`` order.
    config : FeatureConfig
    gain, offset : float or numpy.ndarray
        Scalars or (n, 1) arrays (offset in the features' intensity units).

    Returns
    -------
    numpy.ndarray
        float32 features of the same shape.
    """
    kinds = [n.split("_")[0] for n in config.names]
    power = np.array([2.0 if k == "ste" else 1.0 for k in kinds], np.float32)
    shift = np.array([k == "gaussian" for k in kinds], np.float32)
    g = np.asarray(gain, np.float32)
    return (x * g ** power + np.asarray(offset, np.float32) * shift).astype(np.float32)


def _fit(est: Any, x: np.ndarray, y: np.ndarray) -> Any:
    import warnings

    with warnings.catch_warnings():  # few trees: some samples lack OOB scores (handled)
        warnings.filterwarnings("ignore", message="Some inputs do not have OOB scores")
        return est.fit(x, y)
