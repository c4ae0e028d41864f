"""CLI command ``ect view``: open napari with the electrode-ct widgets (the ``napari`` extra)."""

from __future__ import annotations

import typer

from electrode_ct.cli.app import app


@app.command("view")
def view_cmd(
    paths: list[str] = typer.Argument(
        None, help="Volumes, label volumes (class maps become label names) and particle "
        "tables (.parquet/.csv, after their labels) to load."),
) -> None:
    """Open napari with the electrode-ct widgets docked and the given files loaded."""
    from electrode_ct.napari import require_napari

    require_napari()
    from electrode_ct.napari._view import check_paths, open_viewer

    files = list(paths or [])
    check_paths(files)
    import napari

    open_viewer(files)
    napari.run()
