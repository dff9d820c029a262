"""deployments/k8s/trainer-rbac.yaml grants every Kubernetes API call the trainer launchers
make (ours in resources/trainer, and dagster-k8s's Pipes client and API wrapper that they
call), and Kubernetes' schemas accept it. A new call that no rule covers fails here, naming it."""

import re
from pathlib import Path

import dagster_k8s
import yaml

from tests.support.environment import REPO_ROOT
from tests.support.kubernetes_schema import validated

RBAC = REPO_ROOT / "deployments" / "k8s" / "trainer-rbac.yaml"
LAUNCHER_SOURCES = [
    *sorted((REPO_ROOT / "resources" / "trainer").glob("*.py")),
    Path(dagster_k8s.__file__).parent / "pipes.py",
    Path(dagster_k8s.__file__).parent / "client.py",
]
# kubernetes-client method words -> (API group, resource) and RBAC verb.
RESOURCES = {
    "pod": ("", "pods"),
    "pod_log": ("", "pods/log"),
    "event": ("", "events"),
    "service": ("", "services"),
    "job": ("batch", "jobs"),
    "job_status": ("batch", "jobs/status"),
}
VERBS = {"create": "create", "read": "get", "list": "list", "delete": "delete", "patch": "patch"}
CALL = re.compile(
    r"\b(create|read|list|delete|patch|replace)_namespaced_([a-z_]+?)(?:_with_retries)?\("
)


def _documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(RBAC.read_text()) if doc]


def _granted() -> set[tuple[str, str, str]]:
    role = next(doc for doc in _documents() if doc["kind"] == "Role")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _calls() -> set[tuple[str, str]]:
    found = set()
    for source in LAUNCHER_SOURCES:
        found |= set(CALL.findall(source.read_text()))
    return found


def test_the_manifests_pass_kubernetes_schema():
    kinds = [validated(doc)["kind"] for doc in _documents()]
    assert kinds == ["Role", "RoleBinding"]


def test_every_api_call_of_the_launchers_is_granted():
    calls = _calls()
    # The ones the multi-node launcher cannot work without: the scan must see them.
    assert {("create", "service"), ("create", "job"), ("read", "pod_log")} <= calls
    granted = _granted()
    missing = []
    for action, kind in sorted(calls):
        assert kind in RESOURCES and action in VERBS, f"map {action}_namespaced_{kind} to RBAC"
        group, resource = RESOURCES[kind]
        if (group, resource, VERBS[action]) not in granted:
            missing.append(f"{VERBS[action]} {resource} (apiGroup '{group}')")
    assert not missing, f"trainer-rbac.yaml lacks: {missing}"


def test_the_binding_names_the_role_and_a_service_account():
    role, binding = _documents()
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
    assert [subject["kind"] for subject in binding["subjects"]] == ["ServiceAccount"]
