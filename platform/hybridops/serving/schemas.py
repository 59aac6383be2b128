"""Request and response models of the prediction service (pydantic v2, with OpenAPI examples)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

# Departures the service scores: the calendar's limits (year 1, year 9999) overflow when a time is moved
# between New York and UTC; nothing outside these years has features or a meaning for the model.
FIRST_YEAR = 1900
LAST_YEAR = 2199

FLIGHT_EXAMPLE: dict[str, JsonValue] = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N14228",
    "sched_dep": "2013-01-01T05:15:00",
}


class Flight(BaseModel):
    """One scheduled flight; ``sched_dep`` is New York local time (like the data) unless it has an offset."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [FLIGHT_EXAMPLE]})

    carrier: str = Field(min_length=1, max_length=3, description="Two-letter carrier code (UA).")
    flight: int = Field(ge=0, le=99_999, description="Flight number.")
    origin: str = Field(min_length=3, max_length=4, description="Origin airport FAA code (EWR, JFK, LGA).")
    dest: str = Field(min_length=3, max_length=4, description="Destination airport FAA code.")
    tailnum: str | None = Field(None, max_length=10, description="Plane tail number; null when unknown.")
    sched_dep: datetime = Field(
        description=(
            f"Scheduled departure, New York local time (ISO 8601), or with an offset; years {FIRST_YEAR} to "
            f"{LAST_YEAR}."
        )
    )

    @field_validator("sched_dep")
    @classmethod
    def _in_calendar(cls, value: datetime) -> datetime:
        if not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise ValueError(f"year {value.year} is outside {FIRST_YEAR}..{LAST_YEAR}")
        return value


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"flights": [FLIGHT_EXAMPLE]}]})

    flights: list[Flight] = Field(
        min_length=1, description="The flights to score (1 to serving.max_flights)."
    )


class Prediction(BaseModel):
    delay_probability: float = Field(description="Probability of a departure delay of 15 minutes or more.")
    delayed: bool = Field(description="delay_probability >= 0.5 (the batch scoring threshold).")
    feature_age_seconds: dict[str, float | None] = Field(
        description=(
            "Per feature view: scheduled departure minus the event time of the online value (seconds; "
            "negative when the value is stamped after the departure); null when the entity is unknown."
        )
    )
    degraded: bool = Field(description="Some entity of the flight had no online features (defaults used).")


class ModelRef(BaseModel):
    name: str
    version: str


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "predictions": [
                        {
                            "delay_probability": 0.12,
                            "delayed": False,
                            "feature_age_seconds": {
                                "origin_weather": 900.0,
                                "carrier_delay_stats": 36900.0,
                                "route_delay_stats": 36900.0,
                                "plane_profile": 54900.0,
                            },
                            "degraded": False,
                        }
                    ],
                    "model": {"name": "flight_delay", "version": "3"},
                    "degraded": False,
                }
            ]
        }
    )

    predictions: list[Prediction]
    model: ModelRef
    degraded: bool = Field(description="Some flight was degraded (or the online store was unreachable).")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "flights[0].carrier: Field required", "errors": []}]}
    )

    detail: str
    errors: list[dict[str, object]] = Field(default_factory=list)
