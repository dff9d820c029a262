"""The least-privilege audit (`make audit`, and `make test` with the rest of the suite): the
object-store policies in deployments/iam/, the Kubernetes manifests and Helm values, and what
dagster-k8s builds from them.

- Policies: no wildcard action, no bucket- or prefix-wide resource, listing only by prefix;
  only the promotion identity writes the registry, only the trainer writes checkpoints, the
  readers write nothing; every layer the pipeline's code writes is granted to the run worker
  and nothing else is (tests/deployments/test_iam_enforcement.py checks the same grants
  against the writes the components really make, on a loopback S3 with IAM enforcement).
- Pods: a service account each, with a cloud role where it touches the store; non-root, read-only
  root filesystem, no privilege escalation, every capability dropped; secrets only from Secret
  references or the service account's role, never as literal values.
- The webserver stays inside the cluster; the trainer pod never gets the promotion identity's
  Secret (which pods do: tests/deployments/test_promotion_pods.py, built by dagster-k8s).
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
)
from dagster_k8s.pipes import build_pod_body

from assets.model.model_checkpoint import checkpoint_prefix
from assets.slo.alerts import ALERTS_PREFIX
from resources.registry.promotion_identity import PROMOTION_SECRET
from resources.registry.registry import REGISTRY_PREFIX
from resources.trainer.k8s_launcher import K8sTrainerLauncher
from resources.trainer.preemption import PREFIX as PREEMPTIONS_PREFIX
from tests.support.environment import REPO_ROOT
from tests.support.gpu_inventory import INVENTORY
from tests.support.kubernetes_schema import validated

IAM = REPO_ROOT / "deployments" / "iam"
K8S = REPO_ROOT / "deployments" / "k8s"
IDENTITIES = ("code-server", "run-worker", "trainer", "promotion", "serving-reader", "slo-exporter")
OBJECTS = "arn:aws:s3:::REPLACE-WITH-BUCKET/REPLACE-WITH-PREFIX/"
IMAGE = "registry.example/ml-template@sha256:" + "b" * 64
IRSA = "eks.amazonaws.com/role-arn"
WRITES = {"s3:PutObject", "s3:DeleteObject"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|DSN|WEBHOOK", re.IGNORECASE)


def _policy(identity: str) -> dict:
    return json.loads((IAM / f"{identity}.json").read_text())


def _allowed(identity: str) -> list[dict]:
    return [s for s in _policy(identity)["Statement"] if s["Effect"] == "Allow"]


def _written_paths(identity: str) -> set[str]:
    """Object patterns (below the prefix) the identity may put or delete."""
    return {
        resource.removeprefix(OBJECTS)
        for statement in _allowed(identity)
        if WRITES & set(statement["Action"])
        for resource in statement["Resource"]
    }


def _layer(path: str) -> str:
    return path.split("/", 1)[0]


# Policies ------------------------------------------------------------------------------------


def test_one_policy_per_identity_and_nothing_else():
    assert sorted(p.stem for p in IAM.glob("*.json")) == sorted(IDENTITIES)
    for identity in IDENTITIES:
        assert _policy(identity)["Version"] == "2012-10-17"


@pytest.mark.parametrize("identity", IDENTITIES)
def test_no_wildcard_action_and_no_bucket_wide_resource(identity: str):
    for statement in _allowed(identity):
        assert not {"NotAction", "NotResource", "NotPrincipal"} & set(statement), statement
        for action in statement["Action"]:
            assert action.startswith("s3:") and "*" not in action, (identity, action)
        for resource in statement["Resource"]:
            if resource.startswith(OBJECTS):
                path = resource.removeprefix(OBJECTS)
                # A named layer first: never the whole bucket or the whole prefix.
                assert re.match(r"^[a-z_]+/", path), (identity, resource)
            else:
                assert resource == "arn:aws:s3:::REPLACE-WITH-BUCKET", (identity, resource)
                assert statement["Action"] == ["s3:ListBucket"], statement
                prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                assert prefixes and all(re.match(r"^REPLACE-WITH-PREFIX/[a-z_]+/", p)
                                        for p in prefixes), statement  # fmt: skip


def test_the_slo_exporter_and_serving_write_nothing():
    assert _written_paths("serving-reader") == set()
    assert _allowed("slo-exporter") == []
    [deny] = _policy("slo-exporter")["Statement"]
    assert deny["Effect"] == "Deny"


def test_only_the_promotion_identity_writes_the_registry_and_only_create_or_swap():
    for identity in IDENTITIES:
        layers = {_layer(path) for path in _written_paths(identity)}
        if identity == "promotion":
            assert layers == {REGISTRY_PREFIX}
        else:
            assert REGISTRY_PREFIX not in layers, identity
    for statement in _allowed("promotion"):
        if WRITES & set(statement["Action"]):
            # Conditional writes only (S3's If-None-Match / If-Match); never a delete.
            assert statement["Action"] == ["s3:PutObject"], statement
            [(key, value)] = statement["Condition"]["Null"].items()
            assert key in {"s3:if-none-match", "s3:if-match"} and value == "false"
            for resource in statement["Resource"]:
                kind = resource.removeprefix(OBJECTS).split("/")[2]
                assert (kind in {"versions", "history"}) <= (key == "s3:if-none-match")


def test_only_the_trainer_writes_checkpoints_and_only_its_own_prefix():
    own = checkpoint_prefix("2025-01-10", "f" * 64).rsplit("/", 2)[0]  # checkpoints/<asset>
    assert _written_paths("trainer") == {f"{own}/*"}
    for identity in set(IDENTITIES) - {"trainer"}:
        for path in _written_paths(identity):
            # The run worker writes evaluation reports beside a checkpoint, nothing of it.
            assert not path.startswith(own) or path == f"{own}/*/evaluations/*", identity


def test_the_run_worker_writes_exactly_the_layers_the_pipeline_writes():
    """A static scan of the code: every `layer=` an asset writes, the SLO alert markers, the
    evaluation reports, and the preemption requests it clears; nothing the code never writes."""
    code_layers = set()
    for module in (REPO_ROOT / "assets").rglob("*.py"):
        code_layers |= set(re.findall(r'layer="([a-z_]+)"', module.read_text()))
    assert code_layers >= {"sources", "features", "quality", "approved", "datasets"}
    expected = code_layers | {_layer(ALERTS_PREFIX), "checkpoints", PREEMPTIONS_PREFIX}
    assert {_layer(p) for p in _written_paths("run-worker")} == expected
    assert _written_paths("code-server") == {f"{PREEMPTIONS_PREFIX}/*"}


# Pods ----------------------------------------------------------------------------------------


def _values() -> dict:
    return yaml.safe_load((K8S / "values.yaml").read_text())


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _run_worker_job() -> dict:
    """The run worker's Job as the K8sRunLauncher builds it from the Helm values, validated by
    Kubernetes' schema (each job's own pods, by dagster-k8s itself: test_promotion_pods.py)."""
    launcher = _values()["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s_config = {_snake(k): v for k, v in launcher["runK8sConfig"].items()}
    config = UserDefinedDagsterK8sConfig.from_dict(run_k8s_config)
    return validated(
        construct_dagster_k8s_job(
            DagsterK8sJobConfig(
                job_image=IMAGE,
                dagster_home="/opt/dagster/dagster_home",
                instance_config_map="dagster-instance",
                env_secrets=[secret["name"] for secret in launcher["envSecrets"]],
            ),
            args=["dagster", "api", "execute_run", "{}"],
            job_name="dagster-run-0123abcd",
            user_defined_k8s_config=config,
            component="run_worker",
        )
    )


def _trainer_pod() -> dict:
    launcher = K8sTrainerLauncher(image=IMAGE, env_secret="trainer-env", inventory=INVENTORY)
    return validated(
        build_pod_body(
            pod_name="dagster-pipes-trainer",
            image=IMAGE,
            command=launcher.command(),
            env_vars={},
            base_pod_meta=None,
            base_pod_spec=launcher.pod_spec(),
        )
    )


def _slo_exporter_pod() -> dict:
    [deployment] = [
        doc for doc in yaml.safe_load_all((K8S / "slo-exporter.yaml").read_text())
        if doc["kind"] == "Deployment"
    ]  # fmt: skip
    return {"metadata": {}, "spec": deployment["spec"]["template"]["spec"]}


def _code_server_pod() -> dict:
    """The chart's deployment-user.yaml puts podSecurityContext, securityContext, volumes and
    volumeMounts of the deployment's values on its pod and container as written."""
    user = _values()["dagster-user-deployments"]
    [deployment] = user["deployments"]
    container = {
        "securityContext": deployment["securityContext"],
        "volumeMounts": deployment["volumeMounts"],
        "env": deployment["env"],
    }
    return {
        "metadata": {},
        "spec": {
            "serviceAccountName": user["serviceAccount"]["name"],
            "securityContext": deployment["podSecurityContext"],
            "containers": [container],
            "volumes": deployment["volumes"],
        },
    }


def _pods() -> dict[str, dict]:
    return {
        "code server": _code_server_pod(),
        "run worker": _run_worker_job()["spec"]["template"],
        "trainer": _trainer_pod(),
        "SLO exporter": _slo_exporter_pod(),
    }


@pytest.mark.parametrize("component", ["code server", "run worker", "trainer", "SLO exporter"])
def test_pods_run_non_root_read_only_without_escalation_or_capabilities(component: str):
    spec = _pods()[component]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    writable = {volume["name"] for volume in spec.get("volumes", []) if "emptyDir" in volume}
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        assert not security["capabilities"].get("add")
        # Python's scratch space is writable: an emptyDir, not the image.
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        assert mounts.get("/tmp") in writable, component


@pytest.mark.parametrize("component", ["code server", "run worker", "trainer", "SLO exporter"])
def test_secrets_come_only_from_secret_references(component: str):
    for container in _pods()[component]["spec"]["containers"]:
        for env in container.get("env") or []:
            if SECRET_NAME.search(env["name"]):
                assert "value" not in env, f"{component}: {env['name']} is a literal"
                assert env["valueFrom"]["secretKeyRef"]["name"], env
            assert not env["name"].startswith("AWS_"), f"{component}: its role is the credential"


def test_each_component_has_its_own_service_account_with_its_role():
    accounts = {
        "code server": _code_server_pod()["spec"]["serviceAccountName"],
        "run worker": _run_worker_job()["spec"]["template"]["spec"]["serviceAccountName"],
        "trainer": _trainer_pod()["spec"]["serviceAccountName"],
        "SLO exporter": _slo_exporter_pod()["spec"]["serviceAccountName"],
        "webserver and daemon": _values()["serviceAccount"]["name"],
    }
    assert len(set(accounts.values())) == len(accounts), accounts
    declared = {
        doc["metadata"]["name"]: doc["metadata"].get("annotations", {})
        for doc in yaml.safe_load_all((K8S / "service-accounts.yaml").read_text())
    }
    declared[accounts["code server"]] = _values()["dagster-user-deployments"]["serviceAccount"][
        "annotations"
    ]
    for component in ("code server", "run worker", "trainer"):
        role = declared[accounts[component]][IRSA]
        assert role.endswith(f"role/{accounts[component]}"), (component, role)
    assert IRSA in declared["ml-training-serving-reader"]
    assert IRSA not in declared[accounts["SLO exporter"]]  # it reads no object
    # The trainer pod and the exporter never call the Kubernetes API.
    assert _trainer_pod()["spec"]["automountServiceAccountToken"] is False
    assert _slo_exporter_pod()["spec"]["automountServiceAccountToken"] is False
    # Run pods take the run launcher's identity, not the code server's.
    [deployment] = _values()["dagster-user-deployments"]["deployments"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
    assert _values()["dagster-user-deployments"]["rbacEnabled"] is False
    [binding] = [
        d for d in yaml.safe_load_all((K8S / "trainer-rbac.yaml").read_text())
        if d["kind"] == "RoleBinding"
    ]  # fmt: skip
    assert [s["name"] for s in binding["subjects"]] == [accounts["run worker"]]


def test_the_webserver_stays_inside_the_cluster():
    values = _values()
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    assert values["ingress"]["enabled"] is False


def test_the_trainer_pod_holds_no_promotion_credentials():
    pod = _trainer_pod()
    [container] = pod["spec"]["containers"]
    names = {e["secretRef"]["name"] for e in container.get("envFrom", [])}
    assert PROMOTION_SECRET not in names
    assert not any("PROMOTION" in env["name"] for env in container.get("env") or [])
