"""Kueue's objects, checked offline against the fields they use.

Kueue's CRDs ship with its release manifests and Helm chart, neither of which a package registry
(PyPI, npm) carries, and nothing may be downloaded at test time. So this is a strict schema of
the API kueue.x-k8s.io/v1beta1 as served by Kueue v0.9 and later (the version the manifests in
deployments/k8s/kueue/ target), written from Kueue's API types for the fields the manifests use:
their names, types and enumerations, and `additionalProperties: false` everywhere, so a
misspelt or unknown field, a wrong type or a value outside an enum fails as the API server's
structural schema would refuse it.
"""

from typing import Any

import jsonschema

KUEUE_API = "kueue.x-k8s.io/v1beta1"
KUEUE_VERSION = "v0.9+"

_NAME = {
    "type": "string",
    "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}
# A resource.Quantity: an integer or a string such as "16", "256Gi", "500m".
_QUANTITY = {
    "anyOf": [
        {"type": "integer"},
        {"type": "string", "pattern": r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+|[KMGTPE]i?|[munk])?$"},
    ]
}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}


def _strict(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _object(kind: str, spec: dict[str, Any] | None, namespaced: bool, **top: Any) -> dict:
    metadata = _strict(
        {"name": _NAME, "labels": _LABELS, "annotations": _LABELS}
        | ({"namespace": _NAME} if namespaced else {}),
        ("name", "namespace") if namespaced else ("name",),
    )
    properties = {
        "apiVersion": {"const": KUEUE_API},
        "kind": {"const": kind},
        "metadata": metadata,
        **top,
    }
    if spec is not None:
        properties["spec"] = spec
    return _strict(properties, ("apiVersion", "kind", "metadata"))


_SELECTOR = _strict(
    {
        "matchLabels": _LABELS,
        "matchExpressions": {
            "type": "array",
            "items": _strict(
                {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                ("key", "operator"),
            ),
        },
    }
)
_TOLERATION = _strict(
    {
        "key": {"type": "string"},
        "operator": {"enum": ["Equal", "Exists"]},
        "value": {"type": "string"},
        "effect": {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
        "tolerationSeconds": {"type": "integer"},
    }
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "ResourceFlavor": _object(
        "ResourceFlavor",
        _strict(
            {
                "nodeLabels": {**_LABELS, "maxProperties": 8},
                "nodeTaints": {
                    "type": "array",
                    "maxItems": 8,
                    "items": _strict(
                        {
                            "key": {"type": "string"},
                            "value": {"type": "string"},
                            "effect": {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
                        },
                        ("key", "effect"),
                    ),
                },
                "tolerations": {"type": "array", "maxItems": 8, "items": _TOLERATION},
                "topologyName": _NAME,
            }
        ),
        namespaced=False,
    ),
    "ClusterQueue": _object(
        "ClusterQueue",
        _strict(
            {
                "cohort": _NAME,
                "namespaceSelector": _SELECTOR,
                "queueingStrategy": {"enum": ["StrictFIFO", "BestEffortFIFO"]},
                "stopPolicy": {"enum": ["None", "Hold", "HoldAndDrain"]},
                "preemption": _strict(
                    {
                        "withinClusterQueue": {
                            "enum": ["Never", "LowerPriority", "LowerOrNewerEqualPriority"]
                        },
                        "reclaimWithinCohort": {"enum": ["Never", "LowerPriority", "Any"]},
                        "borrowWithinCohort": _strict(
                            {
                                "policy": {"enum": ["Never", "LowerPriority"]},
                                "maxPriorityThreshold": {"type": "integer"},
                            }
                        ),
                    }
                ),
                "resourceGroups": {
                    "type": "array",
                    "maxItems": 16,
                    "items": _strict(
                        {
                            "coveredResources": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 16,
                                "items": {"type": "string"},
                            },
                            "flavors": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 16,
                                "items": _strict(
                                    {
                                        "name": _NAME,
                                        "resources": {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": 16,
                                            "items": _strict(
                                                {
                                                    "name": {"type": "string"},
                                                    "nominalQuota": _QUANTITY,
                                                    "borrowingLimit": _QUANTITY,
                                                    "lendingLimit": _QUANTITY,
                                                },
                                                ("name", "nominalQuota"),
                                            ),
                                        },
                                    },
                                    ("name", "resources"),
                                ),
                            },
                        },
                        ("coveredResources", "flavors"),
                    ),
                },
            }
        ),
        namespaced=False,
    ),
    "LocalQueue": _object(
        "LocalQueue",
        _strict(
            {"clusterQueue": _NAME, "stopPolicy": {"enum": ["None", "Hold", "HoldAndDrain"]}},
            ("clusterQueue",),
        ),
        namespaced=True,
    ),
    "WorkloadPriorityClass": _object(
        "WorkloadPriorityClass",
        None,
        namespaced=False,
        value={"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
        description={"type": "string"},
    ),
}
SCHEMAS["WorkloadPriorityClass"]["required"].append("value")


def validate_kueue(document: dict[str, Any]) -> dict[str, Any]:
    """`document` after the schema of its kind accepted it (an unknown kind is refused)."""
    kind = document.get("kind")
    if kind not in SCHEMAS:
        raise jsonschema.ValidationError(f"not a Kueue kind these manifests use: {kind!r}")
    jsonschema.validate(document, SCHEMAS[kind])
    return document
