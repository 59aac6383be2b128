"""Building blocks of the chart's values models (images, resources, services, scheduling).

Shared by :mod:`hybridops.deploy.values` and the component modules it composes (``hybridops_values``,
``dagster_values``, ``mlflow_values``, ``feast_values``, ``store_values``, ``monitoring_values``,
``ui_proxy_values``), so those can live in modules of their own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

Quantity = str | int
"""A Kubernetes resource quantity (``250m``, ``512Mi``, ``1``)."""


class _Values(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


# --- building blocks -------------------------------------------------------------------------------------


class Image(_Values):
    """A container image: ``<registry>/<repository>:<tag>[@<digest>]``."""

    registry: str | None = Field(None, description="Registry of this image; default global.image.registry.")
    repository: str = Field(description="Repository inside the registry.")
    tag: str | None = Field(
        None,
        json_schema_extra={"not": {"const": "latest"}},
        description="Pinned tag (never latest); empty means the chart's appVersion.",
    )
    digest: str | None = Field(
        None,
        pattern=r"^sha256:[a-f0-9]{64}$",
        description="Optional digest; when set the image is pulled by digest.",
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"

    @field_validator("tag")
    @classmethod
    def _no_latest(cls, tag: str | None) -> str | None:
        if tag == "latest":
            raise ValueError("the 'latest' tag is not allowed: pin a version")
        return tag


def platform_image() -> Image:
    return Image(repository="hybridops/platform")


class ResourceList(_Values):
    cpu: Quantity
    memory: Quantity


class Resources(_Values):
    """Requests and limits of a container (both are required on every container)."""

    requests: ResourceList
    limits: ResourceList


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Resources:
    return Resources(
        requests=ResourceList(cpu=cpu, memory=memory), limits=ResourceList(cpu=cpu_limit, memory=memory_limit)
    )


AccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"]


def _rwo() -> list[AccessMode]:
    return ["ReadWriteOnce"]


class Persistence(_Values):
    size: str = Field("8Gi", description="Size of the PersistentVolumeClaim.")
    storage_class: str | None = Field(None, description="StorageClass; default the cluster's default class.")
    access_modes: list[AccessMode] = Field(default_factory=_rwo)


class Service(_Values):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = Field(ge=1, le=65535)


class Autoscaling(_Values):
    """A HorizontalPodAutoscaler (autoscaling/v2) on CPU utilisation."""

    enabled: bool = False
    min_replicas: int = Field(2, ge=1)
    max_replicas: int = Field(6, ge=1)
    target_cpu_utilization: int = Field(70, ge=1, le=100, description="Average CPU utilisation target (%).")


class Scheduling(_Values):
    """Where pods go; shared by every workload."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    pod_labels: dict[str, str] = Field(default_factory=dict)


class ExternalService(_Values):
    """An existing service used instead of the bundled StatefulSet."""

    host: str | None = Field(None, description="Host name of the external service (required when disabled).")
    port: int = Field(ge=1, le=65535)
    existing_secret: str | None = Field(None, description="Secret holding the password.")
    existing_secret_password_key: str = Field("password", description="Key of the password in that Secret.")
