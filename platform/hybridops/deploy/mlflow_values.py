"""``mlflow``: the tracking server, its artifact store, logins and metrics sidecar."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hybridops.deploy.value_blocks import (
    Autoscaling,
    Image,
    Persistence,
    Resources,
    Scheduling,
    Service,
    _Values,
    platform_image,
    resources,
)
from hybridops.settings import MlflowSettings


class MlflowS3(_Values):
    bucket: str | None = Field(None, description="s3://bucket/prefix of the artifacts.")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, Ceph...).")
    existing_secret: str | None = Field(
        None, description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )


class MlflowArtifacts(_Values):
    type: Literal["pvc", "s3"] = Field("pvc", description="Where the proxied artifacts live.")
    pvc: Persistence = Field(default_factory=lambda: Persistence(size="10Gi"))
    s3: MlflowS3 = Field(default_factory=MlflowS3)


class MlflowAuth(_Values):
    admin_username: str = Field(
        "admin",
        description=(
            "The admin: the MLflow pod's start-up (it creates the other logins and their grants) and an "
            "operator. Never Prometheus: it scrapes the pod's login-free metrics sidecar (mlflow.metrics)."
        ),
    )
    reader_username: str = Field(
        "inference",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description=(
            "A read-only login (not admin: the basic-auth app's default_permission READ) for the inference "
            "service; the MLflow pod creates it and sets its password at every start."
        ),
    )
    trainer_username: str = Field(
        "trainer",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description=(
            "The login of the run pods and user code (training, registration, promotion): not an admin; "
            "MANAGE on the experiment mlflow.experiment, the registered model mlflow.modelName and that "
            "model's alias lock, READ elsewhere. The MLflow pod creates it, sets its password and grants "
            "these at every start."
        ),
    )
    monitor_username: str = Field(
        "monitor",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description=(
            "The read-only login (default_permission READ) of the exporter. The MLflow pod creates it and "
            "sets its password at every start."
        ),
    )
    existing_secret: str | None = Field(
        None,
        description=(
            "Secret with the logins' passwords (admin, reader, trainer, monitor) and the basic-auth app's Flask "
            "secret key; default a generated one."
        ),
    )
    existing_secret_password_key: str = "password"
    existing_secret_reader_key: str = Field(
        "reader-password", description="Key of existingSecret holding the read-only login's password."
    )
    existing_secret_trainer_key: str = Field(
        "trainer-password", description="Key of existingSecret holding the trainer login's password."
    )
    existing_secret_monitor_key: str = Field(
        "monitor-password", description="Key of existingSecret holding the exporter login's password."
    )
    existing_secret_flask_key_key: str = Field(
        "flask-secret-key",
        description=(
            "Key of existingSecret holding the Flask secret key (MLFLOW_FLASK_SERVER_SECRET_KEY: CSRF and "
            "sessions of the basic-auth app, the same in every replica; MLflow refuses to start without it)."
        ),
    )
    cache_ttl_seconds: int = Field(
        60,
        ge=0,
        description=(
            "Seconds each MLflow worker caches a successful login (auth_cache_ttl_seconds). 0 checks the "
            "password hash (PBKDF2-SHA256, 1,000,000 rounds: about 0.5 s of CPU) on every request, which caps "
            "the server near two authenticated requests per second per core; with a cache, a changed password "
            "or deleted user may still be accepted this long by a worker that cached it."
        ),
    )


class MlflowMetrics(_Values):
    """The MLflow pod's ``metrics`` sidecar: MLflow's Prometheus metrics without a login.

    MLflow's basic-auth app answers its own /metrics 403 to every login but the admin's; the sidecar
    (``python -m hybridops.observability.multiprocess_metrics``, the MLflow image) serves the metric files
    MLflow's workers write to a shared emptyDir, and only Prometheus may reach its port (NetworkPolicy).
    """

    port: int = Field(
        9100, ge=1024, le=65535, description="Port of the sidecar's /metrics (Service port too)."
    )
    resources: Resources = Field(default_factory=lambda: resources("10m", "64Mi", "200m", "128Mi"))


class MlflowValues(_Values):
    enabled: bool = True
    image: Image = Field(default_factory=platform_image)
    replicas: int = Field(1, ge=1)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    resources: Resources = Field(default_factory=lambda: resources("200m", "512Mi", "1", "2Gi"))
    service: Service = Field(default_factory=lambda: Service(port=5000))
    database: str = "mlflow"
    auth_database: str = "mlflow_auth"
    experiment: str = Field(
        MlflowSettings.model_fields["experiment"].default,
        min_length=1,
        description=(
            "The experiment training logs to (settings.mlflow.experiment of every hybridops pod); the "
            "trainer login gets MANAGE on it."
        ),
    )
    model_name: str = Field(
        MlflowSettings.model_fields["model_name"].default,
        min_length=1,
        description=(
            "The registered model (settings.mlflow.model_name of every hybridops pod); the trainer login "
            "gets MANAGE on it and on its alias lock."
        ),
    )
    artifacts: MlflowArtifacts = Field(default_factory=MlflowArtifacts)
    auth: MlflowAuth = Field(default_factory=MlflowAuth)
    metrics: MlflowMetrics = Field(default_factory=MlflowMetrics)
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Extra Host headers accepted (the Service names always are)."
    )
    scheduling: Scheduling = Field(default_factory=Scheduling)
