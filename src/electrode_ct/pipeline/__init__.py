"""One-command pipeline: a validated YAML config in, an output folder with volumes,
tables, ``provenance.json``, ``run.log`` and ``report.html`` out (``ect run``)."""

from __future__ import annotations

from typing import Any

from electrode_ct.pipeline.config import PipelineConfig, load_config, parse_config, template
from electrode_ct.pipeline.runner import Run, StepResult


def run_pipeline(cfg: PipelineConfig, *, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) every enabled step of a configuration.

    Parameters
    ----------
    cfg : PipelineConfig
        Validated configuration (see :func:`load_config`).
    quiet : bool
        Silence progress on stderr (``run.log`` is always written).

    Returns
    -------
    dict
        ``output`` folder, ``report`` path (when written), ``ran`` and ``skipped`` steps and
        the total time in seconds.
    """
    import time

    from electrode_ct.pipeline import steps as st
    from electrode_ct.pipeline.variability import step_variability

    t0 = time.perf_counter()
    run = Run(cfg, quiet=quiet)
    s = cfg.steps
    try:
        plan: list[tuple[str, Any, Any, list[str]]] = [
            ("filter", s.filter, st.step_filter, []),
            ("segment", s.segment, st.step_segment, ["filter"]),
            ("particles", s.particles, st.step_particles, ["segment"]),
            ("track", s.track, st.step_track, ["particles", "segment", "filter"]),
            ("measure", s.measure, st.step_measure, ["particles", "track", "filter"]),
            ("cracks", s.cracks, st.step_cracks, ["measure", "track"]),
            ("metrics", s.metrics, st.step_metrics, ["segment"]),
            ("stats", s.stats, st.step_stats, ["measure"]),
            ("variability", s.variability, step_variability, []),
        ]
        for name, params, fn, deps in plan:
            if not params.enabled:
                continue
            if name == "segment" and cfg.input.phases:
                continue
            if name == "track" and st.n_states(run) < 2:
                continue
            if name == "stats" and not st.has_grey(run):
                continue
            run.step(name, fn, params=params.model_dump(), deps=deps)
        report = None
        if s.report.enabled:
            from electrode_ct.report.build import build_report

            res = run.step("report", lambda r: StepResult(
                {"report": str(build_report(r.out, title=s.report.title).relative_to(r.out))}),
                params=s.report.model_dump(), deps=[n for n in run.keys if n != "report"])
            report = str(run.out / res.outputs["report"])
        run.manifest["total_time_s"] = time.perf_counter() - t0
        run.save_manifest()
    except BaseException:
        run.close(failed=True)
        raise
    run.close()
    return {"output": str(run.out), "report": report, "ran": run.ran,
            "skipped": run.skipped, "time_s": time.perf_counter() - t0}


__all__ = ["PipelineConfig", "Run", "StepResult", "load_config", "parse_config",
           "run_pipeline", "template"]
