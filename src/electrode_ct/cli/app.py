"""The typer application and its command groups; command modules register onto these."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="ect",
    help="electrode-ct: X-ray CT analysis of battery electrodes. "
    "Global option: --quiet (anywhere) silences progress output.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
segment_app = typer.Typer(help="Semantic (phase) segmentation.", no_args_is_help=True)
cracks_app = typer.Typer(help="Per-particle crack/flaw classification.", no_args_is_help=True)
config_app = typer.Typer(help="Pipeline configuration files.", no_args_is_help=True)
app.add_typer(segment_app, name="segment")
app.add_typer(cracks_app, name="cracks")
app.add_typer(config_app, name="config")


def _version_callback(value: bool) -> None:
    if value:
        from electrode_ct import __version__

        typer.echo(f"electrode-ct {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """electrode-ct command line."""
