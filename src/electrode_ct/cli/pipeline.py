"""``ect run CONFIG.yaml`` and ``ect config init``."""

from __future__ import annotations

from pathlib import Path

import typer

from electrode_ct.cli import _compute as co
from electrode_ct.cli._argv import quiet
from electrode_ct.cli._common import JSON_HELP, emit_json, say
from electrode_ct.cli.app import app, config_app


@app.command("run")
def run_cmd(
    config: Path = typer.Argument(..., help="Pipeline configuration (YAML)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    scheduler: str = co.SCHEDULER, n_workers: int = co.N_WORKERS,
    threads_per_worker: int = co.THREADS, memory_limit: str = co.MEMORY,
    block_shape: str = co.BLOCKS,
) -> None:
    """Run the pipeline described by a YAML config (resumable; see docs/pipeline.md).

    The compute options override the config's ``compute:`` section; giving any of them
    runs the steps that can on the block engine whatever the volume size
    (docs/scale.md)."""
    from electrode_ct.pipeline import load_config, run_pipeline

    cfg = load_config(config)
    compute, explicit = co.compute_config(scheduler, n_workers, threads_per_worker,
                                          memory_limit, block_shape, base=cfg.compute)
    if explicit:
        compute = compute.model_copy(update={"in_memory_below_mb": 0.0})
    cfg = cfg.model_copy(update={"compute": compute})
    result = run_pipeline(cfg, quiet=quiet() or as_json)
    if as_json:
        emit_json(result)
    else:
        say(f"report: {result.get('report', '(report step disabled)')}")


@config_app.command("init")
def config_init_cmd(
    out: Path = typer.Argument(Path("ect.yaml"), help="Where to write the template."),
    preset: str = typer.Option("micro", "--preset", help="nano | micro | operando"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented configuration template."""
    from electrode_ct.errors import InputError
    from electrode_ct.io._atomic import atomic_path
    from electrode_ct.pipeline.config import template

    text = template(preset)
    if out.exists() and not force:
        raise InputError(f"{out}: exists; use --force to overwrite")
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    say(f"wrote {out} ({preset} preset)")
