"""Widget 5, the particle table bound to a particle labels layer.

*Measure* runs :func:`electrode_ct.measure.table.particle_table` (morphology, and grey
columns when a grey layer is chosen) in a worker thread. Clicking a row selects that
particle in the labels layer and centres the view on it; picking a particle in the
viewer (its ``selected_label``) selects its row. *Colour by* paints any column back into
image space (:func:`electrode_ct.report.great2_plots.paint_property`), the view GRAPES
users know; *filter* keeps the rows of a pandas query (``volume_um3 > 20``); *Export*
writes the shown rows with :func:`electrode_ct.io.write_table` (Parquet, or CSV by name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, PushButton, Table

from electrode_ct.napari._common import LayerPicker, camera, show_property
from electrode_ct.napari._jobs import JobPanel, Progress, notify
from electrode_ct.volume import Volume

CENTROID_UM = ("centroid_z_um", "centroid_y_um", "centroid_x_um")


class TableWidget(Container):
    """Measure particles and browse the table (see the module docstring)."""

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.particles = LayerPicker(napari_viewer, "labels", label="particles")
        self.grey = LayerPicker(napari_viewer, "image", label="grey (optional)")
        self.measure_button = PushButton(text="Measure")
        self.colour_by = ComboBox(label="colour by", choices=self._columns, nullable=True)
        self.query = LineEdit(label="filter", value="")
        self.out = FileEdit(label="export to", mode="w", filter="*.parquet *.csv")
        self.export_button = PushButton(text="Export rows")
        self.table = Table(value=None)
        self.jobs = JobPanel()
        super().__init__(widgets=[self.particles, self.grey, self.measure_button, self.colour_by,
                                  self.query, self.table, self.out, self.export_button,
                                  self.jobs])
        self.data: pd.DataFrame | None = None
        self.shown: pd.DataFrame | None = None
        self._bound: Any = None
        self.measure_button.changed.connect(self.measure)
        self.colour_by.changed.connect(self.paint)
        self.query.changed.connect(self.apply_filter)
        self.export_button.changed.connect(self.export)
        self.table.native.itemSelectionChanged.connect(self._row_selected)
        self.particles.reset_choices()
        self.grey.value = None

    def measure(self, *_: Any) -> Any:
        """Measure the particles (and grey levels) of the chosen layers in a worker."""
        from electrode_ct.measure.table import particle_table

        try:
            lab = self.particles.volume("particles")
            grey = self.grey.volume("grey") if self.grey.value else None
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        layer = self.particles.layer

        def job(progress: Progress) -> pd.DataFrame:
            for _ in progress(range(1)):
                table, _ = particle_table(
                    np.asarray(lab.data), None if grey is None else grey.numpy(),
                    spacing=lab.spacing, background_sigma=None)
            return table

        def done(table: pd.DataFrame) -> None:
            self.set_table(table, layer)

        return self.jobs.start(job, done, title="measure")

    def set_table(self, table: pd.DataFrame, layer: Any) -> None:
        """Show ``table`` bound to the labels layer ``layer`` (status bar shows its row)."""
        self.data = table.reset_index(drop=True)
        self._bind(layer)
        layer.features = self.data.assign(index=self.data["label"].to_numpy())
        self.colour_by.reset_choices()
        self.apply_filter()

    def _columns(self, *_: Any) -> list[str]:
        """Numeric columns of the table (the ones that can colour the particles)."""
        data = getattr(self, "data", None)
        if data is None:
            return []
        return [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c])]

    def _bind(self, layer: Any) -> None:
        if self._bound is not None:
            self._bound.events.selected_label.disconnect(self._label_selected)
        self._bound = layer
        layer.events.selected_label.connect(self._label_selected)

    def apply_filter(self, *_: Any) -> pd.DataFrame | None:
        """Show the rows matching the filter expression (all rows when empty)."""
        if self.data is None:
            return None
        text = self.query.value.strip()
        try:
            self.shown = self.data.query(text) if text else self.data
        except Exception as exc:  # pandas raises many kinds for a half-typed expression
            self.jobs.fail(f"filter: {text!r} is not a valid expression on the table columns "
                           f"({type(exc).__name__})")
            return None
        self.table.value = self.shown
        self.paint()
        return self.shown

    def _row_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.native.selectedIndexes()})
        if rows and self.shown is not None:
            self.select(int(self.shown["label"].iloc[rows[0]]))

    def select(self, label: int) -> None:
        """Select particle ``label`` in the labels layer and centre the view on it."""
        layer = self._bound
        if layer is None or self.data is None:
            return
        row = self.data.loc[self.data["label"] == label]
        layer.selected_label = int(label)
        layer.show_selected_label = True
        if len(row) and all(c in row for c in CENTROID_UM):
            world = row[list(CENTROID_UM)].to_numpy(float)[0] + np.asarray(layer.translate)
            self.viewer.dims.set_point(0, float(world[0]))
            camera(self.viewer).center = tuple(world[1:])

    def _label_selected(self, *_: Any) -> None:
        if self.shown is None or self._bound is None:
            return
        hits = np.flatnonzero(self.shown["label"].to_numpy() == self._bound.selected_label)
        native = self.table.native
        if hits.size and hits[0] not in {i.row() for i in native.selectedIndexes()}:
            native.blockSignals(True)
            native.selectRow(int(hits[0]))
            native.blockSignals(False)

    def paint(self, *_: Any) -> Any:
        """The chosen column painted into the particles (rows outside the filter blank)."""
        column = self.colour_by.value
        if column is None or self.shown is None or self._bound is None:
            return None
        layer = self._bound
        like = Volume(np.zeros((1, 1, 1)), spacing=tuple(layer.scale)[-3:],
                      origin=tuple(layer.translate)[-3:])
        return show_property(self.viewer, f"particles by {column}", np.asarray(layer.data),
                             self.shown, column, like=like)

    def export(self, *_: Any) -> Path | None:
        """Write the shown rows (``.csv``: CSV; otherwise Parquet)."""
        from electrode_ct.io import write_table

        path = Path(self.out.value)
        if self.shown is None or not path.name or path.is_dir():
            self.jobs.fail("export: measure first and choose a file name")
            return None
        out = write_table(self.shown, path)
        notify(f"wrote {len(self.shown)} rows to {out}")
        return out
