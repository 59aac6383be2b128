"""The base of every settings section: a section refuses keys it does not know (a typo is an error, not a
silently ignored setting)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
