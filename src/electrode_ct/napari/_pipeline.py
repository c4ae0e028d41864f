"""Widget 8, the pipeline: run a YAML config and open its outputs; export the viewer's work.

*Run config* loads the file with :func:`electrode_ct.pipeline.load_config`, runs
:func:`electrode_ct.pipeline.run_pipeline` in a worker thread and opens the volumes it
wrote. *Export* turns what was done in the viewer into a configuration that replays
headless with ``ect run``: every result layer made by a widget carries its recipe (the
pipeline step and options, the input file) in its metadata; :func:`viewer_config` reads
them, and a forest trained in the viewer is saved beside the configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import Container, FileEdit, LineEdit, PushButton

from electrode_ct.errors import InputError
from electrode_ct.napari._common import RECIPE
from electrode_ct.napari._jobs import JobPanel, Progress, notify

_OFF = {"enabled": False}


def _recipes(layers: Any, step: str) -> list[tuple[Any, dict[str, Any]]]:
    return [(ly, ly.metadata[RECIPE]) for ly in layers
            if (ly.metadata.get(RECIPE) or {}).get("step") == step]


def _file(source: str, what: str) -> str:
    if not source or source == "<array>" or not Path(source.split("::")[0]).exists():
        raise InputError(f"export: the {what} layer was not read from a file; open it from "
                         "a file (ect view PATH) so that the configuration can name it")
    return str(Path(source).resolve()) if "::" not in source else source


def viewer_config(layers: Any, *, output: str, folder: Path) -> dict[str, Any]:
    """The pipeline configuration (a dict) that replays the result layers' recipes.

    Parameters
    ----------
    layers : napari LayerList
        The viewer's layers.
    output : str
        The run's output folder (``output`` of the configuration).
    folder : pathlib.Path
        Where the configuration goes; a forest trained in the viewer is saved there.

    Raises
    ------
    InputError
        No result layer made by a widget, or inputs that are not files.
    """
    parts = _recipes(layers, "particles")
    segs = _recipes(layers, "segment")
    if parts:
        source = parts[-1][1].get("phases_layer")
        chosen = [r for ly, r in segs if ly.name == source] or []
        seg = chosen[-1] if chosen else None
    else:
        seg = segs[-1][1] if segs else None
    if seg is None and not parts:
        raise InputError("export: nothing to export; segment or separate particles first")
    steps: dict[str, Any] = {"filter": _OFF, "metrics": _OFF, "stats": _OFF, "report": _OFF,
                             "track": _OFF, "cracks": _OFF}
    if seg is not None:
        inputs = {"grey": [_file(seg["grey"], "grey")], "voxel_size": seg["voxel_size"]}
        params = dict(seg["params"])
        if "model" in seg:
            params["model"] = str(seg["model"].save(folder / "forest.ectmodel").resolve())
        steps["segment"] = params
    else:
        inputs = {"phases": [_file(parts[-1][1]["phases"], "phases")]}
        steps["segment"] = _OFF
    if parts:
        steps["particles"] = {k: v for k, v in parts[-1][1]["params"].items() if v is not None}
        steps["measure"] = {"radial": False} if seg is not None else _OFF
    else:
        steps["particles"], steps["measure"] = _OFF, _OFF
    return {"input": inputs, "output": output, "steps": steps}


class PipelineWidget(Container):
    """Run a pipeline configuration; export the viewer's work as one."""

    def __init__(self, napari_viewer: Any) -> None:
        self.viewer = napari_viewer
        self.config = FileEdit(label="config", mode="r", filter="*.yaml *.yml")
        self.run_button = PushButton(text="Run config")
        self.export_path = FileEdit(label="export to", mode="w", filter="*.yaml")
        self.output = LineEdit(label="run output", value="ect-out")
        self.export_button = PushButton(text="Export viewer as config")
        self.jobs = JobPanel()
        super().__init__(widgets=[self.config, self.run_button, self.export_path, self.output,
                                  self.export_button, self.jobs])
        self.result: dict[str, Any] | None = None
        self.run_button.changed.connect(self.run)
        self.export_button.changed.connect(self.export)

    def run(self, *_: Any) -> Any:
        """Run the chosen configuration in a worker; open its volumes when done."""
        from electrode_ct.pipeline import load_config, run_pipeline

        try:
            cfg = load_config(Path(self.config.value))
        except Exception as exc:
            self.jobs.fail(exc)
            return None

        def job(progress: Progress) -> dict[str, Any]:
            for _ in progress(range(1)):
                result = run_pipeline(cfg, quiet=True)
            return result

        def done(result: dict[str, Any]) -> None:
            self.result = result
            self.open_outputs(Path(result["output"]))
            notify(f"pipeline ran {', '.join(result.get('ran', [])) or 'nothing (resumed)'}")

        return self.jobs.start(job, done, title="ect run")

    def open_outputs(self, out: Path) -> list[Any]:
        """Add the volumes of a run folder (``volumes/*``) as layers."""
        from electrode_ct.io import find_format
        from electrode_ct.napari._layers import volume_layer
        from electrode_ct.napari._reader import pyramid

        layers = []
        for path in sorted((out / "volumes").glob("*")):
            try:
                find_format(path)
            except InputError:
                continue
            data, kwargs, kind = volume_layer(pyramid(path))
            if kwargs["name"] in self.viewer.layers:
                self.viewer.layers.remove(kwargs["name"])
            layers.append(getattr(self.viewer, f"add_{kind}")(data, **kwargs))
        return layers

    def export(self, *_: Any) -> Path | None:
        """Write the viewer's work as a configuration ``ect run`` replays."""
        import yaml

        from electrode_ct.io import atomic_path
        from electrode_ct.pipeline import parse_config

        path = Path(self.export_path.value)
        try:
            if not path.name or path.is_dir():
                raise InputError("export to: choose a file name (e.g. viewer.yaml)")
            data = viewer_config(self.viewer.layers, output=self.output.value,
                                 folder=path.parent)
            parse_config(data, source=str(path))
        except Exception as exc:
            self.jobs.fail(exc)
            return None
        with atomic_path(path) as tmp:
            tmp.write_text(yaml.safe_dump(data, sort_keys=False))
        notify(f"wrote {path}; replay with: ect run {path}")
        return path
