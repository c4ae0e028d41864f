"""Widget 3, a CNN from labelled slices, compared with a forest on a validation slice.

Pick the z slices of a dense labels layer to train on (0 = unlabelled, 1..K classes) and
a validation slice. *Train CNN* runs :func:`electrode_ct.segment.cnn.train.train`
(per-slice network, ``slices_2d``) in a worker thread, with progress and Cancel per epoch;
*Predict* segments the volume slice by slice (``two_d``) into a labels layer; *Save model*
writes the archive ``ect segment predict`` reads. *Compare* scores the CNN and a forest
model file on the validation slice with :func:`electrode_ct.metrics.compare.compare`
(mean IoU), the comparison of docs/cnn.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import Container, FileEdit, Label, LineEdit, PushButton, SpinBox

from electrode_ct.napari._common import LayerPicker, show_layer
from electrode_ct.napari._engine import EngineControls, predict_on_engine
from electrode_ct.napari._jobs import JobPanel, Progress, notify
from electrode_ct.volume import Volume

PREDICTION = "cnn prediction"


class CNNWidget(Container):
    """Train a segmentation CNN on picked slices (see the module docstring)."""

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.image = LayerPicker(napari_viewer, "image", label="image")
        self.dense = LayerPicker(napari_viewer, "labels", label="labelled slices")
        self.slices = LineEdit(label="train on z", value="")
        self.val = SpinBox(label="validation z (-1 none)", value=-1, min=-1, max=100_000)
        self.epochs = SpinBox(label="epochs", value=20, min=1, max=1000)
        self.train_button = PushButton(text="Train CNN")
        self.predict_button = PushButton(text="Predict volume")
        self.model_path = FileEdit(label="CNN model file", mode="w", filter="*.ectmodel")
        self.save_button = PushButton(text="Save model")
        self.forest_path = FileEdit(label="forest model", mode="r", filter="*.ectmodel")
        self.engine = EngineControls("cnn")
        self.compare_button = PushButton(text="Compare on validation slice")
        self.scores = Label(value="")
        self.jobs = JobPanel()
        super().__init__(widgets=[
            self.image, self.dense, self.slices, self.val, self.epochs, self.train_button,
            *self.engine.widgets, self.predict_button, self.model_path, self.save_button,
            self.forest_path, self.compare_button, self.scores, self.jobs])
        self.model: Any = None
        self.config: dict[str, Any] = {}
        """Other :class:`TrainConfig` options (e.g. a smaller network); the defaults else."""
        self.train_button.changed.connect(self.train)
        self.predict_button.changed.connect(self.predict)
        self.save_button.changed.connect(self.save_model)
        self.compare_button.changed.connect(self.compare)
        self.image.reset_choices()
        self.dense.reset_choices()

    def _training(self) -> tuple[Volume, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """Grey, labels kept on the picked slices only, and the validation slice."""
        from electrode_ct.cli._argv import parse_ints
        from electrode_ct.errors import InputError

        grey = self.image.volume("image")
        lab = np.asarray(self.dense.volume("labelled slices").data)
        zs = parse_ints(self.slices.value, name="train on z") or sorted(
            set(np.nonzero(lab)[0].tolist()))
        if not zs or max(zs) >= grey.shape[0] or min(zs) < 0:
            raise InputError(f"train on z: expected slices in 0..{grey.shape[0] - 1} "
                             f"holding labels, got {zs}")
        keep = np.zeros(lab.shape[0], bool)
        keep[zs] = True
        v = int(self.val.value)
        val = (grey.numpy()[v], lab[v]) if 0 <= v < grey.shape[0] else None
        return grey, np.where(keep[:, None, None], lab, 0), val

    def train(self, *_: Any) -> Any:
        """Train in a worker; progress and Cancel per epoch (needs the ``dl`` extra)."""
        try:
            from electrode_ct.segment.cnn.config import TrainConfig
            from electrode_ct.segment.cnn.train import train

            grey, lab, val = self._training()
            names = _class_names(self.dense.volume("labelled slices").class_map, lab)
            cfg = TrainConfig(**{**self.config, "epochs": int(self.epochs.value)})
        except Exception as exc:
            self.jobs.fail(exc)
            return None

        def job(progress: Progress) -> Any:
            total = cfg.epochs * cfg.members
            done = iter(range(1, total + 1))
            return train(grey.numpy(), lab, config=cfg, val=val, slices_2d=True,
                         class_names=names,
                         callback=lambda rec: self.jobs.tick(next(done), total))

        def done(res: Any) -> None:
            self.model = res.model
            notify(f"CNN trained: {len(res.history)} epochs in {res.wall_s:.1f} s")

        return self.jobs.start(job, done, title="train CNN")

    def predict(self, *_: Any) -> Any:
        """Segment the volume slice by slice with the trained network."""
        if self.model is None:
            self.jobs.fail("predict: train a CNN first")
            return None
        try:
            model, grey = self.model, self.image.volume("image")
            engine, out = self.engine.use_engine(grey), self.engine.out_path(PREDICTION)
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        cfg = self.engine.config()

        def job(progress: Progress) -> Any:
            if engine:
                return predict_on_engine(model, grey, out, cfg, progress, two_d=True)
            return model.predict(grey, two_d=True, progress=progress).labels

        def done(labels: Any) -> None:
            cmap = dict(zip(model.class_names, model.class_values, strict=True))
            show_layer(self.viewer, PREDICTION, labels, like=grey, class_map=cmap)

        return self.jobs.start(job, done, title="predict CNN")

    def save_model(self, *_: Any) -> Path | None:
        """Write the CNN model archive (the file ``ect segment predict`` reads)."""
        path = Path(self.model_path.value)
        if self.model is None or not path.name or path.is_dir():
            self.jobs.fail("save model: train a CNN and choose a file name first")
            return None
        return self.model.save(path)

    def compare(self, *_: Any) -> dict[str, float] | None:
        """Mean IoU of the CNN and of the forest model file on the validation slice."""
        from electrode_ct.metrics.compare import compare
        from electrode_ct.segment.models import load_model

        try:
            grey, _, val = self._training()
            if val is None or self.model is None:
                raise ValueError("compare: train a CNN with a validation slice first")
            forest = load_model(Path(self.forest_path.value), kind="forest")
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        v = int(self.val.value)
        cnn = self.model.predict(grey.with_data(val[0][None]), two_d=True).labels[0]
        view = (slice(v, v + 1), slice(0, grey.shape[1]), slice(0, grey.shape[2]))
        scores = {name: float(compare(pred, val[1], ignore=0)["mean_iou"]) for name, pred in
                  (("cnn", cnn), ("forest", forest.predict_region(grey, view).labels[0]))}
        self.scores.value = ", ".join(f"{k} mean IoU {v:.3f}" for k, v in scores.items())
        return scores


def _class_names(class_map: dict[str, int] | None, labels: np.ndarray) -> list[str] | None:
    """Names of the labelled classes from the labels layer's class map, in value order
    (``None``: the map is absent or does not name every labelled value: ``class1``...)."""
    if not class_map:
        return None
    by_value = {int(v): str(k) for k, v in class_map.items()}
    values = [int(v) for v in np.unique(labels) if v]
    return [by_value[v] for v in values] if all(v in by_value for v in values) else None
