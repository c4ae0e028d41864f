"""Random-forest pixel classification from sparse scribbles (ilastik-style), blockwise.

Training takes a grey image and a label volume of the same shape (0 = unlabelled, 1..K =
classes), computes the filter-bank features of :mod:`electrode_ct.segment.features` at
the labelled voxels and fits a scikit-learn random forest. With ``auto_context`` a second
forest is trained on the same features plus the first forest's class
probabilities smoothed at a few scales, which cleans up thin or ambiguous phases (the
carbon-binder/pore boundary); the first stage's out-of-bag probabilities are used at the
training voxels so the second stage never sees over-confident inputs.

Prediction runs block by block with a halo (features + context), so memory is bounded by
the block size and the result does not depend on it.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from electrode_ct.blocks import block_grid, expand
from electrode_ct.errors import ConfigError, InputError, ModelError, ShapeError
from electrode_ct.segment import features as ft
from electrode_ct.segment import priors as pr
from electrode_ct.segment.models import Prediction, entropy, read_member, register_kind
from electrode_ct.volume import Spacing, Volume, as_spacing

FOREST_FORMAT = 1
"""Version of the forest payload layout inside a model archive."""

CONTEXT_SIGMAS: tuple[float, ...] = (1.0, 3.5)
"""Scales (voxels) at which first-stage probabilities are smoothed for auto-context."""

AUGMENT = 0.1
"""Default intensity augmentation: training rows are repeated with gains within ±10 % and
offsets within ±5 % of the normalised range, the spread left by per-image percentile
normalisation between images of one sample (measured on SegmentPy: the 0.5–99.5 %
ranges of one sub-volume's slices differ by ±10 % with the phase fractions)."""

DEFAULT_BLOCK_VOXELS = 2_000_000
"""Core voxels per prediction block (memory ~ 100 B per voxel of block plus halo)."""

PRIOR_POINTS = 1_000_000
"""Voxels (a regular grid in image coordinates) from which prior adaptation estimates an
image's class priors."""

PRIOR_CACHE_BYTES = 512 * 1024 ** 2
"""With prior adaptation, first-pass probabilities up to this size are kept for the second
pass; larger images are predicted twice (memory stays bounded)."""


@dataclass
class ForestModel:
    """A trained (two-stage) random-forest pixel classifier.

    Attributes
    ----------
    config : FeatureConfig
        Features the forest was trained on.
    class_values, class_names : list
        Label values 1..K as in the scribbles, and their names.
    spacing : tuple of float
        Training voxel size (z, y, x) in µm.
    stage1 : sklearn.ensemble.RandomForestClassifier
        Forest on the features.
    stage2 : sklearn.ensemble.RandomForestClassifier or None
        Auto-context forest on features + smoothed stage-1 probabilities.
    context_sigmas : tuple of float
        Smoothing scales of the context probabilities (voxels).
    report : dict
        Training summary: samples per class, out-of-bag accuracy, feature importances.
    adapt_priors : bool
        Default of :meth:`predict`'s ``adapt_priors`` (off: measured to lower SegmentPy
        IoU, see docs/forest.md).
    reference_width : float or None
        Robust grey range (0.5–99.5 % percentile width, grey units) of the training image;
        ``auto`` normalisation rescales a new image to it when the ranges differ by more
        than :data:`features.GAIN_TOLERANCE` (None: models from before it was stored).
    last_range : (float, float) or None
        Normalisation range (lo, hi) used by the last :meth:`predict` (intensities were
        mapped by (v − lo)/(hi − lo)).
    """

    config: ft.FeatureConfig
    class_values: list[int]
    class_names: list[str]
    spacing: Spacing
    stage1: Any
    stage2: Any = None
    context_sigmas: tuple[float, ...] = CONTEXT_SIGMAS
    report: dict[str, Any] = field(default_factory=dict)
    adapt_priors: bool = False
    reference_width: float | None = None
    last_priors: dict[str, Any] = field(default_factory=dict, repr=False)
    last_range: tuple[float, float] | None = field(default=None, repr=False)
    kind: str = "forest"

    # -- geometry ---------------------------------------------------------------------
    def context_names(self) -> list[str]:
        """Names of the context channels."""
        return [f"context_{n}_{s:g}" for s in self.context_sigmas for n in self.class_names]

    # -- prediction -------------------------------------------------------------------
    def predict(self, volume: Volume | np.ndarray, *, probabilities: bool = False,
                uncertainty: bool = False, block_shape: Sequence[int] | None = None,
                n_jobs: int = -1, progress: Any = None, adapt_priors: bool | None = None,
                **_: Any) -> Prediction:
        """Segment a grey volume.

        Parameters
        ----------
        volume : Volume or numpy.ndarray
            Grey image (2-D or 3-D; numpy, memmap or dask-backed).
        probabilities : bool
            Also return per-class probabilities (K, z, y, x) float32.
        uncertainty : bool
            Also return the normalised entropy map (z, y, x) float32 in [0, 1].
        block_shape : 3 ints, optional
            Core block (z, y, x); default ~2 M voxels. Results do not depend on it.
        n_jobs : int
            Threads for the forest (-1 = all cores).
        progress : callable, optional
            Wraps the block iterator (e.g. a tqdm bar).
        adapt_priors : bool, optional
            Re-estimate this image's class priors by EM from the forest's probabilities
            on a regular grid of at most :data:`PRIOR_POINTS` voxels and adjust every
            voxel's probabilities to them (label-shift correction, Saerens et al. 2002,
            :mod:`electrode_ct.segment.priors`; relative to :meth:`training_prior`).
            Two passes over the blocks (the first pass's probabilities are kept when
            they fit in :data:`PRIOR_CACHE_BYTES`). Default: the model's
            ``adapt_priors`` (off). The estimated priors land in ``self.last_priors``.

        Returns
        -------
        Prediction
            ``labels`` uint8 with the training class values, optional probabilities and
            uncertainty.
        """
        vol = volume if isinstance(volume, Volume) else Volume(np.asarray(volume))
        data = vol.data
        self.check_image(vol)
        rng = ft.intensity_range(data, normalise=self.config.normalise,
                                 reference_width=self.reference_width)
        self.last_range = rng
        shape = vol.shape
        k = len(self.class_values)
        labels = np.zeros(shape, np.uint8)
        prob = np.zeros((k, *shape), np.float32) if probabilities else None
        unc = np.zeros(shape, np.float32) if uncertainty else None
        lut = np.asarray(self.class_values, np.uint8)
        bshape = tuple(block_shape) if block_shape else self.default_block(shape)
        it: Iterator[tuple[slice, ...]] = (b.write for b in block_grid(shape, bshape))
        if progress is not None:
            it = progress(it)
        self._set_jobs(n_jobs)
        adapt = self.adapt_priors if adapt_priors is None else bool(adapt_priors)
        first = prob
        if adapt and first is None and k * labels.size * 4 <= PRIOR_CACHE_BYTES:
            first = np.zeros((k, *shape), np.float32)
        fix = self._prior_fix(data, shape, bshape, rng, first) if adapt else None
        for core in it:
            if fix is not None and first is not None:
                p = first[(slice(None), *core)]  # first-pass probabilities, kept
            else:
                p = self.block_probabilities(data, core, value_range=rng)
            if fix is not None:
                p = pr.adjust(p, fix[0], fix[1])
            labels[core] = lut[np.argmax(p, axis=0)]
            if prob is not None:
                prob[(slice(None), *core)] = p
            if unc is not None:
                unc[core] = entropy(p)
        return Prediction(labels=labels, probabilities=prob, uncertainty=unc)

    def training_prior(self) -> np.ndarray:
        """Class priors (K,) the forest's probabilities correspond to.

        Uniform for a class-balanced forest (``balance=True``: every class carries the
        same total weight), else the training voxels' class frequencies.
        """
        counts = self.report.get("n_samples", {})
        if self.report.get("balance", True) or len(counts) != len(self.class_names):
            return np.full(len(self.class_values), 1.0 / len(self.class_values))
        c = np.array([float(counts[n]) for n in self.class_names])
        return c / c.sum()

    def _prior_fix(self, data: Any, shape: Sequence[int], bshape: Sequence[int],
                   rng: tuple[float, float], keep: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """First pass of prior adaptation: (training prior, EM-estimated image prior).

        Probabilities are sampled on a regular grid in image coordinates (so the estimate
        does not depend on the blocks); ``keep`` (K, z, y, x), if given, receives every
        block's probabilities for the second pass.
        """
        n = int(np.prod(shape))
        step = max(1, int(np.ceil((n / PRIOR_POINTS) ** (1 / 3))))
        samples = []
        for core in (b.write for b in block_grid(shape, bshape)):
            p = self.block_probabilities(data, core, value_range=rng)
            if keep is not None:
                keep[(slice(None), *core)] = p
            grid = tuple(slice((-c.start) % step, None, step) for c in core)
            samples.append(p[(slice(None), *grid)].reshape(p.shape[0], -1))
        pt = self.training_prior()
        est, info = pr.estimate_priors(np.concatenate(samples, axis=1), pt)
        self.last_priors = {"training": pt.tolist(), "estimated": est.tolist(), **info}
        return pt, est

    def default_block(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """A block shape of about :data:`DEFAULT_BLOCK_VOXELS` core voxels."""
        if self.config.mode == "2d":
            plane = int(shape[1]) * int(shape[2])
            bz = max(1, min(int(shape[0]), DEFAULT_BLOCK_VOXELS // max(plane, 1)))
            if bz * plane <= 4 * DEFAULT_BLOCK_VOXELS:
                return (bz, int(shape[1]), int(shape[2]))
        edge = int(round(DEFAULT_BLOCK_VOXELS ** (1 / 3)))
        return tuple(min(int(s), edge) for s in shape)  # type: ignore[return-value]

    def _set_jobs(self, n_jobs: int) -> None:
        for est in (self.stage1, self.stage2):
            if est is not None:
                est.n_jobs = n_jobs
                est.verbose = 0

    def block_probabilities(self, image: Any, core: tuple[slice, ...], *,
                            value_range: tuple[float, float]) -> np.ndarray:
        """Class probabilities (K, bz, by, bx) of one block (reads the halo it needs)."""
        x = self.block_inputs(image, core, value_range=value_range,
                              context=self.stage2 is not None)
        return _proba(self.stage2 if self.stage2 is not None else self.stage1, x)

    def block_inputs(self, image: Any, core: tuple[slice, ...], *,
                     value_range: tuple[float, float], context: bool,
                     stage1_override: Any = None) -> np.ndarray:
        """Final-stage inputs of one block: features (+ smoothed stage-1 probabilities).

        ``stage1_override(region_slices, probs)`` may replace first-stage probabilities
        in the context region (training inserts out-of-bag values there).
        """
        if not context:
            return ft.block_features(image, core, self.config, spacing=self.spacing,
                                     value_range=value_range)
        sig = ft.axis_sigmas(max(self.context_sigmas), self.spacing, self.config.mode)
        chalo = tuple(ft._radius(s) for s in sig)
        grown = expand(core, chalo, image.shape)
        ctx_region, ctx_inner = grown.read, grown.interior
        feats = ft.block_features(image, ctx_region, self.config, spacing=self.spacing,
                                  value_range=value_range)
        p1 = _proba(self.stage1, feats)
        if stage1_override is not None:
            stage1_override(ctx_region, p1)
        ctx = self._context(p1)[(slice(None), *ctx_inner)]
        return np.concatenate([feats[(slice(None), *ctx_inner)], ctx])

    def _context(self, p1: np.ndarray) -> np.ndarray:
        out = []
        for s in self.context_sigmas:
            sig = ft.axis_sigmas(s, self.spacing, self.config.mode)
            for c in range(p1.shape[0]):
                out.append(ndi.gaussian_filter(p1[c], sig, mode="reflect", truncate=ft.TRUNCATE,
                                               output=np.float32))
        return np.stack(out)

    # -- compatibility ----------------------------------------------------------------
    def check_image(self, vol: Volume) -> None:
        """Raise :class:`ModelError` when the image cannot be segmented by this model."""
        if self.config.mode == "3d" and vol.shape[0] == 1:
            raise ModelError(f"{vol.source}: a 2-D image needs a model trained with --2d "
                             "(this model uses 3-D features)")
        if self.config.mode == "3d":
            ratio_m = np.asarray(self.spacing) / min(self.spacing)
            ratio_i = np.asarray(vol.spacing) / min(vol.spacing)
            if np.any(np.abs(ratio_m - ratio_i) > 0.01 * ratio_m):
                raise ModelError(f"{vol.source}: voxel size {vol.spacing} µm has another "
                                 f"anisotropy than the training data {self.spacing} µm; "
                                 "resample the image or retrain")

    # -- persistence ------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        """The model.json header (without the generic archive keys)."""
        import sklearn

        return {
            "kind": "forest",
            "forest_format": FOREST_FORMAT,
            "class_values": [int(v) for v in self.class_values],
            "class_names": list(self.class_names),
            "feature_config": self.config.to_dict(),
            "feature_names": self.config.names,
            "training_spacing_um": list(self.spacing),
            "auto_context": self.stage2 is not None,
            "context_sigmas": list(self.context_sigmas),
            "n_trees": int(self.stage1.n_estimators),
            "adapt_priors": bool(self.adapt_priors),
            "reference_width": self.reference_width,
            "sklearn_version": sklearn.__version__,
            "report": self.report,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model archive (``model.json`` + pickled forests)."""
        from electrode_ct.segment.models import write_archive

        files = {"stage1.pkl": pickle.dumps(self.stage1, protocol=5)}
        if self.stage2 is not None:
            files["stage2.pkl"] = pickle.dumps(self.stage2, protocol=5)
        return write_archive(path, self.header(), files)


def _proba(est: Any, feats: np.ndarray) -> np.ndarray:
    """Forest probabilities of a (F, ...) feature block → (K, ...) float32."""
    shp = feats.shape[1:]
    x = np.ascontiguousarray(feats.reshape(feats.shape[0], -1).T)
    p = est.predict_proba(x).astype(np.float32)
    return np.ascontiguousarray(p.T).reshape((p.shape[1], *shp))


def load_forest(header: dict[str, Any], archive: zipfile.ZipFile, path: Path) -> ForestModel:
    """Loader registered for the ``forest`` kind (see :func:`models.load_model`)."""
    import sklearn

    fmt = header.get("forest_format")
    if fmt != FOREST_FORMAT:
        raise ModelError(f"{path}: forest model format {fmt!r} is not supported by this "
                         f"electrode-ct (expected {FOREST_FORMAT}); retrain the model")
    try:
        config = ft.FeatureConfig.from_dict(header["feature_config"])
        values = [int(v) for v in header["class_values"]]
        names = [str(n) for n in header["class_names"]]
        spacing = as_spacing(header["training_spacing_um"])
    except (KeyError, TypeError, ConfigError, InputError) as exc:
        raise ModelError(f"{path}: model header is incomplete or malformed ({exc})") from exc
    if config.names != header.get("feature_names", config.names):
        raise ModelError(f"{path}: feature list {header.get('feature_names')} does not match "
                         f"this electrode-ct's features {config.names}; retrain the model")
    try:
        stage1 = pickle.load(read_member(archive, "stage1.pkl"))
        stage2 = (pickle.load(read_member(archive, "stage2.pkl"))
                  if "stage2.pkl" in archive.namelist() else None)
    except Exception as exc:  # unpickling across library versions fails in many ways
        raise ModelError(f"{path}: cannot load the forest (trained with scikit-learn "
                         f"{header.get('sklearn_version')}, installed {sklearn.__version__}): "
                         f"{type(exc).__name__}; retrain the model") from exc
    n_ctx = len(header.get("context_sigmas", [])) * len(values)
    if getattr(stage1, "n_features_in_", config.n_features) != config.n_features or (
            stage2 is not None and stage2.n_features_in_ != config.n_features + n_ctx):
        raise ModelError(f"{path}: forest expects {stage1.n_features_in_} features but the "
                         f"stored configuration gives {config.n_features}")
    return ForestModel(config=config, class_values=values, class_names=names, spacing=spacing,
                       stage1=stage1, stage2=stage2,
                       context_sigmas=tuple(header.get("context_sigmas", CONTEXT_SIGMAS)),
                       report=header.get("report", {}),
                       adapt_priors=bool(header.get("adapt_priors", False)),
                       reference_width=_optional_float(header.get("reference_width")))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


register_kind("forest", load_forest)


# -- training --------------------------------------------------------------------------

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
    flat = lab.ravel()
    idx = np.flatnonzero(flat)
    if max_samples is None or idx.size <= max_samples:
        return idx
    rng = np.random.default_rng(seed)
    cls = flat[idx]
    per = max(1, max_samples // len(values))
    keep = []
    for v in values:  # K classes, not per voxel
        members = idx[cls == v]
        keep.append(members if members.size <= per else rng.choice(members, per, replace=False))
    return np.sort(np.concatenate(keep))


def _label_blocks(shape: Sequence[int], bshape: Sequence[int],
                  idx: np.ndarray) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """Blocks that hold training voxels, with the (sorted) flat indices inside each."""
    coords = np.unravel_index(idx, tuple(shape))
    bid = [c // b for c, b in zip(coords, bshape, strict=True)]
    nb = [-(-int(s) // int(b)) for s, b in zip(shape, bshape, strict=True)]
    key = np.ravel_multi_index(bid, nb)
    order = np.argsort(key, kind="stable")
    keys, starts = np.unique(key[order], return_index=True)
    ends = np.append(starts[1:], order.size)
    for kk, s, e in zip(keys, starts, ends, strict=True):
        b = np.unravel_index(int(kk), nb)
        core = tuple(slice(int(i) * int(bb), min((int(i) + 1) * int(bb), int(n)))
                     for i, bb, n in zip(b, bshape, shape, strict=True))
        yield core, np.sort(idx[order[s:e]])


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
    auto_context: bool = False,
    context_sigmas: Sequence[float] = CONTEXT_SIGMAS,
    max_depth: int | None = 14,
    max_samples: int | None = 200_000,
    block_shape: Sequence[int] | None = None,
    augment: float = AUGMENT,
    seed: int = 0,
    n_jobs: int = -1,
) -> ForestModel:
    """Train a random forest from sparse labels (scribbles).

    Parameters
    ----------
    image : Volume or numpy.ndarray
        Grey image, 2-D or 3-D (z, y, x).
    labels : Volume or numpy.ndarray
        Same shape; 0 = unlabelled, 1..K = classes (any slices).
    features : FeatureConfig or str, optional
        Feature set (``"default"``, ``"full"``, item list, see
        :func:`features.parse_features`).
    mode : {"3d", "2d"}, optional
        Feature mode; default ``2d`` for a single 2-D image, else ``3d`` (or the config's).
    spacing : float or 3 floats, optional
        Voxel size in µm (default: the Volume's, else 1).
    class_names : sequence of str, optional
        Names of classes 1..K (every class must have scribbles); default from the labels'
        class map, else ``class1..classK``.
    n_trees : int
        Trees per forest (100).
    balance : bool
        Weight classes inversely to their number of scribbled voxels.
    auto_context : bool
        Train a second forest on features + smoothed first-stage probabilities (off by
        default: no measured accuracy gain on real nano-CT, and it halves the speed).
    context_sigmas : sequence of float
        Smoothing scales (voxels) of the context probabilities.
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
        Random seed (sampling and forests).
    n_jobs : int
        Threads (-1 = all cores).

    Returns
    -------
    ForestModel
        With ``report``: ``n_samples`` per class, ``oob_accuracy`` (out-of-bag accuracy of
        the final stage, fraction), ``feature_importance`` (name -> mean decrease in
        impurity, summed over stages' shared features).

    Raises
    ------
    ShapeError, InputError
        Scribbles of another shape, no labelled voxels, a named class without scribbles,
        fewer than two classes, an image of a single value.
    """
    img_vol = image if isinstance(image, Volume) else Volume(np.asarray(image))
    lab_vol = labels if isinstance(labels, Volume) else Volume(np.asarray(labels))
    where = lab_vol.source if lab_vol.source != "<array>" else "scribbles"
    lab, values = _check_training(img_vol.data, lab_vol.numpy(), class_names, where)
    if class_names is None:
        cmap = {int(v): k for k, v in (lab_vol.class_map or {}).items()}
        class_names = [cmap.get(v, f"class{v}") for v in values]
    sp = as_spacing(spacing if spacing is not None else img_vol.spacing)
    if isinstance(features, ft.FeatureConfig):
        cfg = features if mode is None else ft.FeatureConfig(features.features, mode=mode,
                                                             normalise=features.normalise)
    else:
        auto_mode = "2d" if img_vol.shape[0] == 1 else "3d"
        cfg = ft.parse_features(features, mode=mode or auto_mode)
    if cfg.mode == "3d" and img_vol.shape[0] == 1:
        raise ConfigError(f"{img_vol.source}: a 2-D image needs 2-D features (--2d)")
    if n_trees < 1:
        raise ConfigError(f"--trees: expected at least 1 tree, got {n_trees}")
    if augment < 0 or augment >= 1:
        raise ConfigError(f"--augment: expected a fraction in [0, 1), got {augment}")
    data = img_vol.data
    prange = ft.robust_range(data)  # one pass over the image's subsample
    vrange = ft.normalisation_range(prange, cfg.normalise)
    idx = _sample(lab, values, max_samples, seed)
    y = lab.ravel()[idx]
    shape = img_vol.shape

    model = ForestModel(config=cfg, class_values=list(values), class_names=list(class_names),
                        spacing=sp, stage1=None, context_sigmas=tuple(context_sigmas),
                        reference_width=prange[1] - prange[0])
    bshape = tuple(block_shape) if block_shape else model.default_block(shape)

    x = np.empty((idx.size, cfg.n_features), np.float32)
    pos = np.searchsorted
    for core, bidx in _label_blocks(shape, bshape, idx):
        f = ft.block_features(data, core, cfg, spacing=sp, value_range=vrange)
        loc = _local(bidx, core, shape)
        x[pos(idx, bidx)] = f[(slice(None), *loc)].T
    unit = 1.0
    if augment > 0:
        # offsets in units of the image's robust (percentile) range, whatever normalisation
        unit = (prange[1] - prange[0]) / (vrange[1] - vrange[0])

    def jitter(xx: np.ndarray, passthrough: int = 0) -> tuple[np.ndarray, np.ndarray]:
        if augment <= 0:
            return xx, y
        return augment_intensity(xx, y, cfg, amount=augment, offset_unit=unit,
                                 passthrough=passthrough, seed=seed)

    model.stage1 = _fit(_make_forest(n_trees, balance=balance, max_depth=max_depth, seed=seed,
                                     n_jobs=n_jobs, oob=True), *jitter(x))
    report: dict[str, Any] = {
        "n_samples": {n: int((y == v).sum()) for v, n in zip(values, class_names, strict=True)},
        "n_labelled": int(np.count_nonzero(lab)),
        "oob_accuracy_stage1": _oob_accuracy(model.stage1, y),
        "seed": seed, "max_depth": max_depth, "balance": balance, "augment": augment,
    }
    imp = dict(zip(cfg.names, model.stage1.feature_importances_.tolist(), strict=True))
    if auto_context:
        # original rows come first in the (augmented) training set
        oob = model.stage1.oob_decision_function_[:idx.size].astype(np.float32)
        model.stage2 = _make_forest(n_trees, balance=balance, max_depth=max_depth,
                                    seed=seed + 1, n_jobs=n_jobs, oob=True)
        xc = np.empty((idx.size, len(context_sigmas) * len(values)), np.float32)

        def override(region: tuple[slice, ...], p1: np.ndarray) -> None:
            sub = _indices_in(idx, region, shape)
            ok = np.all(np.isfinite(oob[sub]), axis=1)
            loc = _local(idx[sub[ok]], region, shape)
            p1[(slice(None), *loc)] = oob[sub[ok]].T

        nf = cfg.n_features
        for core, bidx in _label_blocks(shape, bshape, idx):
            inp = model.block_inputs(data, core, value_range=vrange, context=True,
                                     stage1_override=override)
            loc = _local(bidx, core, shape)
            xc[pos(idx, bidx)] = inp[(slice(nf, None), *loc)].T
        model.stage2 = _fit(model.stage2, *jitter(np.concatenate([x, xc], axis=1),
                                                  passthrough=xc.shape[1]))
        report["oob_accuracy"] = _oob_accuracy(model.stage2, y)
        names2 = cfg.names + model.context_names()
        imp = dict(zip(names2, model.stage2.feature_importances_.tolist(), strict=True))
    else:
        report["oob_accuracy"] = report["oob_accuracy_stage1"]
    report["feature_importance"] = dict(sorted(imp.items(), key=lambda kv: -kv[1]))
    model.report = report
    return model


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
                      passthrough: int = 0,
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
    passthrough : int
        Trailing columns copied unchanged (auto-context probabilities).
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
        xs.append(affine_features(x, config, a, b, passthrough=passthrough))
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def affine_features(x: np.ndarray, config: ft.FeatureConfig, gain: Any, offset: Any, *,
                    passthrough: int = 0) -> np.ndarray:
    """Features of the image ``gain · v + offset`` from the features ``x`` of ``v``.

    Parameters
    ----------
    x : numpy.ndarray
        (n, F [+ passthrough]) features in ``config.names`` order.
    config : FeatureConfig
    gain, offset : float or numpy.ndarray
        Scalars or (n, 1) arrays (offset in the features' intensity units).
    passthrough : int
        Trailing columns returned unchanged.

    Returns
    -------
    numpy.ndarray
        float32 features of the same shape.
    """
    kinds = [n.split("_")[0] for n in config.names]
    power = np.array([2.0 if k == "ste" else 1.0 for k in kinds] + [0.0] * passthrough,
                     np.float32)
    shift = np.array([k == "gaussian" for k in kinds] + [False] * passthrough, np.float32)
    g = np.asarray(gain, np.float32)
    return (x * g ** power + np.asarray(offset, np.float32) * shift).astype(np.float32)


def _fit(est: Any, x: np.ndarray, y: np.ndarray) -> Any:
    import warnings

    with warnings.catch_warnings():  # few trees: some samples lack OOB scores (handled)
        warnings.filterwarnings("ignore", message="Some inputs do not have OOB scores")
        return est.fit(x, y)


def _indices_in(idx: np.ndarray, region: tuple[slice, ...], shape: Sequence[int]) -> np.ndarray:
    """Positions in ``idx`` of the flat indices that lie inside ``region``."""
    coords = np.unravel_index(idx, tuple(shape))
    inside = np.ones(idx.size, bool)
    for c, r in zip(coords, region, strict=True):
        inside &= (c >= r.start) & (c < r.stop)
    return np.flatnonzero(inside)


# -- iterative refinement and threshold seeds ----------------------------------------------

ML_VARIANTS = {"ML1": "one central slice", "ML2": "7 equally spaced slices",
               "ML3": "the whole volume"}
"""The published threshold-seeded forest variants."""


def threshold_seeds(image: np.ndarray, thresholds: Sequence[float], *,
                    variant: str = "ML1", margin: float | None = None,
                    slices: Sequence[int] | None = None) -> np.ndarray:
    """Training labels from thresholds: voxels far from every cut value (ML1–ML3).

    Parameters
    ----------
    image : numpy.ndarray
        Grey image (z, y, x) or (y, x).
    thresholds : sequence of float
        Increasing cut values (grey levels) between K = len + 1 classes.
    variant : {"ML1", "ML2", "ML3"}
        Seeds on the central slice, on 7 equally spaced slices, or on every slice.
    margin : float, optional
        Minimum distance (grey levels) from every cut; default a quarter of the smallest
        gap between cuts (or of the grey range for a single cut).
    slices : sequence of int, optional
        Explicit z slices (overrides the variant's choice).

    Returns
    -------
    numpy.ndarray
        uint8 labels of the image's shape: 0 unlabelled, class k+1 for grey levels between
        cut k−1 and cut k (darkest = 1).
    """
    from electrode_ct.segment.scribbles import scribble_slices

    img = np.asarray(image)
    two_d = img.ndim == 2
    img3 = img[None] if two_d else img
    cuts = np.sort(np.asarray(thresholds, np.float64))
    if cuts.size == 0:
        raise InputError("thresholds: at least one cut value is needed")
    if variant not in ML_VARIANTS:
        raise InputError(f"variant: expected one of {', '.join(ML_VARIANTS)}, got {variant!r}")
    if margin is None:
        gaps = np.diff(cuts) if cuts.size > 1 else np.array([np.ptp(img3) / 2])
        margin = 0.25 * float(gaps.min())
    nz = img3.shape[0]
    if slices is not None:
        zs = np.asarray(slices, int)
    else:
        zs = {"ML1": scribble_slices(nz, 1), "ML2": scribble_slices(nz, 7),
              "ML3": np.arange(nz)}[variant]
    out = np.zeros(img3.shape, np.uint8)
    sub = img3[zs].astype(np.float64)
    cls = np.searchsorted(cuts, sub).astype(np.uint8) + 1
    near = np.min(np.abs(sub[..., None] - cuts), axis=-1) < margin
    cls[near] = 0
    out[zs] = cls
    return out[0] if two_d else out


def merge_scribbles(base: np.ndarray, added: np.ndarray) -> np.ndarray:
    """Scribbles for retraining: ``added`` strokes (non-zero) drawn over ``base``."""
    a, b = np.asarray(base), np.asarray(added)
    if a.shape != b.shape:
        raise ShapeError(f"added scribbles {b.shape} differ in shape from the first {a.shape}")
    return np.where(b > 0, b, a).astype(np.uint8)


def uncertain_regions(uncertainty: np.ndarray, *, n: int = 5,
                      size: int = 32) -> list[dict[str, Any]]:
    """The ``n`` windows of highest mean uncertainty: where to paint next.

    Parameters
    ----------
    uncertainty : numpy.ndarray
        Uncertainty map (z, y, x), e.g. :attr:`Prediction.uncertainty`.
    n : int
        Number of regions.
    size : int
        Window edge (voxels); windows do not overlap.

    Returns
    -------
    list of dict
        ``z, y, x`` (window centre, voxels), ``mean_uncertainty``, highest first.
    """
    u = np.asarray(uncertainty, np.float32)
    if u.ndim == 2:
        u = u[None]
    win = [min(size, s) for s in u.shape]
    mean = ndi.uniform_filter(u, size=win, mode="constant")
    out: list[dict[str, Any]] = []
    for _ in range(int(n)):  # n small: one argmax + suppression each
        i = int(np.argmax(mean))
        val = float(mean.flat[i])
        if not np.isfinite(val) or val <= 0:
            break
        c = np.unravel_index(i, u.shape)
        out.append({"z": int(c[0]), "y": int(c[1]), "x": int(c[2]), "mean_uncertainty": val})
        sl = tuple(slice(max(0, ci - w + 1), ci + w) for ci, w in zip(c, win, strict=True))
        mean[sl] = -np.inf
    return out
