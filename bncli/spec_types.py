"""The strict pydantic base and the constrained number types every spec model shares."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NonNegFloat = Annotated[float, Field(ge=0.0)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class Strict(BaseModel):
    """Base: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
