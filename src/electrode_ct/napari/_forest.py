"""Widget 2, the ilastik loop: scribble, train the forest, look, paint more, retrain.

Scribbles are an in-memory labels layer over the image (0 = unlabelled, 1..K = the named
classes). *Train* runs :func:`electrode_ct.segment.forest_train.train_forest` and predicts
the visible part of the current slice with
:meth:`~electrode_ct.segment.forest.ForestModel.predict_region` (equal to the whole-volume
prediction there): a ``prediction`` and an ``uncertainty`` layer. *Where to label next*
marks :func:`electrode_ct.segment.scribbles.uncertain_regions` of that view as points.
*Save model* writes the archive ``ect segment predict`` and the pipeline load; *Apply to
volume* runs :meth:`~electrode_ct.segment.forest.ForestModel.predict` block by block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, PushButton, SpinBox

from electrode_ct.napari._common import LayerPicker, show_layer, visible_region
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
        self.trees = SpinBox(label="trees", value=32, min=1, max=500)
        self.train_button = PushButton(text="Train + predict view")
        self.next_button = PushButton(text="Where to label next")
        self.model_path = FileEdit(label="model file", mode="w", filter="*.ectmodel")
        self.save_button = PushButton(text="Save model")
        self.load_button = PushButton(text="Load model")
        self.apply_button = PushButton(text="Apply to volume")
        self.jobs = JobPanel()
        super().__init__(widgets=[
            self.image, self.scribbles, self.class_names, self.new_button, self.features,
            self.mode, self.trees, self.train_button, self.next_button, self.model_path,
            self.save_button, self.load_button, self.apply_button, self.jobs])
        self.model: Any = None
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

    def train(self, *_: Any) -> Any:
        """Train on the scribbles in a worker; predict the visible view when done."""
        from electrode_ct.segment.features import parse_features
        from electrode_ct.segment.forest_train import train_forest

        try:
            grey, lab = self._inputs()
            view = visible_region(self.viewer, self.image.layer, grey)
            mode = "2d" if grey.shape[0] == 1 else self.mode.value
            cfg = parse_features(self.features.value, mode=mode)
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        names, trees = list(self.class_map()), int(self.trees.value)
        # 2-D features: one-slice blocks, so only the slices holding scribbles are filtered
        blocks = (1, *grey.shape[1:]) if mode == "2d" else None

        def job(progress: Progress) -> tuple[Any, Any]:
            steps = iter(progress(range(2)))
            next(steps)
            model = train_forest(grey, lab, features=cfg, class_names=names, n_trees=trees,
                                 block_shape=blocks)
            next(steps)
            pred = model.predict_region(grey, view)
            list(steps)
            return model, pred

        def done(result: tuple[Any, Any]) -> None:
            self.model, pred = result
            self._show_view(grey, view, pred)
            notify(f"forest trained: out-of-bag accuracy "
                   f"{100 * self.model.report['oob_accuracy']:.1f} %")

        return self.jobs.start(job, done, title="train forest")

    def _show_view(self, grey: Volume, view: tuple[slice, ...], pred: Any) -> None:
        self.view, self.view_uncertainty = view, pred.uncertainty
        origin = tuple(o + s.start * d for o, s, d in zip(grey.origin, view, grey.spacing,
                                                             strict=True))
        like = Volume(pred.labels, spacing=grey.spacing, origin=origin)
        cmap = dict(zip(self.model.class_names, self.model.class_values, strict=True))
        show_layer(self.viewer, PREDICTION, pred.labels, like=like, class_map=cmap,
                   opacity=0.5)
        show_layer(self.viewer, UNCERTAINTY, pred.uncertainty, like=like, kind="image",
                   colormap="magma", opacity=0.6, contrast_limits=(0.0, 1.0), visible=False)

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

    def save_model(self, *_: Any) -> Path | None:
        """Write the model archive (the file ``ect segment predict --model`` reads)."""
        if self.model is None:
            self.jobs.fail("save model: train or load a forest first")
            return None
        path = Path(self.model_path.value)
        if not path.name or path.is_dir():
            self.jobs.fail("model file: choose a file name (e.g. forest.ectmodel)")
            return None
        out = self.model.save(path)
        notify(f"wrote {out}")
        return out

    def load_model(self, *_: Any) -> Any:
        """Load a forest model archive (another kind of model is refused)."""
        from electrode_ct.segment.models import load_model

        try:
            self.model = load_model(Path(self.model_path.value), kind="forest")
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        return self.model

    def apply(self, *_: Any) -> Any:
        """Predict the whole volume block by block in a worker (progress over blocks)."""
        if self.model is None:
            self.jobs.fail("apply: train or load a forest first")
            return None
        model, grey = self.model, self.image.volume("image")

        def job(progress: Progress) -> Any:
            return model.predict(grey, progress=progress)

        def done(pred: Any) -> None:
            cmap = dict(zip(model.class_names, model.class_values, strict=True))
            show_layer(self.viewer, VOLUME, pred.labels, like=grey, class_map=cmap,
                       recipe={"step": "segment", "params": {"method": "forest"},
                               "model": model, "grey": grey.source,
                               "voxel_size": list(grey.spacing)})

        return self.jobs.start(job, done, title="predict volume")
