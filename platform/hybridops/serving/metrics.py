"""Prometheus metrics of the prediction service, in a registry of their own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, values

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
PROBABILITY_BUCKETS = tuple(i / 10 for i in range(1, 11))


def use_process_local_values() -> None:
    """Keep metric values in this process's memory, whatever ``PROMETHEUS_MULTIPROC_DIR`` says.

    Importing Feast sets ``PROMETHEUS_MULTIPROC_DIR`` (a temporary directory of its own) before
    prometheus_client is imported, so every value of the service became a file-backed multiprocess
    value: each increment takes a lock, a ``getpid`` system call and an mmap write (about 210 of them
    for a 100-flight request, ~1 ms of CPU on the 2-core benchmark machine, against ~8 for one flight).
    ``hybridops serve`` is one process that exposes its own registry on ``/metrics`` and never
    aggregates across processes, so it gains nothing from them. For a process of its own only: it
    applies to every metric created afterwards in the process.
    """
    values.ValueClass = values.MutexValue


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "hybridops_serving_request_duration_seconds",
            "Time to answer POST /predict.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "hybridops_serving_requests", "POST /predict requests by HTTP status.", ["status"], registry=r
        )
        self.errors = Counter(
            "hybridops_serving_errors", "Failed /predict requests by reason.", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "hybridops_serving_batch_size", "Flights per request.", buckets=BATCH_BUCKETS, registry=r
        )
        self.predictions = Histogram(
            "hybridops_serving_prediction",
            "Distribution of served delay probabilities.",
            buckets=PROBABILITY_BUCKETS,
            registry=r,
        )
        self.flights = Counter("hybridops_serving_flights", "Flights scored.", registry=r)
        self.missing = Counter(
            "hybridops_serving_missing_features",
            "Flights whose entity had no online features, by feature view (rate: divide by flights_total).",
            ["view"],
            registry=r,
        )
        self.degraded_flights = Counter(
            "hybridops_serving_degraded_flights", "Flights answered with default features.", registry=r
        )
        self.degraded_responses = Counter(
            "hybridops_serving_degraded_responses", "Responses with degraded: true.", registry=r
        )
        self.expired = Counter(
            "hybridops_serving_expired_features",
            "Online values older than their feature view's ttl at departure, served as missing, by view.",
            ["view"],
            registry=r,
        )
        self.rejected = Counter(
            "hybridops_serving_rejected_requests",
            "POST /predict requests refused by admission control (503 + Retry-After), by reason "
            "(inflight: over serving.max_inflight_requests; queue_wait: waited over "
            "serving.max_queue_wait_seconds; reading: over serving.max_reading_requests bodies arriving).",
            ["reason"],
            registry=r,
        )
        self.inflight = Gauge(
            "hybridops_serving_inflight_requests",
            "POST /predict requests admitted and not yet answered.",
            registry=r,
        )
        self.reading = Gauge(
            "hybridops_serving_reading_requests",
            "POST /predict requests whose body is being received (not yet admitted).",
            registry=r,
        )
        self.closed_connections = Counter(
            "hybridops_serving_closed_connections",
            "Connections the service closed, by reason (timeout: a request not received whole within "
            "serving.request_timeout_seconds; head_too_large: a head over serving.max_head_bytes; malformed: a "
            "head refused with 400, 501 or 505).",
            ["reason"],
            registry=r,
        )
        self.store_errors = Counter(
            "hybridops_serving_store_errors", "Online-store reads that failed.", registry=r
        )
        self.model_info = Info("hybridops_serving_model", "The model being served.", registry=r)
        self.reloads = Counter(
            "hybridops_serving_model_reloads",
            "Model loads by source (registry, disk_cache) and result (success, failure).",
            ["source", "result"],
            registry=r,
        )
        self.loaded_at = Gauge(
            "hybridops_serving_model_loaded_timestamp_seconds",
            "Unix time the served model was loaded.",
            registry=r,
        )
        self.feature_log_rows = Counter(
            "hybridops_serving_feature_log_rows", "Feature vectors written to the feature log.", registry=r
        )
