"""The ilastik loop's retrain: cached features of whole z slices and a quick forest.

Painting a stroke changes the scribbles of one slice; the features of the slices painted
before, and of the slice on view, do not change. A :class:`ScribbleSession` is bound to one
image and one feature configuration and keeps the features of whole z slices (each the
block ``(1, ny, nx)`` read with the feature halo, so equal to the whole-volume features);
a retrain filters only the slices that are new to it.

Two fits share those rows:

- :meth:`ScribbleSession.quick_model`, the interactive one: the scribbled rows without the
  jittered copies of :func:`forest_train.augment_intensity`, :data:`QUICK_TREES` trees each
  on a :data:`QUICK_BOOTSTRAP` bootstrap fraction of the rows, no out-of-bag pass
  (measured in ``docs/napari.md``: the validation accuracy of the full fit, at a tenth of
  its time);
- :meth:`ScribbleSession.full_model`: exactly :func:`forest_train.train_forest` with
  per-slice feature blocks (identical training rows, identical forest), the model the user
  saves and applies and that ``ect segment predict`` reads.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from electrode_ct.blocks import expand
from electrode_ct.segment import features as ft
from electrode_ct.segment.forest import ForestModel, _proba
from electrode_ct.segment.forest_train import (
    AUGMENT,
    _feature_config,
    _sample,
    fit_rows,
    training_labels,
)
from electrode_ct.segment.models import Prediction, entropy
from electrode_ct.volume import Volume

QUICK_TREES = 16
"""Trees of the interactive forest."""

QUICK_BOOTSTRAP = 0.3
"""Fraction of the scribbled rows each interactive tree is grown on (bootstrap sample)."""

MAX_CACHED_SLICES = 64
"""Slices whose features a session keeps (least recently used dropped first)."""


class ScribbleSession:
    """Features of whole z slices of one image, cached between retrains.

    Parameters
    ----------
    image : Volume
        The grey image (numpy, memmap or dask-backed).
    features : FeatureConfig or str, optional
        Feature set, as :func:`forest_train.train_forest` takes it.
    mode : {"3d", "2d"}, optional
        Feature mode (default 2-D for a single slice, else the config's / 3-D).
    max_slices : int
        Slices kept in the cache.
    """

    def __init__(self, image: Volume, *, features: ft.FeatureConfig | str | None = None,
                 mode: str | None = None, max_slices: int = MAX_CACHED_SLICES) -> None:
        self.image = image
        self.config = _feature_config(features, mode, image)
        self.spacing = image.spacing
        robust = ft.robust_range(image.data)
        self.ranges = (robust, ft.normalisation_range(robust, self.config.normalise))
        self._run = ft.block_function(self.config, spacing=self.spacing,
                                      value_range=self.ranges[1])
        self._halo = ft.halo(self.config, self.spacing)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.max_slices = int(max_slices)
        self.filtered = 0
        """Slices filtered so far (cache misses)."""

    def matches(self, image: Volume, config: ft.FeatureConfig) -> bool:
        """True when this session's cache is valid for ``image`` and ``config``."""
        return (image.data is self.image.data and image.spacing == self.spacing
                and config == self.config)

    def slice_features(self, z: int) -> np.ndarray:
        """Features (F, ny, nx) float32 of the whole slice ``z`` (cached)."""
        z = int(z)
        if z in self._cache:
            self._cache.move_to_end(z)
            return self._cache[z]
        ny, nx = self.image.shape[1:]
        block = expand((slice(z, z + 1), slice(0, ny), slice(0, nx)), self._halo,
                       self.image.shape)
        feats = self._run(np.asarray(self.image.data[block.read]), block)[:, 0]
        self.filtered += 1
        self._cache[z] = feats
        while len(self._cache) > self.max_slices:
            self._cache.popitem(last=False)
        return feats

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Features (n, F) float32 of the voxels ``idx`` (sorted flat indices)."""
        plane = int(np.prod(self.image.shape[1:]))
        z, rest = np.divmod(idx, plane)
        x = np.empty((idx.size, self.config.n_features), np.float32)
        bounds = np.flatnonzero(np.diff(z)) + 1
        for part in np.split(np.arange(idx.size), bounds):
            if part.size:
                feats = self.slice_features(int(z[part[0]])).reshape(x.shape[1], -1)
                x[part] = feats[:, rest[part]].T
        return x

    def _model(self, labels: Any, class_names: Sequence[str] | None, seed: int,
               max_samples: int | None) -> tuple[ForestModel, np.ndarray, np.ndarray,
                                                  np.ndarray]:
        lab, values, class_names = training_labels(self.image, labels, class_names)
        robust = self.ranges[0]
        model = ForestModel(config=self.config, class_values=list(values),
                            class_names=list(class_names), spacing=self.spacing, stage1=None,
                            reference_width=robust[1] - robust[0])
        idx = _sample(lab, values, max_samples, seed)
        return model, self.rows(idx), lab.ravel()[idx], lab

    def quick_model(self, labels: Any, *, class_names: Sequence[str] | None = None,
                    n_trees: int = QUICK_TREES, bootstrap: float = QUICK_BOOTSTRAP,
                    max_depth: int | None = 14, max_samples: int | None = 200_000,
                    seed: int = 0, n_jobs: int = -1) -> ForestModel:
        """The interactive forest: scribbled rows only, no augmentation, no OOB pass.

        Parameters
        ----------
        labels : Volume or numpy.ndarray
            Scribbles of the image's shape (0 = unlabelled, 1..K).
        class_names : sequence of str, optional
            Names of classes 1..K (as :func:`forest_train.train_forest`).
        n_trees : int
            Trees (:data:`QUICK_TREES`).
        bootstrap : float
            Each tree's bootstrap sample as a fraction of the rows (:data:`QUICK_BOOTSTRAP`).
        max_depth, max_samples, seed, n_jobs
            As in :func:`forest_train.train_forest`.

        Returns
        -------
        ForestModel
            Its report's ``oob_accuracy`` is NaN and ``interactive`` is True.
        """
        model, x, y, lab = self._model(labels, class_names, seed, max_samples)
        fit_rows(model, x, y, lab, ranges=self.ranges, n_trees=n_trees, balance=True,
                 max_depth=max_depth, augment=0.0, seed=seed, n_jobs=n_jobs, oob=False,
                 bootstrap_fraction=bootstrap)
        model.report["interactive"] = True
        return model

    def full_model(self, labels: Any, *, class_names: Sequence[str] | None = None,
                   n_trees: int = 100, max_depth: int | None = 14,
                   max_samples: int | None = 200_000, augment: float = AUGMENT,
                   seed: int = 0, n_jobs: int = -1) -> ForestModel:
        """The model :func:`forest_train.train_forest` gives with per-slice blocks.

        Same parameters as :meth:`quick_model` (``augment`` as in ``train_forest``); the
        training rows, the forest and the report equal ``train_forest(image, labels, ...,
        block_shape=(1, ny, nx))``'s, from the cached features.
        """
        model, x, y, lab = self._model(labels, class_names, seed, max_samples)
        return fit_rows(model, x, y, lab, ranges=self.ranges, n_trees=n_trees, balance=True,
                        max_depth=max_depth, augment=augment, seed=seed, n_jobs=n_jobs)

    def predict_view(self, model: ForestModel, region: Sequence[slice]) -> Prediction:
        """:meth:`ForestModel.predict_region` of a region of one slice, from the cache.

        A model of other features, voxel size or normalisation than the session's falls
        back to ``model.predict_region`` (same result, computed afresh).
        """
        rng = ft.normalisation_range(self.ranges[0], model.config.normalise,
                                     reference_width=model.reference_width)
        z = region[0]
        if (model.config != self.config or model.spacing != self.spacing
                or rng != self.ranges[1] or z.stop - z.start != 1):
            return model.predict_region(self.image, region)
        feats = self.slice_features(z.start)[(slice(None), *region[1:])][:, None]
        model._set_jobs(-1)
        p = _proba(model.stage1, np.ascontiguousarray(feats))
        lut = np.asarray(model.class_values, np.uint8)
        return Prediction(labels=lut[np.argmax(p, axis=0)], probabilities=p,
                          uncertainty=entropy(p), intensity_range=rng)
