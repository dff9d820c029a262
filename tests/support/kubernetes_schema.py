"""Kubernetes' own schemas, offline: serialize a client model the way the API client sends it
and validate it with kubernetes-validate (its schemas ship inside the wheel; nothing is
fetched). Strict: a field the API does not know (a typo, a field of a newer version) fails."""

from typing import Any

import kubernetes_validate
from kubernetes.client import ApiClient

# The oldest Kubernetes the manifests are promised to work on (docs/deployment.md: Reproducible and
# deployable). What they use is older: Indexed Jobs are GA since 1.24, the completion-index
# annotation since 1.21.
KUBERNETES_VERSION = "1.30"
# The kind each model class is sent as, when the object itself does not say so (dagster-k8s's
# `build_pod_body` leaves apiVersion and kind to the API path it is posted to).
_KINDS = {"V1Pod": ("v1", "Pod"), "V1Job": ("batch/v1", "Job"), "V1Service": ("v1", "Service")}


def manifest(obj: Any) -> dict[str, Any]:
    """The JSON the Kubernetes client would send for `obj` (camelCase, no None fields)."""
    data = ApiClient().sanitize_for_serialization(obj)
    api_version, kind = _KINDS.get(type(obj).__name__, (None, None))
    if api_version:
        data.setdefault("apiVersion", api_version)
        data.setdefault("kind", kind)
    return data


def validated(obj: Any) -> dict[str, Any]:
    """`manifest(obj)`, after Kubernetes' schema for KUBERNETES_VERSION accepted it."""
    data = manifest(obj) if not isinstance(obj, dict) else obj
    kubernetes_validate.validate(data, KUBERNETES_VERSION, strict=True)
    return data
