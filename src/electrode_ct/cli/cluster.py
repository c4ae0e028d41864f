"""``ect cluster script``: the batch job script a cluster run would submit (no science here)."""

from __future__ import annotations

from pathlib import Path

import typer

from electrode_ct.cli import _compute as co
from electrode_ct.cli.app import app

cluster_app = typer.Typer(help="Dask clusters on batch systems (SLURM, PBS, SGE, LSF).",
                          no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("script")
def script_cmd(
    scheduler: str = typer.Option(
        "slurm", "--scheduler", help="Batch system: slurm | pbs | sge | lsf."),
    n_workers: int = co.N_WORKERS,
    threads_per_worker: int = co.THREADS,
    memory_limit: str = co.MEMORY,
    block_shape: str = co.BLOCKS,
    config: Path = typer.Option(
        None, "--config", help="Pipeline config whose compute: section (jobqueue options "
        "included) is the base; the options above override it."),
    walltime: str = typer.Option(None, "--walltime", help="Job wall time, e.g. 02:00:00."),
    queue: str = typer.Option(None, "--queue", help="Queue / partition."),
    account: str = typer.Option(None, "--account", help="Account / project to charge."),
) -> None:
    """Print the job script of each Dask worker job (dask-jobqueue's own; nothing is
    submitted). Resources not given here or in the config come from Dask's jobqueue
    configuration (~/.config/dask/jobqueue.yaml)."""
    from electrode_ct.compute.cluster import cluster_script

    base = None
    if config is not None:
        from electrode_ct.pipeline import load_config

        base = load_config(config).compute
    cfg, _ = co.compute_config(scheduler, n_workers, threads_per_worker, memory_limit,
                               block_shape, base=base)
    extra = {"walltime": walltime, "queue": queue, "account": account}
    cfg = cfg.model_copy(update={"jobqueue": {**cfg.jobqueue,
                                              **{k: v for k, v in extra.items() if v}}})
    typer.echo(cluster_script(cfg))
