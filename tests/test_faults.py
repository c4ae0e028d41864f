"""Runs survive faults (issue 27): ``ect run`` killed with SIGKILL in every step resumes to
the outputs of an uninterrupted run; two runs into one folder never interleave; a full
disk, a read-only folder and an input changing during a run give one clear error.

The runs are real ``ect run`` processes on a 40³ three-phase phantom (about a second of
work each) and on a two-state 48³ synthetic operando series with cracks and the report (every
step of the pipeline, a few seconds), forked from a server that has imported the package
once (so a run costs its work, not the imports); a timer thread in the run's own process
sends the SIGKILL a random time after the chosen step starts, so the kill point does not
depend on how fast the test process is scheduled.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from electrode_ct.errors import InputError, OutputError
from electrode_ct.pipeline import load_config, run_pipeline
from electrode_ct.pipeline.runner import LOCK_NAME

STEPS = ["filter", "segment", "particles", "measure", "metrics", "stats"]
NOT_COMPARED = {"run.log", "provenance.json"}  # they hold times and the folder name
# an operando run with every step: track (2 states), cracks (the shipped model), report
OPERANDO_STEPS = ["filter", "segment", "particles", "track", "measure", "cracks", "metrics",
                  "stats", "report"]


def _config(folder: Path, grey: Path, output: str = "out", name: str = "cfg") -> Path:
    """A run of every step of a single scan but the report (track, cracks and the report are
    killed in the operando run of :func:`_operando_config`)."""
    cfg = {"input": {"grey": str(grey), "voxel_size": 0.5}, "output": output,
           "steps": {"filter": {"enabled": True, "method": "gaussian", "sigma": 0.7},
                     "segment": {"method": "threshold", "threshold_method": "multiotsu",
                                 "classes": 3},
                     "particles": {"phase": "active"}, "report": {"enabled": False}}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict[str, Path]:
    """The grey input and the reference outputs, made by the first test that asks."""
    return {"root": tmp_path_factory.mktemp("reference")}


@pytest.fixture
def phantom_run(tmp_path, three_phase_phantom, shared):
    """Config of a run into ``tmp_path/out`` and the outputs of an uninterrupted run of the
    same input (one shared input file, so step keys and outputs compare byte for byte)."""
    if "out" not in shared:
        root = shared["root"]
        tifffile.imwrite(root / "grey.tif", three_phase_phantom[1])
        # made the way the runs under test are (an `ect run` process from the same server),
        # not in this test process, whose thread pools earlier tests may have resized
        ref = Ect("--quiet", "run", str(_config(root, root / "grey.tif", "reference")))
        assert ref.wait() == 0, ref.err
        shared["out"] = root / "reference"
    return _config(tmp_path, shared["root"] / "grey.tif"), shared["out"]


_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload([  # what a run imports, so each forked run costs its work only
    "electrode_ct.cli", "electrode_ct.pipeline.steps", "electrode_ct.measure.table",
    "electrode_ct.metrics", "electrode_ct.particles", "electrode_ct.stats", "tifffile",
    "SimpleITK", "cc3d", "edt", "fastremap", "psutil", "pyarrow.parquet", "pydantic", "yaml",
    "scipy.ndimage", "scipy.sparse", "scipy.stats", "scipy.optimize", "scipy.spatial",
    "skimage.filters", "skimage.measure", "skimage.morphology", "skimage.segmentation",
    "skimage.transform", "skimage.draw", "skimage.exposure", "imagecodecs",
    "electrode_ct.operando", "electrode_ct.cracks", "electrode_ct.report.build"])


def _kill_myself(target: str, delay_s: float) -> None:
    """In this process only: SIGKILL it ``delay_s`` seconds after step ``target`` starts (a
    timer thread, so the moment depends on the run's own progress, not on the test's)."""
    import threading

    from electrode_ct.pipeline.runner import Run

    original = Run.step

    def step(self, name, fn, **kw):
        if name == target:
            threading.Timer(delay_s, os.kill, (os.getpid(), signal.SIGKILL)).start()
        return original(self, name, fn, **kw)

    Run.step = step  # type: ignore[method-assign]


def _child(args: list[str], stderr: str, limit: int | None,
           kill_in: tuple[str, float] | None) -> None:
    """Body of a forked ``ect`` process: stderr to a file, optional file-size limit,
    optional SIGKILL inside a step."""
    if kill_in is not None:
        _kill_myself(*kill_in)
    fd = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
    if limit is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from electrode_ct.cli import main

    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stderr.flush()
    os._exit(code)


class Ect:
    """An ``ect`` process (forked from the preloaded server); ``err`` is its stderr."""

    def __init__(self, *args: str, limit: int | None = None,
                 kill_in: tuple[str, float] | None = None) -> None:
        fd, name = tempfile.mkstemp(prefix="ect-err-")
        os.close(fd)
        self.err_path = Path(name)
        self.proc = _CTX.Process(target=_child,
                                 args=(list(args), str(self.err_path), limit, kill_in))
        self.proc.start()
        self.pid = self.proc.pid

    def running(self) -> bool:
        return self.proc.is_alive()

    def wait(self, timeout: float = 300) -> int:
        self.proc.join(timeout)
        return self.proc.exitcode

    @property
    def err(self) -> str:
        """The process's stderr (read once, then the file is removed)."""
        if self.err_path.exists():
            self._err = self.err_path.read_text()
            self.err_path.unlink()
        return getattr(self, "_err", "")


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}


def _drop_times(obj):
    if isinstance(obj, dict):
        return {k: _drop_times(v) for k, v in obj.items() if not k.endswith("_s")}
    if isinstance(obj, list):
        return [_drop_times(v) for v in obj]
    return obj


def _report_page(path: Path, out: Path) -> str:
    """The report page less what differs between two identical runs: the output folder
    (in the configuration shown) and the step times of the provenance table."""
    page = path.read_text().replace(str(out), "OUT")
    head, sep, prov = page.partition('<section id="provenance">')
    assert sep, path  # the provenance table is there
    return head + re.sub(r"(<td>[a-z]+</td>\s*<td>)[^<]*(</td>)", r"\1\2", prov)


def assert_same_outputs(out: Path, ref: Path) -> None:
    """Same files; identical bytes except timings (JSON ``*_s`` keys, the report's step
    times), the output folder named in the report, the log and provenance; the same step
    keys."""
    got, want = _files(out), _files(ref)
    assert sorted(got) == sorted(want), set(got) ^ set(want)
    for rel, p in want.items():
        if Path(rel).name in NOT_COMPARED:
            continue
        if rel == "report.html":
            assert _report_page(got[rel], out) == _report_page(p, ref), rel
        elif rel.endswith(".json"):
            assert _drop_times(json.loads(got[rel].read_text())) == _drop_times(
                json.loads(p.read_text())), rel
        else:
            assert got[rel].read_bytes() == p.read_bytes(), rel
    keys = [{k: v["key"] for k, v in json.loads((d / "provenance.json").read_text())[
        "steps"].items()} for d in (out, ref)]
    assert keys[0] == keys[1]


def _log_count(log: Path, text: str) -> int:
    try:
        return log.read_text().count(text)
    except OSError:
        return 0


def _kill_in(cfg: Path, step: str, rng: random.Random) -> str:
    """Run ``ect run``, SIGKILLed at a random moment (0-0.2 s) after ``step`` starts.
    Returns ``killed`` or how the run ended by itself (exit code and stderr)."""
    proc = Ect("--quiet", "run", str(cfg), kill_in=(step, rng.uniform(0.0, 0.2)))
    code = proc.wait()
    return "killed" if code == -signal.SIGKILL else f"exit {code}: {proc.err.strip()[-300:]}"


def test_sigkill_in_every_step_resumes_to_identical_outputs(phantom_run):
    cfg, ref = phantom_run
    rng = random.Random(27)
    ends = {step: _kill_in(cfg, step, rng) for step in STEPS}
    kills = [step for step, how in ends.items() if how == "killed"]
    assert len(kills) >= 3, ends  # most kills land inside their step (each takes >0.1 s)
    assert all(how.startswith(("killed", "exit 0")) for how in ends.values()), ends
    proc = Ect("--quiet", "run", str(cfg))
    assert proc.wait() == 0, proc.err
    assert_same_outputs(cfg.parent / "out", ref)
    assert not (cfg.parent / "out" / LOCK_NAME).exists()


def _operando_config(folder: Path, greys: list[Path], output: str) -> Path:
    """Every step of the pipeline: two operando states (so ``track`` runs), ``cracks``
    with the shipped default model, and the report."""
    cfg = {"input": {"grey": [str(g) for g in greys], "voxel_size": 0.5}, "output": output,
           "steps": {"filter": {"enabled": True, "method": "gaussian", "sigma": 0.7},
                     "segment": {"method": "threshold", "threshold_method": "multiotsu",
                                 "classes": 3},
                     "particles": {"phase": "active"}, "cracks": {"enabled": True},
                     "metrics": {"tortuosity": ["z"]}}}
    path = folder / f"{output}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def operando_run(tmp_path, shared):
    """Config of an operando run into ``tmp_path/out`` and the outputs and step times of an
    uninterrupted run of the same two states (a 48³ synthetic electrode whose cracks open
    between the states, rendered once per module)."""
    if "operando" not in shared:
        from electrode_ct.synth import operando_series

        root = shared["root"]
        series = operando_series((48, 48, 48), states=2, openness=[0.0, 0.3], voxel_size=0.5,
                                 radius_mean_um=2.5, radius_sd_um=0.5, cracked_fraction=0.3,
                                 max_shift_um=0.5, max_rotation_deg=0.0, snr=8, seed=11)
        greys = [root / f"state_{i}.tif" for i in range(len(series))]
        for path, ph in zip(greys, series, strict=True):
            tifffile.imwrite(path, ph.grey.numpy())
        ref = Ect("--quiet", "run", str(_operando_config(root, greys, "operando")))
        assert ref.wait() == 0, ref.err
        steps = json.loads((root / "operando" / "provenance.json").read_text())["steps"]
        assert list(steps) == OPERANDO_STEPS and steps["track"]["summary"]["n_tracked"] > 0
        shared["operando"] = (greys, root / "operando",
                              {k: v["time_s"] for k, v in steps.items()})
    greys, ref, times = shared["operando"]
    return _operando_config(tmp_path, greys, "out"), ref, times


def _recorded(out: Path, step: str) -> dict[str, str] | None:
    """The outputs of ``step`` when ``provenance.json`` records it and they all exist."""
    if not (out / "provenance.json").exists():  # killed in the first step of the first run
        return None
    done = json.loads((out / "provenance.json").read_text())["steps"].get(step)
    if done is None or not all((out / p).exists() for p in done["outputs"].values()):
        return None
    return done["outputs"]


def _kill_inside(cfg: Path, step: str, delay_s: float) -> bool:
    """Run ``ect run`` SIGKILLed ``delay_s`` after ``step`` starts; whether the kill came
    inside the step (before it was recorded).

    When the step finished first (it ran faster than in the reference, or an earlier kill
    came after it), one of its outputs is removed so that the next run redoes it, and the
    kill comes twice as soon (at most 4 tries)."""
    out = cfg.parent / "out"
    for _ in range(4):
        proc = Ect("--quiet", "run", str(cfg), kill_in=(step, delay_s))
        code = proc.wait()
        assert code in (0, -signal.SIGKILL), f"{step}: exit {code}: {proc.err[-300:]}"
        done = _recorded(out, step)
        if done is None:
            return code == -signal.SIGKILL
        assert done, f"{step}: recorded without outputs"
        (out / sorted(done.values())[0]).unlink()
        delay_s /= 2
    return False


def test_sigkill_in_every_step_of_an_operando_run_with_cracks_and_report(operando_run):
    """Each run is SIGKILLed at a random moment inside a different step (0.05-0.8 of that
    step's time in the reference run); the next one resumes and is killed in the next."""
    cfg, ref, times = operando_run
    rng = random.Random(2027)
    inside = {step: _kill_inside(cfg, step, rng.uniform(0.05, 0.8) * times[step])
              for step in OPERANDO_STEPS}
    assert all(inside.values()), inside
    proc = Ect("--quiet", "run", str(cfg))
    assert proc.wait() == 0, proc.err
    assert_same_outputs(cfg.parent / "out", ref)
    assert not (cfg.parent / "out" / LOCK_NAME).exists()
    assert not [p for p in (cfg.parent / "out").rglob("*") if ".tmp" in p.name]


def _wait_for(log: Path, text: str, proc: Ect) -> None:
    while proc.running() and _log_count(log, text) == 0:
        time.sleep(0.005)


def test_second_run_into_the_same_folder_is_refused(phantom_run):
    cfg, ref = phantom_run
    first = Ect("--quiet", "run", str(cfg))
    try:
        _wait_for(cfg.parent / "out" / "run.log", "segment: running", first)
        os.kill(first.pid, signal.SIGSTOP)  # hold the first run inside a step
        second = Ect("--quiet", "run", str(cfg))
        assert second.wait() == 2
    finally:
        os.kill(first.pid, signal.SIGCONT)
    lines = second.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"pid {first.pid}" in lines[0] and "out" in lines[0]
    assert first.wait(timeout=300) == 0
    assert_same_outputs(cfg.parent / "out", ref)


def test_stale_lock_of_a_dead_run_is_taken_over(phantom_run):
    cfg, ref = phantom_run
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = cfg.parent / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(f"{dead.pid}\n")
    res = run_pipeline(load_config(cfg), quiet=True)
    assert res["ran"][0] == STEPS[0]
    assert f"took over the lock of a dead run (pid {dead.pid})" in (out / "run.log").read_text()
    assert not (out / LOCK_NAME).exists()
    assert_same_outputs(out, ref)


def test_full_disk_names_the_file_leaves_nothing_partial_and_resumes(phantom_run):
    cfg, ref = phantom_run
    out = cfg.parent / "out"
    proc = Ect("--quiet", "run", str(cfg), limit=8000)  # RLIMIT_FSIZE: 8000 bytes per file
    assert proc.wait() == 2, proc.err
    lines = proc.err.strip().splitlines()
    assert len(lines) == 1, proc.err
    first = "grey_filtered_0.tif"  # the first step's volume, the first file over the limit
    assert lines[0].startswith("error: ") and first in lines[0]
    assert "file size limit" in lines[0]
    assert not (out / "volumes" / first).exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    res = run_pipeline(load_config(cfg), quiet=True)  # the next run resumes
    assert res["ran"][0] == STEPS[0]
    assert_same_outputs(out, ref)


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder writes into fail: chmod for ordinary users, a read-only tmpfs for root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                          capture_output=True)
    if done.returncode != 0:  # root without mount rights: no way to make a folder read-only
        pytest.skip(f"root cannot mount a read-only tmpfs here: {done.stderr!r}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_read_only_output_folder_is_one_clear_error(read_only_folder, run_cli, tmp_path):
    tifffile.imwrite(tmp_path / "grey.tif", np.zeros((8, 8, 8), np.uint8))
    cfg = _config(tmp_path, tmp_path / "grey.tif", output="ro/out")
    code, _, err = run_cli("--quiet", "run", cfg)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ro/out" in lines[0]
    assert "read-only" in lines[0] or "permission denied" in lines[0]
    assert not any(read_only_folder.iterdir())


def test_changed_input_is_reported_and_affected_steps_rerun(tmp_path, three_phase_phantom,
                                                           monkeypatch):
    import shutil

    data = three_phase_phantom[1]
    grey, out, ref = tmp_path / "grey.tif", tmp_path / "out", tmp_path / "first"
    tifffile.imwrite(grey, data)
    cfg = _config(tmp_path, grey)
    assert run_pipeline(load_config(cfg), quiet=True)["ran"] == STEPS
    shutil.copytree(out, ref)

    # rewritten while a step runs: the run stops before recording that step
    from electrode_ct.pipeline import steps

    real = steps.step_particles

    def particles_then_rewrite(run):
        res = real(run)
        tifffile.imwrite(grey, data[:, :, ::-1].copy())
        return res

    monkeypatch.setattr(steps, "step_particles", particles_then_rewrite)
    (out / "volumes" / "particles.tif").unlink()  # so that the particles step runs again
    with pytest.raises(InputError, match=r"grey\.tif: input changed during the run"):
        run_pipeline(load_config(cfg), quiet=True)
    monkeypatch.undo()
    # changed since the last run: reported, and every step depending on it reruns
    assert run_pipeline(load_config(cfg), quiet=True)["ran"] == STEPS
    assert f"input {grey} changed since the last run" in (out / "run.log").read_text()
    tifffile.imwrite(grey, data)
    assert run_pipeline(load_config(cfg), quiet=True)["ran"] == STEPS
    assert_same_outputs(out, ref)


def test_lock_is_released_after_an_error(phantom_run, monkeypatch):
    cfg, _ = phantom_run
    from electrode_ct.pipeline import steps

    def boom(run):
        raise OutputError("x: simulated")

    monkeypatch.setattr(steps, "step_particles", boom)
    with pytest.raises(OutputError):
        run_pipeline(load_config(cfg), quiet=True)
    assert not (cfg.parent / "out" / LOCK_NAME).exists()
