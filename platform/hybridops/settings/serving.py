"""Settings of the online prediction service (``serving``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hybridops.settings.section import _Section


class ServingSettings(_Section):
    """The online prediction service (``hybridops serve``)."""

    model_ref: str | None = Field(
        None, description="Registry reference of the served model; default <mlflow.model_name>@champion."
    )
    model_poll_seconds: float = Field(
        30.0, gt=0, description="How often the service checks whether the alias moved to another version."
    )
    registry_start_seconds: float = Field(
        10.0,
        gt=0,
        description="At start, how long the service waits for the registry before it serves the last good "
        "model of its disk cache (or starts unready); the registry is then retried in the background.",
    )
    max_body_bytes: int = Field(
        2_000_000, gt=0, description="Request bodies larger than this are refused with 413."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host headers the service answers besides localhost, 127.0.0.1 and [::1] (a name, an address, "
            "or *.suffix; the port is ignored); any other Host gets 400, so a page that rebinds its DNS name "
            "to the service cannot use it. The chart sets the Service names and the pod's IP. ['*'] allows any."
        ),
    )
    max_flights: int = Field(5000, ge=1, description="Most flights in one /predict request.")
    on_store_error: Literal["fail", "degrade"] = Field(
        "fail",
        description=(
            "When the online store is unreachable: fail (503 with Retry-After) or degrade (answer with "
            "missing features, every flight flagged degraded)."
        ),
    )
    retry_after_seconds: int = Field(5, ge=1, description="Retry-After of a 503 response.")
    store_timeout_seconds: float = Field(
        0.25,
        gt=0,
        description=(
            "Longest wait of one online-store operation: Redis connect and socket timeouts, SQLite's lock "
            "wait. Bounds the time to a 503 (or degraded answer) when the store is down or hung."
        ),
    )
    redis_retries: int = Field(
        1,
        ge=0,
        description=(
            "Immediate retries (no backoff) of a failed Redis read: 1 rides over a connection that Redis "
            "closed while idle; a request waits at most (redis_retries + 1) x 2 x store_timeout_seconds."
        ),
    )
    store_down_seconds: float = Field(
        1.0,
        ge=0,
        description=(
            "After a failed online-store read, /predict answers without trying the store for this long "
            "(503 or degraded defaults), so a hung store does not hold every request."
        ),
    )
    max_inflight_requests: int = Field(
        16,
        ge=1,
        description=(
            "Admission control: most /predict requests a process holds at once once their body is whole "
            "(queued or being answered); the excess is refused at once with 503 and Retry-After."
        ),
    )
    max_reading_requests: int = Field(
        64,
        ge=1,
        description=(
            "Most /predict requests whose body is being received at once (at most this many times "
            "max_body_bytes of memory); the excess is refused at once with 503 and Retry-After. A request "
            "counts against max_inflight_requests only once its body is whole, so slow senders do not take "
            "the places of requests ready to be answered."
        ),
    )
    request_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description=(
            "A request's head and body must arrive within this from its first byte (and a new connection "
            "must start one within it), or the connection is closed: bounds what slow or silent clients "
            "hold. Connections idle between requests are closed after 5 s (uvicorn's keep-alive timeout)."
        ),
    )
    max_head_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Longest request head (request line and headers); a longer one gets 431.",
    )
    max_queue_wait_seconds: float = Field(
        0.25,
        gt=0,
        description=(
            "An admitted /predict request that waited longer than this for its turn is refused with 503 and "
            "Retry-After instead of being answered late (bounds the latency of the admitted ones)."
        ),
    )
    drain_seconds: float = Field(
        5.0,
        ge=0,
        description=(
            "On SIGTERM: /readyz answers 503 (draining) while requests are still served for this long, so "
            "load balancers stop sending; then the server stops accepting and finishes in-flight requests."
        ),
    )
    shutdown_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="After the drain, longest wait for in-flight requests before the process exits anyway.",
    )
    log_sample_rate: float = Field(
        0.01, ge=0, le=1, description="Share of served feature vectors appended to the feature log."
    )
    log_flush_rows: int = Field(
        10_000, ge=1, description="Flush the feature log when it buffers this many rows."
    )
    log_flush_seconds: float = Field(60.0, gt=0, description="Flush the feature log at least this often.")
    log_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description=(
            "Most bytes of feature-log files one service process keeps: after each flush its oldest files are "
            "deleted until its own files fit (every process writes files of its own, so N replicas keep at "
            "most N times this on the shared volume)."
        ),
    )
