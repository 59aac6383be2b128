"""The base of every settings section: a section refuses keys it does not know (a typo is an error, not a
silently ignored setting), and numbers that are not finite (``inf`` passes every ``gt=0`` bound; a sigma,
a timeout or a threshold of infinity turns the check it sets off without saying so)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
