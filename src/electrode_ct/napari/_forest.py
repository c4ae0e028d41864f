"""Widget 2, the ilastik loop: scribble, train the forest, look, paint more, retrain.

Scribbles are an in-memory labels layer over the image (0 = unlabelled, 1..K = the named
classes). *Train* keeps a :class:`~electrode_ct.segment.forest_loop.ScribbleSession` (the
features of whole slices, cached until the image or the feature settings change), fits its
interactive forest (:meth:`~electrode_ct.segment.forest_loop.ScribbleSession.quick_model`)
and predicts the visible part of the current slice from the cache: a ``prediction`` and an
``uncertainty`` layer. *Where to label next* marks
:func:`electrode_ct.segment.scribbles.uncertain_regions` of that view as points. *Save
model* and *Apply to volume* fit the full model once per scribbles and settings
(:meth:`~electrode_ct.segment.forest_loop.ScribbleSession.full_model`, what
``ect segment train-forest`` fits), write the archive ``ect segment predict`` and the
pipeline load, and segment the whole volume block by block in memory, or on the
out-of-core engine above its threshold (:mod:`._engine`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, PushButton, SpinBox

from electrode_ct.napari._common import LayerPicker, show_layer, visible_region
from electrode_ct.napari._engine import EngineControls, predict_on_engine
from electrode_ct.napari._jobs import JobPanel, Progress, notify
from electrode_ct.volume import Volume

PREDICTION, UNCERTAINTY, NEXT, VOLUME = ("prediction", "uncertainty", "label next",
                                         "prediction (volume)")


class ForestWidget(Container):
    """The interactive random-forest loop (see the module docstring)."""

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.image = LayerPicker(napari_viewer, "image", label="image")
        self.scribbles = LayerPicker(napari_viewer, "labels", label="scribbles")
        self.class_names = LineEdit(label="classes", value="active,pore_cbd")
        self.new_button = PushButton(text="New scribbles layer")
        self.features = ComboBox(label="features", choices=["default", "minimal", "full"],
                                 value="default")
        self.mode = ComboBox(label="features per", choices=["2d", "3d"], value="2d")
        self.trees = SpinBox(label="trees (saved model)", value=100, min=1, max=500)
        self.train_button = PushButton(text="Train + predict view")
        self.next_button = PushButton(text="Where to label next")
        self.model_path = FileEdit(label="model file", mode="w", filter="*.ectmodel")
        self.save_button = PushButton(text="Save model")
        self.load_button = PushButton(text="Load model")
        self.apply_button = PushButton(text="Apply to volume")
        self.engine = EngineControls("forest")
        self.jobs = JobPanel()
        super().__init__(widgets=[
            self.image, self.scribbles, self.class_names, self.new_button, self.features,
            self.mode, self.trees, self.train_button, self.next_button, self.model_path,
            self.save_button, self.load_button, *self.engine.widgets, self.apply_button,
            self.jobs])
        self.model: Any = None
        self.full: Any = None
        self._full_key: Any = None
        self.session: Any = None
        self.view: tuple[slice, ...] | None = None
        self.view_uncertainty: np.ndarray | None = None
        self.new_button.changed.connect(self.new_scribbles)
        self.train_button.changed.connect(self.train)
        self.next_button.changed.connect(self.label_next)
        self.save_button.changed.connect(self.save_model)
        self.load_button.changed.connect(self.load_model)
        self.apply_button.changed.connect(self.apply)
        self.image.reset_choices()
        self.scribbles.reset_choices()

    def class_map(self) -> dict[str, int]:
        """Scribble classes: the names typed, valued 1..K (0 = unlabelled)."""
        from electrode_ct.errors import InputError

        names = [n.strip() for n in self.class_names.value.split(",") if n.strip()]
        if len(names) < 2 or len(set(names)) != len(names):
            raise InputError(f"classes: expected at least two distinct names, got "
                             f"{self.class_names.value!r}")
        return {n: i + 1 for i, n in enumerate(names)}

    def new_scribbles(self, *_: Any) -> Any:
        """An empty in-memory scribble layer over the image, in paint mode with class 1."""
        try:
            grey, cmap = self.image.volume("image"), self.class_map()
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        layer = show_layer(self.viewer, "scribbles", np.zeros(grey.shape, np.uint8),
                           like=grey, class_map=cmap)
        layer.mode, layer.selected_label, layer.brush_size = "paint", 1, 3
        self.scribbles.reset_choices()
        self.scribbles.value = layer.name
        return layer

    def _inputs(self) -> tuple[Volume, Volume]:
        grey = self.image.volume("image")
        lab = self.scribbles.volume("scribbles")
        lab = Volume(np.asarray(lab.data), spacing=grey.spacing,
                     metadata={"source": f"scribbles layer {self.scribbles.value!r}"})
        return grey, lab.with_class_map(self.class_map())

    def _settings(self, grey: Volume) -> tuple[Any, list[str], int]:
        from electrode_ct.segment.features import parse_features

        mode = "2d" if grey.shape[0] == 1 else self.mode.value
        return (parse_features(self.features.value, mode=mode), list(self.class_map()),
                int(self.trees.value))

    def _session(self, grey: Volume, cfg: Any) -> Any:
        """The feature cache of ``grey`` under ``cfg`` (a new one when either changed)."""
        from electrode_ct.segment.forest_loop import ScribbleSession

        if self.session is None or not self.session.matches(grey, cfg):
            self.session = ScribbleSession(grey, features=cfg)
        return self.session

    def train(self, *_: Any) -> Any:
        """Retrain the interactive forest on the scribbles in a worker, then predict the
        visible view (:meth:`ScribbleSession.quick_model`: only slices new to the cache are
        filtered); the saved/applied model is fitted on Save/Apply."""
        try:
            grey, lab = self._inputs()
            view = visible_region(self.viewer, self.image.layer, grey)
            cfg, names, _ = self._settings(grey)
        except Exception as exc:
            self.jobs.fail(exc)
            return None

        def job(progress: Progress) -> tuple[Any, Any]:
            steps = iter(progress(range(2)))
            next(steps)
            session = self._session(grey, cfg)
            model = session.quick_model(lab, class_names=names)
            next(steps)
            pred = session.predict_view(model, view)
            list(steps)
            return model, pred

        def done(result: tuple[Any, Any]) -> None:
            self.model, pred = result
            if self._full_key == "loaded":
                self.full, self._full_key = None, None
            self._show_view(grey, view, pred)
            notify(f"forest retrained on {self.model.report['n_labelled']} scribbled voxels")

        return self.jobs.start(job, done, title="train forest")

    def _full_model(self) -> Any:
        """A function giving the model to save or apply: the loaded one, the one fitted for
        the current scribbles and settings, or a new full fit (run it in a worker)."""
        from electrode_ct.segment.models import array_digest

        if self._full_key == "loaded" and self.full is not None:
            return lambda: self.full
        grey, lab = self._inputs()
        cfg, names, trees = self._settings(grey)
        key = (array_digest(lab.numpy()), trees, cfg)
        if self.full is not None and self._full_key == key:
            return lambda: self.full

        def fit() -> Any:
            model = self._session(grey, cfg).full_model(lab, class_names=names,
                                                        n_trees=trees)
            self.full, self._full_key = model, key
            return model

        return fit

    def _show_view(self, grey: Volume, view: tuple[slice, ...], pred: Any) -> None:
        self.view, self.view_uncertainty = view, pred.uncertainty
        origin = tuple(o + s.start * d for o, s, d in zip(grey.origin, view, grey.spacing,
                                                             strict=True))
        like = Volume(pred.labels, spacing=grey.spacing, origin=origin)
        cmap = dict(zip(self.model.class_names, self.model.class_values, strict=True))
        if not self._refresh(PREDICTION, pred.labels, like, cmap):
            show_layer(self.viewer, PREDICTION, pred.labels, like=like, class_map=cmap,
                       opacity=0.5)
        if not self._refresh(UNCERTAINTY, pred.uncertainty, like, None):
            show_layer(self.viewer, UNCERTAINTY, pred.uncertainty, like=like, kind="image",
                       colormap="magma", opacity=0.6, contrast_limits=(0.0, 1.0),
                       visible=False)

    def _refresh(self, name: str, data: np.ndarray, like: Volume,
                 class_map: dict[str, int] | None) -> bool:
        """A retrain's view put into the layer already shown (a new layer costs seconds of
        GUI time on a 512² view; the user's display settings stay); False when there is
        none or its classes differ."""
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if layer is None or (class_map is not None and class_map != (
                layer.metadata.get("electrode_ct") or {}).get("class_map")):
            return False
        layer.scale, layer.translate = like.spacing, like.origin
        layer.data = data
        return True

    def label_next(self, *_: Any) -> Any:
        """Points at the view's most uncertain windows (highest first)."""
        from electrode_ct.segment.scribbles import uncertain_regions

        if self.view_uncertainty is None or self.view is None:
            self.jobs.fail("where to label next: train the forest first")
            return None
        grey = self.image.volume("image")
        regions = uncertain_regions(self.view_uncertainty, n=5, size=32)
        start = np.array([s.start for s in self.view], float)
        pts = np.array([[r["z"], r["y"], r["x"]] for r in regions], float).reshape(-1, 3)
        world = (pts + start) * np.asarray(grey.spacing) + np.asarray(grey.origin)
        if NEXT in self.viewer.layers:
            self.viewer.layers.remove(NEXT)
        return self.viewer.add_points(
            world, name=NEXT, size=8 * max(grey.spacing), face_color="yellow",
            features={"mean_uncertainty": [r["mean_uncertainty"] for r in regions]})

    def save_model(self, *_: Any) -> Any:
        """Fit the full model if needed and write its archive (the file
        ``ect segment predict --model`` reads), in a worker."""
        path = Path(self.model_path.value)
        if not path.name or path.is_dir():
            self.jobs.fail("model file: choose a file name (e.g. forest.ectmodel)")
            return None
        try:
            model = self._full_model()
        except Exception as exc:
            self.jobs.fail(exc)
            return None

        def job(progress: Progress) -> Path:
            steps = iter(progress(range(1)))
            next(steps)
            out = model().save(path)
            list(steps)
            return out

        return self.jobs.start(job, lambda out: notify(f"wrote {out}"), title="save model")

    def load_model(self, *_: Any) -> Any:
        """Load a forest model archive (another kind of model is refused)."""
        from electrode_ct.segment.models import load_model

        try:
            self.model = load_model(Path(self.model_path.value), kind="forest")
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        self.full, self._full_key = self.model, "loaded"
        return self.model

    def apply(self, *_: Any) -> Any:
        """Segment the whole volume with the full model in a worker: in memory block by
        block, or on the out-of-core engine above its threshold (a lazy OME-Zarr layer)."""
        if self.model is None and self.full is None:
            self.jobs.fail("apply: train or load a forest first")
            return None
        try:
            model, grey = self._full_model(), self.image.volume("image")
            engine, out = self.engine.use_engine(grey), self.engine.out_path(VOLUME)
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        cfg = self.engine.config()

        def job(progress: Progress) -> tuple[Any, Any]:
            m = model()
            if not engine:
                return m, m.predict(grey, progress=progress).labels
            return m, predict_on_engine(m, grey, out, cfg, progress)

        def done(result: tuple[Any, Any]) -> None:
            m, labels = result
            cmap = dict(zip(m.class_names, m.class_values, strict=True))
            show_layer(self.viewer, VOLUME, labels, like=grey, class_map=cmap,
                       recipe={"step": "segment", "params": {"method": "forest"},
                               "model": m, "grey": grey.source,
                               "voxel_size": list(grey.spacing)})

        return self.jobs.start(job, done, title="predict volume")

