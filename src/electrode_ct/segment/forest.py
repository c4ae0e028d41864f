"""Random-forest pixel classifier (ilastik-style): the model, blockwise prediction, model files.

A :class:`ForestModel` holds the forest trained by
:func:`electrode_ct.segment.forest_train.train_forest` on the filter-bank features of
:mod:`electrode_ct.segment.features`.

Prediction runs block by block with the features' halo, so memory is bounded by the block
size and the result does not depend on it. The model file is the archive of
:mod:`electrode_ct.segment.models` (kind ``forest``): ``model.json`` plus the trees as
plain arrays (``forest.npz``, :mod:`electrode_ct.segment.tree_arrays`); no pickle.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from electrode_ct.blocks import Block, block_grid, expand
from electrode_ct.compute.heap import kept_heap
from electrode_ct.errors import ConfigError, InputError, ModelError
from electrode_ct.segment import features as ft
from electrode_ct.segment.convert import register_legacy
from electrode_ct.segment.models import (
    Prediction,
    check_options,
    entropy,
    pack_arrays,
    read_arrays,
    register_kind,
    write_archive,
)
from electrode_ct.segment.tree_arrays import forest_from_arrays, forest_to_arrays
from electrode_ct.volume import Spacing, Volume, as_spacing

FOREST_FORMAT = 2
"""Version of the forest payload layout inside a model archive (2: tree arrays in
``forest.npz``; 1: a pickled forest ``stage1.pkl``, refused)."""

FOREST_MEMBER = "forest.npz"
"""Archive member holding the tree arrays."""

DEFAULT_BLOCK_VOXELS = 2_000_000
"""Core voxels per prediction block (memory ~ 100 B per voxel of block plus halo)."""


@dataclass
class ForestModel:
    """A trained random-forest pixel classifier.

    Attributes
    ----------
    config : FeatureConfig
        Features the forest was trained on.
    class_values, class_names : list
        Label values 1..K as in the scribbles, and their names.
    spacing : tuple of float
        Training voxel size (z, y, x) in µm.
    stage1 : sklearn.ensemble.RandomForestClassifier
        The forest on the features (the name of the two-stage releases), stored as its
        tree arrays (``forest.npz``).
    report : dict
        Training summary: samples per class, out-of-bag accuracy, feature importances.
    reference_width : float or None
        Robust grey range (0.5–99.5 % percentile width, grey units) of the training image;
        ``auto`` normalisation rescales a new image to it when the ranges differ by more
        than :data:`features.GAIN_TOLERANCE` (None: models from before it was stored).
    """

    config: ft.FeatureConfig
    class_values: list[int]
    class_names: list[str]
    spacing: Spacing
    stage1: Any
    report: dict[str, Any] = field(default_factory=dict)
    reference_width: float | None = None
    kind: str = "forest"

    prediction_options: ClassVar[tuple[str, ...]] = ("block_shape", "n_jobs")
    """The forest's own :meth:`predict` options (see :class:`models.SegmentationModel`)."""

    # -- prediction -------------------------------------------------------------------
    def predict(self, volume: Volume | np.ndarray, *, probabilities: bool = False,
                uncertainty: bool = False, two_d: bool = False,
                progress: Callable[[Any], Any] | None = None,
                **options: Any) -> Prediction:
        """Segment a grey volume.

        Parameters
        ----------
        volume : Volume or numpy.ndarray
            Grey image (2-D or 3-D; numpy, memmap or dask-backed).
        probabilities : bool
            Also return per-class probabilities (K, z, y, x) float32.
        uncertainty : bool
            Also return the normalised entropy map (z, y, x) float32 in [0, 1].
        two_d : bool
            Segment every z slice (axis 0) on its own: needs a model trained on 2-D
            features (which always predicts so).
        progress : callable, optional
            Wraps the block iterator (e.g. a tqdm bar).
        **options
            The forest's own options (:attr:`prediction_options`): ``block_shape``
            (3 ints, core block (z, y, x); default ~2 M voxels; results do not depend on
            it) and ``n_jobs`` (threads for the forest, -1 = all cores). Any other
            keyword raises :class:`ConfigError`.

        Returns
        -------
        Prediction
            ``labels`` uint8 with the training class values, optional probabilities and
            uncertainty, and the ``intensity_range`` the image was normalised with.

        Raises
        ------
        ConfigError
            An unknown option.
        ModelError
            ``two_d`` with a 3-D model, or an image this model cannot segment
            (:meth:`check_image`).
        """
        check_options(self, options)
        vol = volume if isinstance(volume, Volume) else Volume(np.asarray(volume))
        if two_d and self.config.mode == "3d":
            raise ModelError(f"{vol.source}: per-slice prediction (two_d, --2d) needs a "
                             "forest trained on 2-D features (--2d); this one uses 3-D "
                             "features")
        self.check_image(vol)
        data = vol.data
        rng = ft.intensity_range(data, normalise=self.config.normalise,
                                 reference_width=self.reference_width)
        shape = vol.shape
        labels = np.zeros(shape, np.uint8)
        prob = np.zeros((len(self.class_values), *shape), np.float32) if probabilities else None
        unc = np.zeros(shape, np.float32) if uncertainty else None
        lut = np.asarray(self.class_values, np.uint8)
        block_shape = options.get("block_shape")
        bshape = tuple(block_shape) if block_shape else self.default_block(shape)
        blocks = block_grid(shape, bshape, ft.halo(self.config, self.spacing))
        it: Iterator[Block] = progress(blocks) if progress is not None else iter(blocks)
        self._set_jobs(int(options.get("n_jobs", -1)))
        run = self.block_function(value_range=rng)
        for block in it:
            p = run(np.asarray(data[block.read]), block)
            labels[block.write] = lut[np.argmax(p, axis=0)]
            if prob is not None:
                prob[(slice(None), *block.write)] = p
            if unc is not None:
                unc[block.write] = entropy(p)
        return Prediction(labels=labels, probabilities=prob, uncertainty=unc,
                          intensity_range=rng)

    def predict_region(self, volume: Volume | np.ndarray, region: Sequence[slice], *,
                       value_range: tuple[float, float] | None = None) -> Prediction:
        """Prediction of one region only (e.g. the part of a slice a viewer shows).

        The region is one block (:func:`electrode_ct.blocks.expand` with the feature halo)
        normalised by the whole image's range, so the result equals :meth:`predict`'s
        there, at the cost of the region plus its halo.

        Parameters
        ----------
        volume : Volume or numpy.ndarray
            The whole grey image (numpy, memmap or dask-backed).
        region : sequence of 3 slices
            The region (z, y, x) in voxels, with explicit starts and stops.
        value_range : (float, float), optional
            The image's :func:`features.intensity_range` when already known (it reads a
            sample of the whole image).

        Returns
        -------
        Prediction
            ``labels``, ``probabilities`` and ``uncertainty`` of the region's shape.
        """
        vol = volume if isinstance(volume, Volume) else Volume(np.asarray(volume))
        self.check_image(vol)
        rng = value_range or ft.intensity_range(vol.data, normalise=self.config.normalise,
                                                reference_width=self.reference_width)
        block = expand(region, ft.halo(self.config, self.spacing), vol.shape)
        p = self.block_function(value_range=rng)(np.asarray(vol.data[block.read]), block)
        lut = np.asarray(self.class_values, np.uint8)
        return Prediction(labels=lut[np.argmax(p, axis=0)], probabilities=p,
                          uncertainty=entropy(p), intensity_range=rng)

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
        self.stage1.n_jobs = n_jobs
        self.stage1.verbose = 0

    def block_function(self, *, value_range: tuple[float, float]
                       ) -> Callable[[np.ndarray, Block], np.ndarray]:
        """The block function (:mod:`electrode_ct.blocks`) of prediction.

        Parameters
        ----------
        value_range : (float, float)
            Normalisation range of the whole image (:func:`features.intensity_range`).

        Returns
        -------
        callable
            ``func(region, block)``: class probabilities (K, bz, by, bx) float32 of the
            block's interior from its grey region read with the feature halo
            (:func:`features.halo`); equal to the whole-volume prediction there.
        """
        features = ft.block_function(self.config, spacing=self.spacing,
                                     value_range=value_range)

        def run(region: np.ndarray, block: Block) -> np.ndarray:
            with kept_heap():  # no page fault per freed feature/tree array (compute.heap)
                return _proba(self.stage1, features(region, block))

        return run

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
            "training_data": self.report.get("training_data"),
            "n_trees": int(self.stage1.n_estimators),
            "reference_width": self.reference_width,
            "sklearn_version": sklearn.__version__,
            "report": self.report,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model archive (``model.json`` + the tree arrays ``forest.npz``)."""
        arrays, params = forest_to_arrays(self.stage1)
        return write_archive(path, {**self.header(), "forest_params": params},
                             {FOREST_MEMBER: pack_arrays(arrays)})


def _proba(est: Any, feats: np.ndarray) -> np.ndarray:
    """Forest probabilities of a (F, ...) feature block → (K, ...) float32."""
    shp = feats.shape[1:]
    x = np.ascontiguousarray(feats.reshape(feats.shape[0], -1).T)
    p = est.predict_proba(x).astype(np.float32)
    return np.ascontiguousarray(p.T).reshape((p.shape[1], *shp))


def load_forest(header: dict[str, Any], archive: zipfile.ZipFile, path: Path) -> ForestModel:
    """Loader registered for the ``forest`` kind (see :func:`models.load_model`)."""
    fmt = header.get("forest_format")
    if fmt != FOREST_FORMAT:
        raise ModelError(f"{path}: forest model format {fmt!r} is not supported by this "
                         f"electrode-ct (expected {FOREST_FORMAT}); retrain the model")
    params = header.get("forest_params") or {}
    if not isinstance(params, dict):
        raise ModelError(f"{path}: forest_params in model.json: expected an object")
    stage1 = forest_from_arrays(read_arrays(archive, FOREST_MEMBER, path), params,
                                source=str(path))
    return forest_model(header, stage1, path)


def forest_model(header: dict[str, Any], stage1: Any, path: Path) -> ForestModel:
    """A :class:`ForestModel` from its ``model.json`` header and its fitted forest.

    Raises
    ------
    ModelError
        A malformed header, or a forest that does not match it (feature list, number of
        features or classes).
    """
    try:
        config = ft.FeatureConfig.from_dict(header["feature_config"])
        values = [int(v) for v in header["class_values"]]
        names = [str(n) for n in header["class_names"]]
        spacing = as_spacing(header["training_spacing_um"])
    except (KeyError, TypeError, ValueError, ConfigError, InputError) as exc:
        raise ModelError(f"{path}: model header is incomplete or malformed ({exc})") from exc
    if config.names != header.get("feature_names", config.names):
        raise ModelError(f"{path}: feature list {header.get('feature_names')} does not match "
                         f"this electrode-ct's features {config.names}; retrain the model")
    if getattr(stage1, "n_features_in_", None) != config.n_features:
        raise ModelError(f"{path}: forest expects {getattr(stage1, 'n_features_in_', None)} "
                         f"features but the stored configuration gives {config.n_features}")
    if len(stage1.classes_) != len(values):
        raise ModelError(f"{path}: forest has {len(stage1.classes_)} classes but the header "
                         f"names {len(values)}")
    return ForestModel(config=config, class_values=values, class_names=names, spacing=spacing,
                       stage1=stage1, report=header.get("report", {}),
                       reference_width=_optional_float(header.get("reference_width")))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


register_kind("forest", load_forest)
register_legacy("forest", "stage1.pkl", forest_model)
