"""CLI commands ``ect model convert`` and ``ect segment export`` (model files; no science)."""

from __future__ import annotations

from pathlib import Path

import typer

from electrode_ct.cli._common import JSON_HELP, emit_json, say
from electrode_ct.cli.app import app, segment_app
from electrode_ct.errors import InputError

model_app = typer.Typer(help="Model files: convert old formats.", no_args_is_help=True)
app.add_typer(model_app, name="model")

EXPORT_FORMATS = ("bioimageio",)


@model_app.command("convert")
def convert_cmd(
    old: Path = typer.Argument(..., help="Model file of an earlier release."),
    new: Path = typer.Argument(..., help="Model file to write in the current format."),
    trust: bool = typer.Option(False, "--trust",
                               help="Unpickle the old file's pickled parts: runs any code "
                                    "they contain, so only for files you trust."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Rewrite a model file in the current, pickle-free format."""
    from electrode_ct.cracks import features_model  # noqa: F401 (registers the kind)
    from electrode_ct.segment import forest  # noqa: F401 (registers the kind)
    from electrode_ct.segment.convert import convert_model

    summary = convert_model(old, new, trust=trust)
    if as_json:
        emit_json(summary)
        return
    say(f"wrote {new}: {summary['kind']} model, format {summary['from_format']} -> "
        f"{summary['to_format']}")


@segment_app.command("export")
def export_cmd(
    model: Path = typer.Argument(..., help="CNN model file (made by 'ect segment train-cnn')."),
    out: Path = typer.Argument(..., help="Package to write (.zip)."),
    fmt: str = typer.Option("bioimageio", "--format", help="Package format: bioimageio."),
    sample: str = typer.Option(None, "--sample",
                               help="Grey image whose centre crop becomes the test input "
                                    "(default: a synthetic electrode slice)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Export a CNN segmentation model as a bioimage.io model package."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"--format: expected one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    from electrode_ct.segment.cnn.bioimageio import export_bioimageio
    from electrode_ct.segment.models import load_model

    m = load_model(model, kind="cnn")
    image = None
    if sample is not None:
        from electrode_ct.io import read

        image = read(sample).numpy()
    summary = export_bioimageio(m, out, sample=image)
    if as_json:
        emit_json(summary)
        return
    say(f"wrote {out}: bioimage.io model package ({', '.join(summary['weights'])} weights)")
