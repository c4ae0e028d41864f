"""The pipeline configuration: a pydantic model validated from YAML.

Every key is documented here and in ``docs/pipeline.md``; unknown keys are errors that
name the key and list the allowed ones. ``ect config init --preset nano|micro|operando``
writes a commented template (:func:`template`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from electrode_ct.compute.config import ComputeConfig
from electrode_ct.errors import ConfigError, InputError
from electrode_ct.stats import parse_subsets


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InputConfig(_Strict):
    """What to analyse."""

    grey: list[str] = Field(
        default_factory=list,
        description="Grey volume(s); several paths = operando states. May be empty when "
        "phases are given (then no grey-level measurements).")
    voxel_size: float | list[float] | None = Field(
        None, description="µm, one value or Z Y X; default: from the file.")
    phases: list[str] | None = Field(
        None, description="Existing phase segmentation(s); the segment step is then skipped.")
    class_map: dict[str, int] | None = Field(
        None, description="Class map of the given phases (name -> value) if the file has none.")
    reference: str | None = Field(
        None, description="Reference phase labels for segmentation quality.")
    reference_ignore: int | None = Field(None, description="Reference value to ignore.")
    reference_particles: str | None = Field(
        None, description="Reference particle ids (ground truth) of the reference state: "
        "the report's instance evaluation (PR curves, mAP@0.5, overlay).")
    reference_state: int = Field(
        0, ge=0, description="Index of the reference (pristine) state: particles are "
        "separated on it, tracking propagates its ids, measure (untracked), metrics, "
        "segmentation quality and stats use it.")
    crop: dict[str, list[int]] | None = Field(
        None, description="Region of interest, e.g. {z: [0, 100], y: [0, 200], x: [0, 200]}.")

    @field_validator("grey", "phases", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, (str, os.PathLike)) else v


class FilterStep(_Strict):
    """Denoising before segmentation."""

    enabled: bool = False
    method: Literal["gaussian", "median", "nlm", "unsharp", "normalise"] = "gaussian"
    sigma: float = 1.0
    sigma_um: float | None = None
    size: int = 3


class SegmentStep(_Strict):
    """Semantic segmentation into phases."""

    enabled: bool = True
    method: Literal["threshold", "watershed", "kmeans", "forest", "cnn"] = "threshold"
    threshold_method: Literal[
        "manual", "otsu", "multiotsu", "triangle", "li", "hysteresis", "fraction"
    ] = "multiotsu"
    classes: int | None = Field(
        None, description="Number of phases; default: the method's own (multiotsu and "
        "kmeans 3, otsu/triangle/li/hysteresis 2, manual len(thresholds) + 1, fraction "
        "len(fractions)).")
    thresholds: list[float] | None = None
    fractions: list[float] | None = None
    low: float | None = None
    high: float | None = None
    scribbles: str | None = Field(None, description="Training labels for method=forest.")
    class_names: list[str] | None = None
    trees: int = 100
    model: str | None = Field(None, description="A trained model file (forest or cnn).")
    compare_forest: bool = Field(False, description="method=cnn: report the CNN's and a "
                                 "forest's validation mean IoU stored in the model by "
                                 "train-cnn --compare-forest (flagged when the CNN loses).")
    two_d: bool = Field(False, description="Independent 2-D slices: per-slice thresholds, "
                        "per-slice k-means, the model's per-slice prediction.")
    cleanup_min_island_um3: float = 0.0
    add: list[str] = Field(
        default_factory=list, description="method=forest: further strokes drawn over the "
        "scribbles, in order (the correction loop).")
    seeded: Literal["ML1", "ML2", "ML3"] | None = Field(
        None, description="method=forest: threshold-seeded training labels (Bailey et al.); "
        "scribbles and add are drawn over them.")
    seed_thresholds: str | list[float] = Field(
        "multiotsu", description="The seeds' cuts: grey levels, or multiotsu | otsu | li | "
        "triangle.")
    seed_slices: str | None = Field(
        None, description="central | first | all | N | 'z,z,...'; default the variant's.")
    next_regions: int = Field(
        0, ge=0, description="method=forest: write the N most uncertain 32-voxel windows of "
        "the reference state to tables/next_regions.csv (0: none).")
    search: str | None = Field(
        None, description="A folder written by `ect segment search-cnn --out DIR` (its "
        "search.json): the ranked hyper-parameter table (mean ± std [95 % CI] over "
        "repeats) in the summary and the report.")
    ensemble: list[str] | None = Field(
        None, description="Perturbed-label ensemble members (model files, or folders of "
        "member_*.model from `ect segment ensemble`; at least 2): each segments the "
        "reference state; mean ± std over members in the report.")

    @field_validator("search")
    @classmethod
    def _search_folder(cls, v: str | None) -> str | None:
        if v:
            from electrode_ct.pipeline.segmentpy import search_results

            try:
                search_results(v)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("steps.segment.search: ")) from None
        return v

    @field_validator("ensemble")
    @classmethod
    def _two_members(cls, v: list[str] | None) -> list[str] | None:
        if v:
            from electrode_ct.pipeline.segmentpy import member_files

            try:
                member_files(v)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("steps.segment.ensemble: ")) from None
        return v


class ParticlesStep(_Strict):
    """Particle instance segmentation of one phase."""

    enabled: bool = True
    phase: str = "active"
    method: Literal["distance", "triplanar", "boundary", "learned"] = "distance"
    model: str | None = Field(None, description="particles-cnn model of the learned, boundary "
                              "and triplanar methods (default: the shipped model).")
    heal_cracks_um: float = 0.0
    h: float | None = None
    min_volume_um3: float = 0.0
    remove_border: bool = False


class MeasureStep(_Strict):
    """Per-particle morphology and grey-level tables (GREAT2 radial layers)."""

    enabled: bool = True
    properties: Literal["basic", "all"] = "all"
    radial: bool = True
    exclude_layers: int = 5
    bootstrap: int = Field(1000, ge=1, description="Bootstrap resamples over particles for "
                           "the size distribution's _std / _ci95 (seeded by the run's seed).")


class TrackStep(_Strict):
    """Operando: register states to ``input.reference_state`` and propagate particle ids."""

    enabled: bool = True
    calibrate: list[str] = Field(
        [], description="Grey-level calibration regions: phase names (or values) of the "
        "phase volumes, or 'background' (below each state's Otsu threshold); each state's "
        "grey is mapped onto the reference's by the regions' histogram peaks before it is "
        "measured; [] for none.")
    volume_tolerance: float = Field(
        0.2, gt=0, description="A particle whose voxel count changes by more than this "
        "fraction in any state is inconsistent and left out with its neighbours; cracks "
        "that open take voxels out of a particle, so series that crack need more (the demo: 0.5).")


class CracksStep(_Strict):
    """Per-particle crack/flaw classification."""

    enabled: bool = False
    method: Literal["features", "cnn"] = "features"
    model: str | None = Field(None, description="Cracks model file; default: the shipped one.")
    threshold: float | None = Field(None, description="Score threshold; default: the model's.")
    subvolume_um: float | None = Field(
        None, gt=0, description="Edge (µm) of the sub-volumes whose spread of the % flawed "
        "gives percent_flawed_subvolumes; default half the shortest extent.")
    truth: list[str] = Field([], description="Reference table per state (label + flawed or "
                             "cracked): ROC, precision-recall and confusion in the report.")
    truth_labels: list[str] = Field(
        [], description="Particle labels the truth tables refer to, per state (e.g. a "
        "phantom's particles.tif); each run particle takes its most-overlapping one's value.")


class MetricsStep(_Strict):
    """Microstructure metrics of the phase volume."""

    enabled: bool = True
    phase: str = "pore"
    tortuosity: list[Literal["x", "y", "z"]] = ["x", "y", "z"]
    surface_method: Literal["face", "marching_cubes", "gradient"] = "marching_cubes"
    tol: float | None = Field(None, description="Tortuosity solver relative tolerance.")
    subvolume_um: float | None = Field(
        None, gt=0, description="Edge (µm) of the sub-volumes whose spread gives the _std / "
        "_ci95 companions; default half the shortest extent (at most 256 voxels).")
    subvolumes: list[int] = Field(
        [], description="Cube edges in voxels for the representative-volume curve of the "
        "tortuosity (τ mean ± std per size), e.g. [64, 128, 256]; [] for none.")
    image_quality: bool = Field(
        True, description="SNR / CNR per phase of the grey input (unfiltered) against the "
        "phases (key image_quality); in memory only.")


class StatsStep(_Strict):
    """Population statistics over particle tables."""

    enabled: bool = True
    by: str | None = Field(None, description="COLUMN:NBINS, e.g. volume_um3:4.")
    position: str | None = Field(None, description="AXIS:NBINS, e.g. z:4.")
    size_subset: str | None = Field(
        None, description="Keep only particles of a size quantile, [COLUMN:]topP | bottomP | "
        "qA | qA-qB (e.g. top25, q2-q4); by/position subsets are taken within it.")
    collector: Literal["z0", "z1"] = "z0"
    roi: bool = True
    keep_border: bool = Field(False, description="Keep the particles touching a face of the "
                              "volume (GREAT2 leaves them out).")
    conditions: dict[str, str] = Field(
        {}, description="Condition pies: category -> DataFrame.eval expression over the "
        "particle table (tracked states add delta, sem_delta, z), first match wins; default "
        "for tracked runs: darker / brighter than 2 SEM of the change.")
    paint: list[str] = Field(
        [], description="Particle columns painted into image space, one float32 volume per "
        "state (volumes/paint_<column>_<state>); delta, sem_delta, z for tracked states.")
    change_map: bool = Field(True, description="Tracked runs: the intra-particle change map "
                             "of the most darkened particle (volumes/change_map.tif).")

    @field_validator("by", "position")
    @classmethod
    def _subsets(cls, v: str | None, info: Any) -> str | None:
        try:
            parse_subsets(v, name=f"steps.stats.{info.field_name}",
                          axis=info.field_name == "position")
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, v: dict[str, str]) -> dict[str, str]:
        from electrode_ct.conditions import parse_conditions

        try:
            parse_conditions([f"{k}={e}" for k, e in v.items()], name="steps.stats.conditions")
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("size_subset")
    @classmethod
    def _size(cls, v: str | None) -> str | None:
        from electrode_ct.subsets import parse_size_subset

        try:
            parse_size_subset(v, name="steps.stats.size_subset")
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return v


class VariabilityStep(_Strict):
    """Segmentations of the input by several users and methods (Bailey et al.)."""

    enabled: bool = False
    segmentations: dict[str, list[str]] = Field(
        default_factory=dict, description="Method -> label files of the input volume, one "
        "per user (at least 2), e.g. {threshold: [u1.tif, u2.tif, u3.tif]}; cropped as the "
        "input.")
    phase: str = Field("active", description="Phase whose fraction spread and subtraction "
                       "images are reported.")
    reference: float | None = Field(
        None, gt=0, le=1, description="The phase's volume fraction from another technique "
        "(e.g. FIB-SEM), a fraction in (0, 1].")

    @field_validator("segmentations")
    @classmethod
    def _two_users(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        few = {k: len(p) for k, p in v.items() if len(p) < 2}
        if few:
            raise ValueError(f"each method needs at least 2 segmentations (users), got {few}")
        return v


class ReportStep(_Strict):
    """The self-contained HTML report."""

    enabled: bool = True
    title: str = "electrode-ct report"


class Steps(_Strict):
    """Which steps run, with their parameters (each optional)."""

    filter: FilterStep = FilterStep()
    segment: SegmentStep = SegmentStep()
    particles: ParticlesStep = ParticlesStep()
    track: TrackStep = TrackStep()
    measure: MeasureStep = MeasureStep()
    cracks: CracksStep = CracksStep()
    metrics: MetricsStep = MetricsStep()
    stats: StatsStep = StatsStep()
    variability: VariabilityStep = VariabilityStep()
    report: ReportStep = ReportStep()


class PipelineConfig(_Strict):
    """A whole run: inputs, output folder, seed and steps."""

    input: InputConfig
    output: str = "ect-out"
    seed: int = 0
    volume_format: Literal["tiff", "ome-zarr"] = "tiff"
    compute: ComputeConfig = Field(
        ComputeConfig(), description="Where blocks run (docs/scale.md): scheduler local | "
        "tcp://HOST:PORT | slurm | pbs | sge | lsf, n_workers, threads_per_worker, "
        "memory_limit, block_shape, in_memory_below_mb, jobqueue.")
    steps: Steps = Steps()


def _format_error(exc: ValidationError, source: str) -> str:
    errors = exc.errors()
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    err = extra[0] if extra else errors[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        model: Any = PipelineConfig
        for part in err["loc"][:-1]:
            field = model.model_fields.get(str(part))
            ann = field.annotation if field else None
            model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
            if model is None:
                break
        allowed = ", ".join(model.model_fields) if model else "?"
        return f"{source}: unknown config key {loc!r}; allowed here: {allowed}"
    if err["type"] == "missing":
        return f"{source}: missing required config key {loc!r}"
    if err["type"] == "value_error":
        return f"{source}: config key {loc!r}: {err['ctx']['error']}"
    return f"{source}: config key {loc!r}: {err['msg']} (got {err.get('input')!r})"


def parse_config(data: dict[str, Any], *, source: str = "config") -> PipelineConfig:
    """Validate a configuration mapping.

    Raises
    ------
    ConfigError
        One line naming the offending key (unknown keys list the allowed ones).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys at the top level")
    _refuse_old_keys(data, source)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None
    check_prerequisites(cfg, source=source)
    check_values(cfg, source=source)
    return cfg


def _refuse_old_keys(data: dict[str, Any], source: str) -> None:
    """One line for the keys replaced by ``input.reference_state``."""
    steps = data.get("steps")
    for step in ("track", "stats"):
        sub = steps.get(step) if isinstance(steps, dict) else None
        if isinstance(sub, dict) and "reference" in sub:
            raise ConfigError(f"{source}: steps.{step}.reference was replaced by "
                              "input.reference_state (one reference state for every step)")


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read and validate a YAML config file; relative input paths are resolved from its folder."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{p}: not a UTF-8 YAML text file ({exc})") from None
    cfg = parse_config(data, source=str(p))
    base = p.parent
    return _resolve_paths(cfg, base)


def _resolve_paths(cfg: PipelineConfig, base: Path) -> PipelineConfig:
    def fix(v: str | None) -> str | None:
        if v is None:
            return None
        q = Path(v)
        return str(q if q.is_absolute() else base / q)

    cfg.input.grey = [fix(g) for g in cfg.input.grey]  # type: ignore[misc]
    if cfg.input.phases:
        cfg.input.phases = [fix(g) for g in cfg.input.phases]  # type: ignore[misc]
    cfg.input.reference = fix(cfg.input.reference)
    cfg.input.reference_particles = fix(cfg.input.reference_particles)
    cfg.steps.particles.model = fix(cfg.steps.particles.model)
    cfg.steps.segment.scribbles = fix(cfg.steps.segment.scribbles)
    cfg.steps.segment.add = [fix(a) for a in cfg.steps.segment.add]  # type: ignore[misc]
    cfg.steps.variability.segmentations = {
        k: [fix(a) for a in v] for k, v in cfg.steps.variability.segmentations.items()}  # type: ignore[misc]
    cfg.steps.segment.model = fix(cfg.steps.segment.model)
    cfg.steps.cracks.model = fix(cfg.steps.cracks.model)
    cfg.steps.cracks.truth = [fix(t) for t in cfg.steps.cracks.truth]  # type: ignore[misc]
    cfg.steps.cracks.truth_labels = [fix(t) for t in cfg.steps.cracks.truth_labels]  # type: ignore[misc]
    cfg.output = fix(cfg.output) or cfg.output
    return cfg


def check_prerequisites(cfg: PipelineConfig, *, source: str = "config") -> None:
    """Refuse step combinations whose prerequisite is disabled.

    Raises
    ------
    ConfigError
        Naming the step and the missing prerequisite.
    """
    s = cfg.steps
    if not cfg.input.grey and not cfg.input.phases:
        raise ConfigError(f"{source}: input needs grey (a scan) or phases (a segmentation)")
    if not cfg.input.grey:
        for name in ("filter", "segment", "cracks"):
            if getattr(s, name).enabled and not (name == "segment" and cfg.input.phases):
                raise ConfigError(f"{source}: steps.{name} needs input.grey")
    has_phases = s.segment.enabled or bool(cfg.input.phases)
    if s.particles.enabled and not has_phases:
        raise ConfigError(f"{source}: steps.particles needs phases: enable steps.segment "
                          "or give input.phases")
    if s.metrics.enabled and not has_phases:
        raise ConfigError(f"{source}: steps.metrics needs phases: enable steps.segment "
                          "or give input.phases")
    if s.measure.enabled and not s.particles.enabled:
        raise ConfigError(f"{source}: steps.measure needs steps.particles enabled")
    if s.cracks.enabled and not s.particles.enabled:
        raise ConfigError(f"{source}: steps.cracks needs steps.particles enabled")
    if s.stats.enabled and not s.measure.enabled:
        raise ConfigError(f"{source}: steps.stats needs steps.measure enabled")
    if s.segment.enabled and s.segment.method == "forest" and not (
        s.segment.scribbles or s.segment.model or s.segment.seeded
    ):
        raise ConfigError(f"{source}: steps.segment.method 'forest' needs steps.segment.scribbles "
                          "(training labels), steps.segment.seeded or steps.segment.model")
    if s.segment.enabled and s.segment.method == "cnn" and not s.segment.model:
        raise ConfigError(f"{source}: steps.segment.method 'cnn' needs steps.segment.model")
    if s.segment.compare_forest and s.segment.method != "cnn":
        raise ConfigError(f"{source}: steps.segment.compare_forest needs method 'cnn'")
    if s.segment.enabled and s.segment.method == "watershed" and (
        s.segment.low is None or s.segment.high is None
    ):
        raise ConfigError(f"{source}: steps.segment.method 'watershed' needs low and high")


def check_values(cfg: PipelineConfig, *, source: str = "config") -> None:
    """Refuse values that only the whole config can check (before any step runs).

    Raises
    ------
    ConfigError
        ``input.reference_state`` beyond the inputs; a ``steps.stats.by`` column that the
        measure step does not write; more ``steps.cracks.truth`` tables than states or
        ``truth_labels`` than tables.
    """
    n = len(cfg.input.grey) or len(cfg.input.phases or [])
    if cfg.input.reference_state >= max(n, 1):
        raise ConfigError(f"{source}: input.reference_state {cfg.input.reference_state} does "
                          f"not exist: {n} input state(s), indices 0..{n - 1}")
    c = cfg.steps.cracks
    if len(c.truth) > n or len(c.truth_labels) > len(c.truth):
        raise ConfigError(f"{source}: steps.cracks: expected at most one truth table per input "
                          f"state ({n}) and one truth_labels volume per truth table, got "
                          f"{len(c.truth)} and {len(c.truth_labels)}")
    spec = parse_subsets(cfg.steps.stats.by, name="steps.stats.by")
    if spec and cfg.steps.stats.enabled and cfg.input.grey:  # stats runs on grey tables
        from electrode_ct.measure.table import table_columns

        known = table_columns(properties=cfg.steps.measure.properties)
        if spec[0] not in known:
            raise ConfigError(f"{source}: steps.stats.by: column {spec[0]!r} is not written by "
                              f"steps.measure (properties {cfg.steps.measure.properties}); "
                              f"available: {', '.join(known)}")


_PRESETS: dict[str, dict[str, Any]] = {
    "micro": {
        "comment": "Lab micro-CT (0.3–1 µm voxels): particles resolved, CBD ~ pore.",
        "segment": {"method": "threshold", "threshold_method": "otsu", "classes": 2},
        "particles": {"phase": "active", "heal_cracks_um": 0.0},
        "metrics": {"phase": "pore"},
        "cracks": False,
    },
    "nano": {
        "comment": "Nano-CT (16–130 nm voxels): pore, CBD and active are three grey levels.",
        "segment": {"method": "threshold", "threshold_method": "multiotsu", "classes": 3},
        "particles": {"phase": "active", "heal_cracks_um": 0.2},
        "metrics": {"phase": "pore"},
        "cracks": True,
    },
    "operando": {
        "comment": "Operando series: the same region at several states of charge.",
        "segment": {"method": "threshold", "threshold_method": "otsu", "classes": 2},
        "particles": {"phase": "active", "heal_cracks_um": 0.5},
        "metrics": {"phase": "pore"},
        "cracks": True,
    },
}


def template(preset: str = "micro") -> str:
    """A commented YAML template for a preset (``nano``, ``micro`` or ``operando``)."""
    if preset not in _PRESETS:
        raise ConfigError(f"--preset: unknown preset {preset!r}; choose nano, micro or operando")
    p = _PRESETS[preset]
    grey = ("  grey: [state0.tif, state1.tif, state2.tif]   # one path per state of charge"
            if preset == "operando" else
            "  grey: scan.tif            # file, folder of slices, glob, file.h5::/dataset, .zarr")
    seg, par, met = p["segment"], p["particles"], p["metrics"]
    return f"""# electrode-ct pipeline configuration ({preset} preset)
# {p['comment']}
# Run with:  ect run this.yaml      (unknown keys are errors; see docs/pipeline.md)
input:
{grey}
  voxel_size: null          # µm, one value or [z, y, x]; null = from the file
  phases: null              # existing phase segmentation(s): skips steps.segment
  reference: null           # reference labels: segmentation quality in the report
  reference_state: 0        # the reference (pristine) state, used by every step
output: ect-out             # output folder (relative to this file)
seed: 0
volume_format: tiff         # tiff | ome-zarr
steps:
  filter:
    enabled: false
    method: gaussian        # gaussian | median | nlm | unsharp | normalise
    sigma: 1.0              # voxels
  segment:
    enabled: true
    method: {seg['method']}       # threshold | watershed | kmeans | forest | cnn
    threshold_method: {seg['threshold_method']}
    classes: {seg['classes']}
    scribbles: null         # training labels for method: forest (0 = unlabelled, 1..K)
    model: null             # a trained forest/cnn model file
  particles:
    enabled: true
    phase: {par['phase']}
    heal_cracks_um: {par['heal_cracks_um']}   # close cracks up to this width (µm)
    min_volume_um3: 0.0
  track:
    enabled: {str(preset == 'operando').lower()}   # operando: same particle ids in every state
  measure:
    enabled: true
    properties: all         # basic | all
    radial: true            # GREAT2 radial grey-level layers
    exclude_layers: 5
  cracks:
    enabled: {str(p['cracks']).lower()}
    method: features        # features | cnn
  metrics:
    enabled: true
    phase: {met['phase']}
    tortuosity: [x, y, z]
    surface_method: marching_cubes   # face | marching_cubes | gradient
    subvolumes: []          # e.g. [64, 128, 256]: tortuosity mean ± std per cube edge
  stats:
    enabled: true
    by: null                # e.g. volume_um3:4
    position: null          # e.g. z:4
    collector: z0           # z0 | z1
    keep_border: false      # GREAT2 leaves out particles touching a face of the volume
  variability:              # Bailey et al.: other users' segmentations of this volume
    enabled: false
    segmentations: {{}}       # e.g. {{threshold: [u1.tif, u2.tif, u3.tif], ML1: [...]}}
    phase: active
    reference: null         # the phase's fraction from another technique, e.g. 0.508
  report:
    enabled: true
"""
