"""The batch file's pydantic models (strict, like specs): defaults, comparisons, expectations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from bncli.spec_types import Strict

Verdict = Literal["supported", "refuted", "inconclusive", "exploratory"]
NAME = r"^[A-Za-z0-9_.\-]+$"
MAX_NAME = 100  # a comparison's name is a folder name under --out: short enough for any file system


class Expectation(Strict):
    """One declarative expectation; exactly one of `claim`, `metric`, `diverged`, `not_diverged`.

    - `{claim: C4, verdict: supported}` (or `verdict_in: [...]`), optionally `lr:`/`arm:` to pick
      one verdict, else every verdict of that claim must match;
    - `{metric: best_test_acc, arm: batchnorm, at_least: 0.9}` (`at_most`, or `less_than_arm:
      plain` / `greater_than_arm: plain` with a relative margin `by:`), at `lr:` or every lr;
    - `{diverged: plain, lr: 1.0}`: every seed of that arm diverged; `not_diverged`: none did.
    `command:` picks the command when the comparison runs several. `known_deviation: "<why>"`
    keeps a published prediction that bncli's measurement at this scale does not reproduce: when
    not met it is reported as skipped with that reason (JUnit <skipped>), never as passed.
    """

    claim: str | None = None  # a registered claim id (bncli.claims: C1 ... C9, a plugin's C10)
    verdict: Verdict | None = None
    verdict_in: list[Verdict] | None = None
    metric: str | None = None
    arm: str | None = None
    lr: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    less_than_arm: str | None = None
    greater_than_arm: str | None = None
    by: Annotated[float, Field(ge=0.0)] = 0.0
    diverged: str | None = None
    not_diverged: str | None = None
    command: str | None = None
    known_deviation: Annotated[str, Field(min_length=1)] | None = None

    @field_validator("claim")
    @classmethod
    def _registered_claim(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import bncli.analyses  # noqa: F401  (fills the claim registry)
        from bncli.claims import claim_ids

        if v not in claim_ids():
            raise ValueError(f"unknown claim {v!r} (registered: {', '.join(claim_ids())})")
        return v

    @model_validator(mode="after")
    def _one_form(self) -> Expectation:
        forms = [f for f in ("claim", "metric", "diverged", "not_diverged") if getattr(self, f) is not None]
        if len(forms) != 1:
            raise ValueError("give exactly one of claim, metric, diverged, not_diverged")
        if self.claim is not None and (self.verdict is None) == (self.verdict_in is None):
            raise ValueError("a claim expectation needs verdict or verdict_in (one of them)")
        if self.metric is not None:
            if self.arm is None:
                raise ValueError("a metric expectation needs arm")
            tests = [t for t in ("at_least", "at_most", "less_than_arm", "greater_than_arm")
                     if getattr(self, t) is not None]
            if len(tests) != 1:
                raise ValueError("a metric expectation needs one of at_least, at_most, less_than_arm, "
                                 "greater_than_arm")
        return self

    def describe(self) -> str:
        """The expectation as a user would say it, e.g. `C4 supported (lr 0.1, batchnorm)`."""
        where = ", ".join(x for x in (f"lr {self.lr:g}" if self.lr is not None else "",
                                       self.arm or "" if self.metric is None else "") if x)
        where = f" ({where})" if where else ""
        if self.claim is not None:
            want = self.verdict or " or ".join(self.verdict_in or [])
            return f"{self.claim} {want}{where}"
        if self.metric is not None:
            lr = f" at lr {self.lr:g}" if self.lr is not None else ""
            if self.at_least is not None:
                return f"{self.metric} of {self.arm} ≥ {self.at_least:g}{lr}"
            if self.at_most is not None:
                return f"{self.metric} of {self.arm} ≤ {self.at_most:g}{lr}"
            other = self.less_than_arm or self.greater_than_arm
            rel = "<" if self.less_than_arm else ">"
            by = f" by {self.by:.0%}" if self.by else ""
            return f"{self.metric} of {self.arm} {rel} {other}'s{by}{lr}"
        arm = self.diverged or self.not_diverged
        lr = f" at lr {self.lr:g}" if self.lr is not None else ""
        return f"{arm} {'diverges' if self.diverged else 'does not diverge'}{lr}"


class Comparison(Strict):
    """One comparison: a spec (file or inline), the command(s), overrides, a matrix, expectations."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME)]
    spec: str | dict[str, Any]
    command: str | list[str] = "train"
    overrides: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    expect: list[Expectation] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _not_a_path(cls, v: str) -> str:
        if v.startswith("."):  # `.` and `..` would write beside --out; `.x` would be hidden
            raise ValueError(f"{v!r}: a name may not start with '.' (it names a folder under --out)")
        return v

    @field_validator("command")
    @classmethod
    def _known_commands(cls, v: str | list[str]) -> str | list[str]:
        from bncli.analyses import BY_COMMAND

        cmds = [v] if isinstance(v, str) else v
        if not cmds:
            raise ValueError("give at least one command")
        bad = [c for c in cmds if c not in BY_COMMAND]
        if bad:
            raise ValueError(f"unknown command {bad[0]!r}; known: {', '.join(BY_COMMAND)}")
        return v

    @field_validator("matrix")
    @classmethod
    def _nonempty_axes(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for k, vals in v.items():
            if not vals:
                raise ValueError(f"matrix axis {k!r} has no values")
        return v

    @property
    def commands(self) -> list[str]:
        return [self.command] if isinstance(self.command, str) else list(self.command)


class BatchFile(Strict):
    """A batch file: `defaults` (spec fields for every comparison) and the `comparisons`."""

    defaults: dict[str, Any] = Field(default_factory=dict)
    comparisons: Annotated[list[Comparison], Field(min_length=1)]

    @field_validator("comparisons")
    @classmethod
    def _unique(cls, v: list[Comparison]) -> list[Comparison]:
        names = [c.name for c in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"comparison names must be unique; repeated: {', '.join(dup)}")
        return v
