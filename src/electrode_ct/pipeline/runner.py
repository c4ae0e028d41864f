"""The resumable step runner behind ``ect run``.

Each step has a key: the SHA-256 of its parameters, the keys of the steps it depends on,
the input file hashes and the seed. A step whose key matches the one recorded in
``provenance.json`` and whose outputs all exist is skipped; a changed parameter changes
that step's key and therefore the keys of every step after it. Outputs are written to
temporary names and renamed, and ``provenance.json`` is rewritten after every step, so an
interrupted run leaves no corrupt output and resumes at the interrupted step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from electrode_ct.io.tables import clean_json, dumps, write_json
from electrode_ct.pipeline.config import PipelineConfig
from electrode_ct.provenance import file_hash, versions


@dataclass
class StepResult:
    """What a step produced.

    Attributes
    ----------
    outputs : dict
        Name -> path relative to the output folder.
    summary : dict
        JSON-ready figures for the report and provenance.
    """

    outputs: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


StepFn = Callable[["Run"], StepResult]


class Run:
    """State of one pipeline run in an output folder.

    Parameters
    ----------
    cfg : PipelineConfig
        Validated configuration.
    quiet : bool
        Silence progress lines on stderr.
    """

    def __init__(self, cfg: PipelineConfig, *, quiet: bool = False) -> None:
        self.cfg = cfg
        self.out = Path(cfg.output)
        self.out.mkdir(parents=True, exist_ok=True)
        self.quiet = quiet
        self.manifest_path = self.out / "provenance.json"
        self.manifest = self._load_manifest()
        self.results: dict[str, StepResult] = {}
        self.keys: dict[str, str] = {}
        self.cache: dict[str, Any] = {}
        self.resources = ExitStack()  # e.g. the run's Dask client, closed by close()
        self.log = self._logger()
        self.input_hashes = self._hash_inputs()
        self.ran: list[str] = []
        self.skipped: list[str] = []

    # -- bookkeeping -------------------------------------------------------------------
    def _load_manifest(self) -> dict[str, Any]:
        if self.manifest_path.exists():
            try:
                return json.loads(self.manifest_path.read_text())
            except ValueError:
                pass
        return {"steps": {}}

    def _logger(self) -> logging.Logger:
        log = logging.getLogger(f"electrode_ct.run.{id(self)}")
        log.setLevel(logging.INFO)
        log.propagate = False
        fh = logging.FileHandler(self.out / "run.log")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(fh)
        if not self.quiet:
            sh = logging.StreamHandler(sys.stderr)
            sh.setFormatter(logging.Formatter("[ect run] %(message)s"))
            log.addHandler(sh)
        return log

    def close(self) -> None:
        """Release the resources opened for the run (a Dask client) and the log files."""
        self.resources.close()
        for h in list(self.log.handlers):
            h.close()
            self.log.removeHandler(h)

    def _hash_inputs(self) -> dict[str, str]:
        inp = self.cfg.input
        paths = list(inp.grey) + list(inp.phases or [])
        extra = [inp.reference, self.cfg.steps.segment.scribbles, self.cfg.steps.segment.model,
                 self.cfg.steps.cracks.model]
        paths += [p for p in extra if p]
        out = {}
        for p in paths:
            try:
                out[p] = file_hash(p)
            except OSError:
                out[p] = "missing"
        return out

    def path(self, rel: str) -> Path:
        """Absolute path of an output given relative to the output folder."""
        return self.out / rel

    def output(self, step: str, name: str) -> Path:
        """Path of a named output of an earlier step."""
        return self.out / self.results[step].outputs[name]

    def summary(self, step: str) -> dict[str, Any]:
        """The summary of an earlier step (empty when it did not run)."""
        res = self.results.get(step)
        return res.summary if res else {}

    def save_manifest(self) -> None:
        """Rewrite provenance.json atomically."""
        self.manifest.update({
            "config": clean_json(self.cfg.model_dump()),
            "inputs": {p: {"sha256": h} for p, h in self.input_hashes.items()},
            "versions": versions(),
            "seed": self.cfg.seed,
        })
        write_json(self.manifest, self.manifest_path)

    # -- running -----------------------------------------------------------------------
    def key(self, name: str, params: dict[str, Any], deps: list[str]) -> str:
        """The step key from parameters, dependency keys, input hashes and seed."""
        blob = dumps({
            "step": name, "params": params, "deps": {d: self.keys.get(d) for d in deps},
            "inputs": self.input_hashes, "seed": self.cfg.seed,
        }, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def step(self, name: str, fn: StepFn, *, params: dict[str, Any], deps: list[str]) -> StepResult:
        """Run (or skip, when up to date) one step and record it.

        Parameters
        ----------
        name : str
            Step name (key in ``provenance.json``).
        fn : callable
            ``fn(run) -> StepResult``.
        params : dict
            The parameters that determine the outputs.
        deps : list of str
            Earlier steps whose outputs this step reads.
        """
        key = self.key(name, params, [d for d in deps if d in self.keys])
        self.keys[name] = key
        prev = self.manifest["steps"].get(name)
        if prev and prev.get("key") == key and all(
            (self.out / p).exists() for p in prev.get("outputs", {}).values()
        ):
            res = StepResult(outputs=prev["outputs"], summary=prev.get("summary", {}))
            self.results[name] = res
            self.skipped.append(name)
            self.log.info("%s: up to date, skipped", name)
            return res
        self.log.info("%s: running", name)
        t0 = time.perf_counter()
        res = fn(self)
        dt = time.perf_counter() - t0
        self.results[name] = res
        self.ran.append(name)
        self.manifest["steps"][name] = {
            "key": key, "params": clean_json(params), "deps": deps,
            "outputs": res.outputs, "summary": clean_json(res.summary), "time_s": dt,
        }
        self.save_manifest()
        self.log.info("%s: done in %.1f s", name, dt)
        return res

    def forget(self, name: str) -> None:
        """Drop a step from the manifest (its outputs are stale)."""
        self.manifest["steps"].pop(name, None)
