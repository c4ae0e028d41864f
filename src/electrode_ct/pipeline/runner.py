"""The resumable step runner behind ``ect run``.

Each step has a key: the SHA-256 of its parameters, the keys of the steps it depends on,
the input file hashes and the seed. A step whose key matches the one recorded in
``provenance.json`` and whose outputs all exist is skipped; a changed parameter changes
that step's key and therefore the keys of every step after it. Outputs are written to
temporary names and renamed, and ``provenance.json`` is rewritten after every step, so an
interrupted run (Ctrl-C or SIGKILL) leaves no corrupt output and resumes at the
interrupted step; temporaries left by a killed process are removed when the next run starts.

One run at a time writes an output folder: the run holds ``.ect-run.lock`` (the owner's
pid) and a second run into the folder is refused with one line while the owner lives; a
lock left by a dead process is taken over. An input that changed since the last run is
reported and the steps depending on it rerun (their keys hold the input hashes); an input
that changes during a run stops the run before the step using it is recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from electrode_ct.errors import InputError, OutputError
from electrode_ct.io._atomic import is_disk_error, output_error, remove_temporaries
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

LOCK_NAME = ".ect-run.lock"


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux ``/proc``; else kill 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


class RunLock:
    """The lock of an output folder: ``.ect-run.lock`` holding the owner's pid.

    The lock file is created complete (written under a private name, then hard-linked to
    the lock name, which fails when it exists), so a reader never sees a half-written pid.

    Parameters
    ----------
    folder : pathlib.Path
        The output folder.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self.taken_from: int | None = None

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`OutputError` while another live run holds it."""
        mine = self.path.with_name(f"{LOCK_NAME}.{os.getpid()}")
        try:
            mine.write_text(f"{os.getpid()}\n")
            for _ in range(3):
                try:
                    os.link(mine, self.path)
                    return
                except FileExistsError:
                    owner = self._owner()
                    if owner is not None and _pid_alive(owner):
                        raise OutputError(
                            f"{self.path.parent}: another 'ect run' (pid {owner}) is writing "
                            "this output folder; wait for it to finish or choose another output"
                        ) from None
                    self.taken_from = owner  # stale: its owner is dead
                    self.path.unlink(missing_ok=True)
            raise OutputError(f"{self.path}: cannot take the run lock (contended)")
        except OSError as exc:
            raise output_error(self.path.parent, exc) from exc
        finally:
            mine.unlink(missing_ok=True)

    def clear_leftovers(self) -> None:
        """Remove private lock names (``.ect-run.lock.PID``) of killed processes."""
        for f in self.path.parent.glob(f"{LOCK_NAME}.*"):
            pid = f.name.rsplit(".", 1)[1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                f.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock file when this process owns it."""
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)


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
        missing = [p for p in (self.out, *self.out.parents) if not p.exists()]
        self.created = missing[-1] if missing else None  # the first folder this run makes
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error(self.out, exc) from exc
        self.lock = RunLock(self.out)
        self.lock.acquire()
        try:
            self._open(quiet)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, quiet: bool) -> None:
        """State of the run once the folder is locked (leftovers cleared, inputs hashed)."""
        self.quiet = quiet
        removed = remove_temporaries(self.out)
        self.lock.clear_leftovers()
        self.manifest_path = self.out / "provenance.json"
        self.manifest = self._load_manifest()
        self.results: dict[str, StepResult] = {}
        self.keys: dict[str, str] = {}
        self.cache: dict[str, Any] = {}
        try:
            self.log = self._logger()
        except OSError as exc:
            raise output_error(self.out / "run.log", exc) from exc
        if self.lock.taken_from is not None:
            self.log.info("took over the lock of a dead run (pid %s)", self.lock.taken_from)
        if removed:
            self.log.info("removed %d partial file(s) of an interrupted run", len(removed))
        self.input_stats: dict[str, tuple[int, int] | None] = {}
        self.input_hashes = self._hash_inputs()
        self._report_changed_inputs()
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

    def close(self, *, failed: bool = False) -> None:
        """Release the log file handlers and the folder lock.

        Parameters
        ----------
        failed : bool
            The run stopped on an error: an output folder this run created and in which
            no step completed is removed (bad input leaves nothing behind).
        """
        from electrode_ct.pipeline.compute import close_engine

        close_engine(self)
        for h in list(self.log.handlers):
            h.close()
            self.log.removeHandler(h)
        if failed and self.created is not None and not self.manifest["steps"]:
            shutil.rmtree(self.created, ignore_errors=True)
            return
        self.lock.release()

    def _hash_inputs(self) -> dict[str, str]:
        inp = self.cfg.input
        paths = list(inp.grey) + list(inp.phases or [])
        extra = [inp.reference, self.cfg.steps.segment.scribbles, self.cfg.steps.segment.model,
                 self.cfg.steps.cracks.model, inp.reference_particles,
                 self.cfg.steps.particles.model]
        paths += [p for p in extra if p] + list(self.cfg.steps.segment.add)
        paths += [p for v in self.cfg.steps.variability.segmentations.values() for p in v]
        out = {}
        for p in paths:
            self.input_stats[p] = _stat(p)
            try:
                out[p] = file_hash(p)
            except OSError:
                out[p] = "missing"
        return out

    def _report_changed_inputs(self) -> None:
        old = self.manifest.get("inputs") or {}
        for p, h in self.input_hashes.items():
            before = (old.get(p) or {}).get("sha256")
            if before and before != h:
                self.log.info("input %s changed since the last run (sha256 %s -> %s): the "
                              "steps that depend on it rerun", p, before[:12], h[:12])

    def check_inputs(self) -> None:
        """Raise :class:`InputError` when an input changed since the run hashed it."""
        for p, st in self.input_stats.items():
            if _stat(p) == st:
                continue
            try:
                now = file_hash(p)
            except OSError:
                now = "missing"
            if now != self.input_hashes[p]:
                raise InputError(
                    f"{p}: input changed during the run (sha256 {self.input_hashes[p][:12]} -> "
                    f"{now[:12]}); run again: the steps that used it will rerun")

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
        try:
            res = fn(self)
        except OSError as exc:  # a disk failure outside atomic writes (e.g. a report image)
            if is_disk_error(exc):
                raise output_error(exc.filename or self.out, exc) from exc
            raise
        dt = time.perf_counter() - t0
        self.check_inputs()
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


def _stat(path: str) -> tuple[int, int] | None:
    """(size, modification time in ns) of a file, None when it is missing."""
    try:
        st = Path(path.split("::", 1)[0]).stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)
