"""Pydantic models of the YAML spec (strict: unknown keys are errors) and load_spec(path)."""

from __future__ import annotations

import copy
import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    PositiveFloat,  # ArmSpec's own; the spec's other floats use spec_types' (no booleans)
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bncli.data.registry import SOURCES, source_help, source_info, source_names, sources_with
from bncli.errors import SpecError
from bncli.models.registry import FAMILIES, family_help, family_info, family_names, get_family
from bncli.norms import (  # noqa: F401  (ARM_PRESETS re-exported: the presets of every norm entry)
    ARM_PRESETS,
    NORMS,
    NormInfo,
    arm_width_problem,
    norm_info,
    norm_names,
)
from bncli.spec_analysis import (  # noqa: F401  (re-exported: analyses import them from here)
    SECTIONS,
    AnalysisSpec,
    IcsSpec,
    LipschitzSpec,
    SaturationSpec,
    ScaleSpec,
)
from bncli.spec_idle import check_idle_keys
from bncli.spec_types import (
    MAX_COUNT,
    MAX_LAYERS,
    MAX_LIST,
    MAX_SEED,
    MAX_SEEDS,
    MAX_THREADS,
    BatchSize,
    Count,
    Float,
    Fraction,
    Int,
    NonNegFloat,
    NoRepeats,
    Seed,
    Strict,
    Width,
    field_default,
)
from bncli.spec_types import PositiveFloat as PosFloat
from bncli.yamlio import load_yaml_file

# --------------------------------------------------------------------------- data
# No source, family or norm is named here: their entries (bncli.data.registry,
# bncli.models.registry, bncli.norms) say which fields they read and what they support.


def _only(names: tuple[str, ...], text: str) -> str:
    return f"{', '.join(names)} only: {text}" if names else text


def _src(field: str, text: str) -> str:
    """A data field's help, prefixed with the sources that read it."""
    return _only(sources_with(lambda s: field in s.fields), text)


def _fam(field: str, text: str) -> str:
    """A model field's help, prefixed with the families that read it."""
    return _only(tuple(n for n, f in FAMILIES.items() if field in f.fields), text)


def _depth_help() -> str:
    parts = []
    for name in FAMILIES:
        module = get_family(name)
        depths = getattr(module, "DEPTHS", None)
        if depths:
            default = getattr(module, "DEFAULT_DEPTH", depths[0])
            parts.append(f"{name}: {', '.join(map(str, depths))} (null: {default})")
    return "; ".join(parts)


class DataSpec(Strict):
    """Where the examples come from. Everything is loaded into memory on the run's device."""

    # the `bncli spec --defaults` comments (descriptions) say which source each field is for
    source: Literal[source_names()] = Field(  # type: ignore[valid-type]  (the data-source registry)
        "digits", description=source_help())
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", validate_default=True,
        description="classification or regression (" + ", ".join(sources_with(lambda s: "n_outputs" in s.fields))
        + ": a Gaussian mixture or a linear teacher y = A x); auto: "
        + ", ".join(sources_with(lambda s: s.infers_task)) + " infers it from y (integer labels are "
        "classes), else classification")
    n_samples: Annotated[Int, Field(gt=0, le=MAX_COUNT)] = Field(
        2000, description=_src("n_samples", "examples generated (train + held-out)"))
    n_features: Annotated[Int, Field(gt=0, le=1_000_000)] = Field(
        20, description=_src("n_features", "input features"))
    n_classes: Annotated[Int, Field(ge=2, le=100_000)] = Field(
        10, description=_src("n_classes", "classification: mixture components = classes"))
    n_outputs: Annotated[Int, Field(gt=0, le=100_000)] = Field(
        10, description=_src("n_outputs", "regression: outputs of the linear teacher"))
    class_sep: NonNegFloat = Field(
        2.0, description=_src("class_sep", "classification: spread of the class means (larger is easier)"))
    noise: NonNegFloat = Field(0.0, description=_src("noise", "regression: std of noise added to y"))
    shape: Literal["flat", "image"] = Field(
        "flat", description=_src("shape", "flat (a feature vector, for a fully connected net) or image "
                                 "(1xHxW, for a conv net)"))
    path: Path | None = Field(
        None, description=_src("path", "a file with X and y (optional X_test, y_test); a relative path "
                               "resolves from the spec's folder"))
    root: Path | None = Field(
        None, description=_src("root", "the folder holding the downloaded files (torchvision's layout, "
                               "e.g. ROOT/MNIST/raw/ or ROOT/cifar-10-batches-py/, or the files directly); "
                               "null: $BNCLI_DATA, else ./data; a relative path resolves from the spec's "
                               "folder"))
    subset: Annotated[Int, Field(ge=2, le=MAX_COUNT)] | None = Field(
        None, description="train on a fixed subset of N training examples (drawn with data.seed); "
        "null: all")
    test_subset: Annotated[Int, Field(ge=1, le=MAX_COUNT)] | None = Field(
        None, description="evaluate on a fixed subset of N held-out examples (drawn with data.seed); "
        "null: all")
    augment: bool = Field(
        False, description=_only(sources_with(lambda s: s.augment), "random crop (4-pixel zero padding) + "
                                 "horizontal flip of each training batch, drawn from the run's seed and "
                                 "step (paired arms see the same)"))
    test_fraction: Fraction = Field(
        0.2, description="held-out share of the examples (not used where the data has its own test "
        "split: " + ", ".join(sources_with(lambda s: s.reads_root)) + ", a file with X_test/y_test)")
    standardize: bool = Field(
        True, description="scale each input feature to mean 0, std 1 (statistics of the training split)")
    seed: Seed = Field(
        0, description="data generation (generated sources) and the train/held-out split; fixed "
        "across training seeds")

    @field_validator("path", "root", mode="before")
    @classmethod
    def _usable_path(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, str) and (not v.strip() or "\0" in v):
            what = "an .npz file" if info.field_name == "path" else "a folder"
            raise ValueError(f"give the path of {what} (not empty, no NUL characters)")
        return v

    @field_validator("task")
    @classmethod
    def _resolve_task(cls, v: str, info: ValidationInfo) -> str:
        # resolved here, not from model_fields_set, so a dumped and reloaded spec (command-line
        # overrides, spec.yaml of a run, a job sent to a worker) means the same thing
        source = info.data.get("source")
        if v == "auto" and source in SOURCES and not source_info(source).infers_task:
            return "classification"
        return v

    @model_validator(mode="after")
    def _source_capabilities(self) -> DataSpec:
        info = source_info(self.source)
        for field in info.requires:
            if getattr(self, field) is None:
                raise ValueError(f"source {self.source!r} needs a {field!r} (data.{field})")
        if self.augment and not info.augment:
            raise ValueError(f"augment: crop + flip is for "
                             f"{' and '.join(sources_with(lambda s: s.augment))}, not {self.source}")
        if not info.reads_root:
            _refuse_idle(self, {"root": f"not used with source: {self.source} (only with "
                                        f"{', '.join(sources_with(lambda s: s.reads_root))})"})
        return self


# --------------------------------------------------------------------------- model


def _refuse_idle(model: BaseModel, why: dict[str, str]) -> None:
    """Keys the spec set (not defaults) to a value other than the default, where they do nothing:
    a ValueError naming each (a spec dumped whole, e.g. a run's job, sets them to the default)."""
    bad = [f"{name}: {reason}" for name, reason in why.items()
           if name in model.model_fields_set and getattr(model, name) != field_default(type(model), name)]
    if bad:
        raise ValueError("; ".join(bad) + " (remove the key, or set what it belongs to)")


def _depth_choices(schema: dict[str, Any]) -> None:
    """The schema's depth: one of the families' depths (which family's is the loader's check)."""
    depths = sorted({d for name in FAMILIES for d in getattr(get_family(name), "DEPTHS", None) or ()})
    for branch in schema.get("anyOf", []):
        if branch.get("type") == "integer":
            branch["enum"] = depths


class ModelSpec(Strict):
    """The network shared by every arm. Each hidden layer is a normalization point layer1..layerK."""

    kind: Literal[family_names()] = Field(  # type: ignore[valid-type]  (the model-family registry)
        "mlp", description=family_help())
    # minItems 1 in the schema only: a spec file's empty list is refused either way (the family that
    # reads it needs a layer; any other: a key that does nothing), a model built in Python may hold one
    hidden: list[Width] = Field(default_factory=lambda: [100, 100, 100], max_length=MAX_LAYERS,
                                json_schema_extra={"minItems": 1},
                                description=_fam("hidden", "units of each hidden layer"))
    channels: list[Width] = Field(default_factory=lambda: [16, 32], max_length=MAX_LAYERS,
                                  json_schema_extra={"minItems": 1},
                                  description=_fam("channels", "channels of each conv layer"))
    pool: bool = Field(True, description=_fam("pool", "2x2 max-pool after each conv block while the map "
                                              "is >= 2x2"))
    depth: Annotated[Int, Field(gt=0, le=1000)] | None = Field(
        None, description=_depth_help(), json_schema_extra=lambda s: _depth_choices(s))
    width: Width | None = Field(
        None, description=_fam("width", "channels of the first stage, later stages scale with it "
                               "(null: the paper's)"))
    factory: str | None = Field(
        None, description=_fam("factory", "\"package.module:function\" building your nn.Module "
                               "(README: the contract for its normalization points)"))
    activation: Literal["relu", "sigmoid", "tanh", "linear"] = Field(
        "relu", description="the nonlinearity after each hidden layer")
    bias: bool = Field(True, description="biases in the hidden layers and the head")
    init: Literal["default", "xavier", "kaiming", "normal"] = Field(
        "default", description="weight init: torch's default, xavier, kaiming, or normal (init_std)")
    init_std: PosFloat = Field(0.1, description="init: normal only: the weights' std")

    @model_validator(mode="after")
    def _no_idle_options(self) -> ModelSpec:
        """init_std without init: normal does nothing: an error when the spec sets it to another
        value than its default. (hidden and channels may both be given: one spec, a kind matrix.)"""
        if self.init != "normal":
            _refuse_idle(self, {"init_std": f"not used with init: {self.init} (only with init: normal)"})
        return self

    @model_validator(mode="after")
    def _family_options(self) -> ModelSpec:
        info = family_info(self.kind)
        depths = getattr(get_family(self.kind), "DEPTHS", None)
        if depths is not None and self.depth is not None and self.depth not in depths:
            raise ValueError(f"depth: a {self.kind} has depth {', '.join(map(str, depths))}, "
                             f"not {self.depth}")
        for field in info.requires:
            if not getattr(self, field):
                raise ValueError(f"{field}: kind: {self.kind} needs {field} (see model.{field})")
        # the family-only fields that hold a single value (hidden, channels may be given for a
        # kind matrix): set where the family does not read them, an error
        idle = {}
        for field in ("depth", "width", "factory"):
            if field not in info.fields:
                users = [n for n, f in FAMILIES.items() if field in f.fields]
                idle[field] = f"not used with kind: {self.kind} (only {', '.join(users)})"
        _refuse_idle(self, idle)
        return self

    @model_validator(mode="after")
    def _has_layers(self) -> ModelSpec:
        from bncli.models.registry import get_family

        family = get_family(self.kind)
        if getattr(family, "WIDTHS_KNOWN", True) and not family.widths(self):
            field = family.LAYERS_FIELD.split(".")[-1]
            raise ValueError(f"{field}: a {self.kind} needs at least one hidden layer")
        return self


# --------------------------------------------------------------------------- arms


class NoiseSpec(Strict):
    """Santurkar et al. 2018 App. A.2.1 time-varying noise after the normalization."""

    n_mu: NonNegFloat = 0.5
    n_sigma: Annotated[Float, Field(ge=1.0)] = 1.25
    r_mu: NonNegFloat = 0.1
    r_sigma: NonNegFloat = 0.1


class ArmSpec(Strict):
    """One arm: identical to the others except for normalization (and Santurkar's noise)."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    # a name in the normalization registry (bncli.norms; README's table)
    norm: str = Field("none", json_schema_extra=lambda s: s.update(enum=list(norm_names())))  # type: ignore[arg-type]
    # learnable γ, β after the normalization (batch, layer, group, lp; weight norm has none)
    affine: bool = True
    position: Literal["pre", "post"] = "pre"
    eps: PositiveFloat = 1e-5
    # running statistics (batch, lp): running <- (1 - momentum) running + momentum batch value
    momentum: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    # group: groups per layer; must divide every layer's width (an MLP group needs >= 2 units)
    groups: Annotated[int, Field(ge=1, le=65_536, strict=True)] = 2
    # lp: the norm of Santurkar's ℓp normalization, 1, 2 or inf
    p: Literal[1, 2, "inf"] = 2
    # lp: Santurkar §3.3 divides by "the average of their p-norm": `layer` reads it as one scalar per
    # layer and batch (the batch mean of each example's norm over units), `unit` as one per unit
    # (each unit's ℓp magnitude over the batch, Hoffer et al. 2018's L1 BN); SCIENCE.md, Arms
    lp_scope: Literal["layer", "unit"] = "layer"
    # Santurkar's time-varying noise after the normalization (on a plain arm: after the weights)
    noise: bool = False
    noise_params: NoiseSpec = Field(default_factory=NoiseSpec)

    @model_validator(mode="before")
    @classmethod
    def _legacy_kind(cls, v: Any) -> Any:
        """Specs written before the norm registry say `kind: plain | batchnorm | noisy_batchnorm`."""
        if isinstance(v, dict) and "kind" in v:
            v = dict(v)
            kind = v.pop("kind")
            if "norm" in v:
                raise ValueError("give either norm or the older kind, not both")
            if kind not in LEGACY_KINDS:
                raise ValueError(f"kind: unknown {kind!r} (use norm: {', '.join(norm_names())})")
            for key, value in ARM_PRESETS[kind].items():  # the preset of the same name
                if v.get(key) is None:
                    v[key] = value
        return v

    @model_validator(mode="after")
    def _norm_only_options(self) -> ArmSpec:
        """Fields only some norms read (their entries' arm_fields), set on an arm of another."""
        mine = norm_info(self.norm).arm_fields if self.norm in NORMS else ()
        idle = {}
        for name, info in NORMS.items():
            for field in info.arm_fields:
                if field not in mine:
                    idle[field] = f"only for norm: {name} (this arm is norm: {self.norm})"
        _refuse_idle(self, idle)
        return self

    @field_validator("norm")
    @classmethod
    def _known_norm(cls, v: str) -> str:
        norm_info(v)  # raises ValueError naming the known ones
        return v

    @field_validator("p", mode="before")
    @classmethod
    def _p_value(cls, v: Any) -> Any:
        """1, 2 or inf: YAML's `inf`, `.inf`, `Infinity` and whole floats such as 1.0 too."""
        if isinstance(v, bool):
            raise ValueError("must be 1, 2 or inf, not true/false")
        if isinstance(v, str) and v.strip().lower().lstrip("+.") in ("inf", "infinity", "∞"):
            return "inf"
        if isinstance(v, float):
            if v == float("inf"):
                return "inf"
            if v.is_integer():
                return int(v)
        return v

    @property
    def norm_info(self) -> NormInfo:
        return norm_info(self.norm)

    @property
    def p_value(self) -> float:
        """`p` as a number (math.inf for 'inf')."""
        return float("inf") if self.p == "inf" else float(self.p)

    @property
    def has_affine(self) -> bool:
        """γ and β exist: the norm can have them and `affine` is on."""
        return self.affine and self.norm_info.affine

    @property
    def normalized(self) -> bool:
        """The arm normalizes its layers (any norm but 'none')."""
        return self.norm_info.normalizes

    @property
    def noisy(self) -> bool:
        return self.noise

    @property
    def is_baseline(self) -> bool:
        """The control arm every normalized arm is compared with: no normalization, no noise."""
        return not self.normalized and not self.noisy


LEGACY_KINDS = ("plain", "batchnorm", "noisy_batchnorm")  # `kind:` before the norm registry: presets


def _arm_from_item(item: Any) -> Any:
    if isinstance(item, str):
        if item not in ARM_PRESETS:
            raise ValueError(
                f"unknown arm {item!r}; presets are {', '.join(ARM_PRESETS)} "
                "(or give a mapping with name and norm)"
            )
        return {"name": item, **ARM_PRESETS[item]}
    if isinstance(item, dict) and "name" in item and "kind" not in item and "norm" not in item:
        preset = ARM_PRESETS.get(str(item["name"]), {})
        return {**preset, **item}
    return item


# --------------------------------------------------------------------------- training


class TrainSpec(Strict):
    """The one training loop's settings."""

    optimizer: Literal["sgd", "adam"] = Field("sgd", description="sgd or adam")
    # lr x gradient is a float32 step: an lr beyond float32's range (3.4e38) fails inside torch
    lr: Annotated[list[Annotated[PosFloat, Field(le=3.4e38)]], NoRepeats()] = Field(
        default_factory=lambda: [0.1], min_length=1, max_length=MAX_LIST,
        description="learning rate, or a list: every arm runs at each")
    momentum: Annotated[Float, Field(ge=0.0, lt=1.0)] = Field(
        0.0, description="optimizer: sgd only: heavy-ball momentum")
    weight_decay: NonNegFloat = Field(0.0, description="L2 weight decay (sgd and adam)")
    batch_size: BatchSize = Field(60, description="mini-batch size m (at most the training examples)")
    steps: Count = Field(1000, description="training steps (updates) per run")
    eval_every: Count = Field(
        100, description="evaluate every N steps; the train loss shown is the mean over the last N")
    target_accuracy: Annotated[Float, Field(gt=0.0, le=1.0)] | None = Field(
        0.9, description="classification: steps until held-out accuracy >= this (null: not measured)")
    target_loss: PosFloat | None = Field(
        None, description="regression: steps until held-out MSE <= this (null: not measured)")
    divergence_factor: Annotated[Float, Field(gt=1.0)] = Field(
        100.0, description="diverged: the loss is non-finite or above this x its first value")
    eval_train_examples: Count = Field(
        2000, description="train accuracy / loss in eval mode are measured on this many examples")
    schedule: Literal["constant", "step", "cosine"] = Field(
        "constant", description="learning rate over the run: constant, step (x gamma at each of "
        "milestones) or cosine (down to 0 at the last step); every lr in `lr` is the peak")
    milestones: list[Annotated[Int, Field(gt=0, le=MAX_COUNT)]] = Field(
        default_factory=list, max_length=MAX_LIST,
        description="schedule: step only: the updates after which the lr is multiplied by gamma")
    gamma: Annotated[Float, Field(gt=0.0, le=1.0)] = Field(
        0.1, description="schedule: step only: the factor at each milestone")
    warmup_steps: Annotated[Int, Field(ge=0, le=MAX_COUNT)] = Field(
        0, description="linear warmup: the lr rises from lr/N to lr over the first N updates (any "
        "schedule)")

    @model_validator(mode="after")
    def _no_idle_options(self) -> TrainSpec:
        if self.optimizer != "sgd":
            _refuse_idle(self, {"momentum": f"not used with optimizer: {self.optimizer} (it is SGD's "
                                            "momentum; Adam has its own)"})
        if self.schedule != "step":
            _refuse_idle(self, {
                "milestones": f"not used with schedule: {self.schedule} (only with schedule: step)",
                "gamma": f"not used with schedule: {self.schedule} (only with schedule: step)"})
        elif not self.milestones:
            raise ValueError("milestones: schedule: step needs at least one milestone (an update count)")
        if sorted(self.milestones) != list(self.milestones):
            raise ValueError("milestones: give them in increasing order")
        return self

    @field_validator("lr", mode="before")
    @classmethod
    def _lr_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, (int, float)) and not isinstance(v, bool) else v


class VerdictSpec(Strict):
    """How paired per-seed measurements become supported / refuted / inconclusive (SCIENCE.md)."""

    margin: Annotated[Float, Field(ge=0.0, lt=1.0)] = Field(
        0.10, description="the margin m: a metric points a way when its effect is beyond ±ln(1 + m) "
        "on the log-ratio scale (one-sided paired t-tests against it)")
    alpha: Fraction = Field(0.05, description="level of a claim's test after Holm's correction across the "
                            "command's claims")
    min_seeds_for_test: Annotated[Int, Field(ge=2, le=MAX_SEEDS)] = Field(
        3, description="paired seeds from which a verdict is confirmatory (fewer: exploratory)")
    budgets: Annotated[list[Annotated[Float, Field(gt=0.0, lt=1.0)]], NoRepeats()] = Field(
        default_factory=lambda: [0.4, 0.7], max_length=5,
        description="shorter budgets (fractions of the steps) at which verdicts are also given, from "
        "the same runs")


# --------------------------------------------------------------------------- the spec


class Spec(Strict):
    """A whole experiment: one model, several arms, a learning-rate x seed grid."""

    name: str = Field("experiment", description="a name for titles and reports")
    seed: Seed = Field(0, description="first training seed (initial weights, batch order, noise)")
    seeds: Annotated[Int, Field(gt=0, le=MAX_SEEDS)] = Field(
        1, description="runs seed, seed+1, ..., seed+seeds-1 (fewer than 3: exploratory verdicts)")
    device: str = Field("auto", description="auto (cuda if available), cpu, cuda or cuda:N")
    # torch intra-op CPU threads: auto picks by the per-step work of the model and batch size
    # (1 for every sample config: small models run at least as fast on 1, and 3-40x faster when
    # other processes share the cores); a number sets it; null keeps torch's default (all cores)
    threads: Literal["auto"] | Annotated[Int, Field(gt=0, le=MAX_THREADS)] | None = Field(
        "auto", description="torch CPU threads per run: auto (1 unless a step is large), N, or null "
        "(torch's default: every core)")
    # fused sweeps (bncli.runner.fused): the runs of one arm that differ only in seed and lr train
    # as one batched model; records say `numerics: fused` (float32 results differ from single runs
    # by rounding; float64 equal to 1e-10)
    fuse: Literal["auto", "off"] = Field(
        "auto", description="auto: train the seeds x lrs of an arm as one batched model where the model, "
        "optimizer and probes allow (records say numerics: fused); off: every run alone")
    # the dtype of the data, every model, probe and fused stack (runtime.precision). float32 sums
    # round differently on each CPU instruction set and BLAS (~1e-7 per operation, grown by training
    # to a few percent, O(1) in chaotic runs); float64 runs agree across CPUs to ~1e-9
    # (tests/test_golden.py), at ~2x the memory and more time
    precision: Literal["float32", "float64"] = Field(
        "float32", description="float32, or float64 for reproducing and debugging (results that agree "
        "across CPUs to ~1e-9; twice the memory, slower); records say which")
    data: DataSpec = Field(default_factory=DataSpec, description="where the examples come from")
    model: ModelSpec = Field(default_factory=ModelSpec, description="the network every arm shares")
    arms: list[ArmSpec] = Field(
        default_factory=lambda: [ArmSpec(name="plain"), ArmSpec(name="batchnorm", norm="batch")],
        min_length=1, max_length=MAX_LIST, json_schema_extra={"uniqueItems": True},
        description="presets (" + ", ".join(ARM_PRESETS) + ") or mappings with the keys below; names "
        "unique",
    )
    train: TrainSpec = Field(default_factory=TrainSpec, description="the one training loop")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec,
                                   description="each analysis subcommand's settings")
    verdict: VerdictSpec = Field(default_factory=VerdictSpec,
                                 description="how measurements become supported / refuted / inconclusive")

    @field_validator("arms", mode="before")
    @classmethod
    def _expand_presets(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if isinstance(v, list):
            return [_arm_from_item(item) for item in v]
        return v

    @field_validator("arms")
    @classmethod
    def _unique_arms(cls, v: list[ArmSpec]) -> list[ArmSpec]:
        names = [a.name for a in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(sorted(dup))}")
        return v

    @model_validator(mode="after")
    def _seeds_fit(self) -> Spec:
        if self.seed + self.seeds - 1 > MAX_SEED:
            raise ValueError(f"seeds: the last seed, seed + seeds - 1, must be at most 2**63 - 1 ({MAX_SEED})")
        return self

    @model_validator(mode="after")
    def _layer_names_exist(self) -> Spec:
        from bncli.models.registry import get_family

        family = get_family(self.model.kind)
        if not getattr(family, "WIDTHS_KNOWN", True):
            return self  # a user's module: its points are known once it is built
        widths = family.widths(self.model)
        depth = len(widths)
        names = [f"layer{i + 1}" for i in range(depth)]
        for field, wanted in (("ics", self.analysis.ics.layers), ("scale", self.analysis.scale.layers)):
            missing = [n for n in wanted or [] if n not in names]
            if missing:
                raise ValueError(
                    f"analysis.{field}.layers: no normalization point named {', '.join(missing)} "
                    f"(this model has layer1..layer{depth})"
                )
        for i, arm in enumerate(self.arms):
            problem = arm_width_problem(arm, widths, family.CONV)
            if problem is not None:
                raise ValueError(f"arms.{i}.{arm.norm_info.width_field}: {problem}")
        return self

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def arm(self, name: str) -> ArmSpec:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)


# --------------------------------------------------------------------------- loading


_MAX_PROBLEMS = 20  # one line stays readable; a list of 10^4 bad widths is one problem repeated


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) if loc else "(top level)"


def _inner_model(tp: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as list[ArmSpec] or AnalysisSpec | None."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The spec model a location points into: ('arms', 0) -> ArmSpec, ('train',) -> TrainSpec."""
    cls: type[BaseModel] = Spec
    for part in loc:
        if isinstance(part, int):
            continue  # a list item: its model is the list's
        field = cls.model_fields.get(str(part))
        inner = _inner_model(field.annotation) if field is not None else None
        if inner is None:
            return None
        cls = inner
    return cls


def _unknown_key(loc: tuple[Any, ...]) -> tuple[str | None, list[str]]:
    """The closest valid key to an unknown one (or None), and the valid keys at its location."""
    model = _model_at(loc[:-1]) if loc else None
    if model is None:
        return None, []
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return (close[0] if close else None), known


def _format_validation_error(source: str, exc: ValidationError) -> str:
    """Every problem pydantic found, joined into one line: `file: field: what is wrong; ...`.

    An unknown key gets "did you mean 'hidden'?" when a valid key is close; unknown keys with
    no close match are listed together with the keys valid at that place.
    """
    problems: list[str] = []
    strays: dict[tuple[Any, ...], tuple[int, list[str], list[str]]] = {}  # parent -> where, keys
    for err in exc.errors(include_url=False, include_input=False):
        # pydantic tags union/validator branches into the location; keep the user's field path
        loc = tuple(
            p for p in err.get("loc", ())
            if not (isinstance(p, str) and (p.startswith("function-") or "[" in p))
        )
        if err.get("type") == "extra_forbidden":
            close, known = _unknown_key(loc)
            if close is None and known:
                if loc[:-1] not in strays:
                    strays[loc[:-1]] = (len(problems), [], known)
                    problems.append("")  # filled in below, in the first stray's place
                strays[loc[:-1]][1].append(_format_loc(loc))
                continue
            msg = f"unknown key (did you mean {close!r}?)" if close else "unknown key"
        else:
            msg = str(err.get("msg", "invalid value"))
            msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        text = " ".join((f"{_format_loc(loc)}: {msg}" if loc else msg).split())  # one line
        if text not in problems:
            problems.append(text)
    for where, keys, known in strays.values():
        noun = "unknown key" if len(keys) == 1 else "unknown keys"
        problems[where] = f"{', '.join(keys)}: {noun} (valid here: {', '.join(known)})"
    shown = problems[:_MAX_PROBLEMS]
    if len(problems) > len(shown):
        shown.append(f"and {len(problems) - len(shown)} more problems")
    hint = " (`bncli spec --defaults` lists every key)" if strays or any(
        "unknown key" in p for p in problems) else ""
    return f"{source}: {'; '.join(shown)}{hint}"


def parse_spec(raw: Any, source: str = "spec") -> Spec:
    """Validate a mapping (already parsed YAML) into a Spec, or raise SpecError naming the field.
    (A spec a user wrote, a file or a batch cell, is also checked for keys that do nothing:
    load_spec, bncli.spec_checks.check_idle_keys.)"""
    if raw is None:
        raise SpecError(f"{source}: the file is empty (a spec needs at least one key, e.g. name)")
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: the top level must be a mapping of keys, not {type(raw).__name__}")
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(source, exc)) from None
    except RecursionError:  # a self-referencing alias (`a: &a [*a]`) that pydantic walks into
        raise SpecError(f"{source}: a value refers to itself (a recursive YAML alias)") from None
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file (a key that does nothing in it is an error too).
    Relative data paths resolve from the spec's folder."""
    p = Path(path)
    raw = load_yaml_file(p)
    spec = parse_spec(raw, str(p))
    check_idle_keys(spec, str(p))
    resolve_data_paths(spec, p.parent)
    return spec


def resolve_data_paths(spec: Spec, base_dir: Path) -> None:
    """data.path and data.root, when relative, resolve from `base_dir` (the spec file's folder)."""
    for field in ("path", "root"):
        value = getattr(spec.data, field)
        if value is not None and not value.is_absolute():
            setattr(spec.data, field, (base_dir / value).resolve())


def apply_overrides(spec: Spec, overrides: dict[str, Any], source: str = "command line") -> Spec:
    """Return a new Spec with dotted-path overrides (e.g. {'train.steps': 200}) validated.

    Only what the spec set is carried over (plus the overrides), so the new spec's
    model_fields_set still tells a key the user wrote from a default.
    """
    raw = spec.model_dump(mode="python", exclude_unset=True)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(value)
    try:
        new = Spec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(source, exc)) from None
    return new


def spec_to_yaml(spec: Spec) -> str:
    """The resolved spec as YAML (what a run actually used)."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def refresh_registry_choices() -> None:
    """Rebuild the spec models after a data source or model family was registered at run time:
    `data.source` and `model.kind` accept exactly the registered names (the registries call it
    through their listeners; the spec imports them, never the other way round)."""
    DataSpec.model_fields["source"].annotation = Literal[source_names()]  # type: ignore[valid-type]
    ModelSpec.model_fields["kind"].annotation = Literal[family_names()]  # type: ignore[valid-type]
    for model in (DataSpec, ModelSpec, AnalysisSpec, Spec):
        model.model_rebuild(force=True)


SOURCES.on_change(refresh_registry_choices)
FAMILIES.on_change(refresh_registry_choices)
SECTIONS.on_change(refresh_registry_choices)  # after spec_analysis's own listener: AnalysisSpec first
