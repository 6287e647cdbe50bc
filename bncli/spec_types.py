"""The strict pydantic base and the constrained number types every spec model shares.

Every float in a spec is finite (the base config refuses inf and nan everywhere); `Int` and
`Float` also refuse booleans, which pydantic would otherwise read as 1 and 0 (`hidden: [true]`
would be a width-1 layer). Whole floats such as `steps: 1e4` are accepted for integers. The
upper bounds are far beyond any real experiment: they stop typos like `hidden: [1e6]` before
they turn into a 40-second, 6 GB failure, and keep every seed a valid 64-bit torch seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

MAX_SEED = 2**63 - 1  # torch.manual_seed and runtime.derive_seed take signed 64-bit seeds
MAX_WIDTH = 65_536  # units of a hidden layer, channels of a conv layer
MAX_LAYERS = 10_000  # hidden layers (the deepest nets in the literature have ~10,000)
MAX_COUNT = 10_000_000  # examples, steps, step intervals
MAX_BATCH = 1_000_000  # examples in one batch or probe batch
MAX_LIST = 1_000  # learning rates, alphas, arms in one spec
MAX_SEEDS = 100_000
MAX_THREADS = 1_024


def _no_bool_int(v: Any) -> Any:
    if isinstance(v, bool):
        raise PydanticCustomError("int_type", "Input should be an integer, not true/false")
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)  # 1e4 -> 10000; range checks then see the exact value
    return v


def _no_bool_float(v: Any) -> Any:
    if isinstance(v, bool):
        raise PydanticCustomError("float_type", "Input should be a number, not true/false")
    return v


Int = Annotated[int, BeforeValidator(_no_bool_int)]
Float = Annotated[float, BeforeValidator(_no_bool_float)]

PositiveInt = Annotated[Int, Field(gt=0)]
Count = Annotated[Int, Field(gt=0, le=MAX_COUNT)]  # steps, examples, every-N intervals
BatchSize = Annotated[Int, Field(gt=0, le=MAX_BATCH)]
Width = Annotated[Int, Field(gt=0, le=MAX_WIDTH)]
Seed = Annotated[Int, Field(ge=0, le=MAX_SEED)]

PositiveFloat = Annotated[Float, Field(gt=0.0)]
NonNegFloat = Annotated[Float, Field(ge=0.0)]
Fraction = Annotated[Float, Field(gt=0.0, lt=1.0)]


@dataclass(frozen=True)
class NoRepeats:
    """`Annotated[list[...], NoRepeats()]`: the items must differ. The loader names the repeated
    ones; the JSON Schema says uniqueItems (one constraint, both places)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_after_validator_function(_no_repeats, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        out = handler(schema)
        out["uniqueItems"] = True
        return out


def _no_repeats(v: list[Any]) -> list[Any]:
    seen: list[Any] = []
    repeated: list[Any] = []
    for x in v:
        if x in seen and x not in repeated:
            repeated.append(x)
        seen.append(x)
    if repeated:
        raise PydanticCustomError("unique", "each value once; repeated: {values}",
                                  {"values": ", ".join(map(str, repeated[:5]))})
    return v


@cache
def field_default(cls: type[BaseModel], name: str) -> Any:
    """A field's default, computed once (pydantic inspects the factory's signature on every call:
    most of a 10,000-cell batch's checking time); only compared, never handed out."""
    return cls.model_fields[name].get_default(call_default_factory=True)


class Strict(BaseModel):
    """Base: unknown keys are errors, floats must be finite, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
