"""The object-store policies in deployments/iam/ enforced, not only written: a loopback S3 server
(moto, in its own process with IAM enforcement on) holds one IAM user per identity with that
identity's policy file attached. Each component's job runs through the project's own store and
registry classes with only its own keys, and each forbidden write is refused by the server.

Every successful write is recorded per identity (boto3's after-call events on the real client):
a policy that grants a write its component never made fails the test (no unused write grants).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import dagster as dg
import pytest
from botocore.exceptions import ClientError

from assets.guard.records import ALERTS_PREFIX as GUARD_ALERTS
from assets.guard.records import claim_verdict, record_rollback
from assets.model.records import report_key
from assets.model.training_dataset import manifest_key
from assets.partitions import daily_partitions
from assets.publishing.gate_reports import (
    GateReport,
    read_approval_versioned,
    version_key,
    write_approval,
    write_report,
)
from assets.publishing.keys import partition_object_key
from assets.slo.alerts import marker_key
from contract.model_inputs import CTR_MODEL_INPUTS
from resources.factory import build_resources
from resources.registry.registry import DEFAULT_MODEL, PRODUCTION, ModelRegistry, promote
from resources.registry.serving import load_alias
from resources.storage.object_store import PreconditionFailed, S3ObjectStore, open_s3_store
from resources.trainer.preemption import clear_request, pending_requests, request_preemption
from tests.support.environment import free_port
from tests.support.registry import record
from training.checkpoint import MANIFEST_NAME, CheckpointManager
from training.config import TrainConfig
from training.loop import MODEL_FILE
from training.model import build_model
from training.progress import Heartbeat

POLICIES = Path(__file__).resolve().parents[2] / "deployments" / "iam"
IDENTITIES = ("code-server", "run-worker", "trainer", "promotion", "serving-reader", "slo-exporter")
# A moto server process and a pipeline's worth of S3 calls: about 15 s on the shared cores.
pytestmark = pytest.mark.slow
REGION = "us-east-1"
PREFIX = "ml/ctr"
DAY = "2025-01-10"
CHECKPOINT_PREFIX = f"checkpoints/model_checkpoint/{DAY}/fp-abc"
STEP_KEY = f"{CHECKPOINT_PREFIX}/step-000015"


@dataclass
class Credentials:
    access_key: str
    secret_key: str


@dataclass
class LoopbackIam:
    endpoint: str
    bucket: str
    credentials: dict[str, Credentials]
    # identity -> [(operation, bucket key)] of every write the server accepted
    writes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def store(self, identity: str) -> S3ObjectStore:
        creds = self.credentials[identity]
        store = open_s3_store(
            self.bucket,
            PREFIX,
            region=REGION,
            endpoint_url=self.endpoint,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
        )
        self.record_writes(identity, store)
        return store

    def record_writes(self, identity: str, store: S3ObjectStore) -> None:
        def remember_key(params, context, **_):
            context["recorded_key"] = params.get("Key")

        def after_call(http_response, model, context, **_):
            if model.name in ("PutObject", "DeleteObject") and http_response.status_code < 300:
                self.writes.setdefault(identity, []).append((model.name, context["recorded_key"]))

        store.client.meta.events.register("before-parameter-build.s3", remember_key)
        store.client.meta.events.register("after-call.s3", after_call)


def _policy_text(identity: str, bucket: str) -> str:
    text = (POLICIES / f"{identity}.json").read_text()
    return text.replace("REPLACE-WITH-BUCKET", bucket).replace("REPLACE-WITH-PREFIX", PREFIX)


def _wait_until_up(endpoint: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto_server did not answer on {endpoint} within 60 s")


@pytest.fixture(scope="module")
def iam() -> Iterator[LoopbackIam]:
    """moto in its own process: turning enforcement on is process-wide, and the suite's shared
    loopback S3 server (tests/conftest.py) must stay open."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "setup", "AWS_SECRET_ACCESS_KEY": "setup"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(endpoint, process)
        setup = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "setup"}
        setup["aws_secret_access_key"] = "setup"
        bucket = f"privilege-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", **setup).create_bucket(Bucket=bucket)
        iam_client = boto3.client("iam", **setup)
        credentials = {}
        for identity in IDENTITIES:
            iam_client.create_user(UserName=identity)
            iam_client.put_user_policy(
                UserName=identity,
                PolicyName=identity,
                PolicyDocument=_policy_text(identity, bucket),
            )
            key = iam_client.create_access_key(UserName=identity)["AccessKey"]
            credentials[identity] = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        # From here on every request is signed by an IAM user and checked against its policy.
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}
        )
        assert json.load(urllib.request.urlopen(request))["status"] == "ok"
        yield LoopbackIam(endpoint, bucket, credentials)
    finally:
        process.terminate()
        process.wait(timeout=30)


def refused(write: Callable[[], object]) -> bool:
    """True when the server answered AccessDenied (403), raised as is or as the cause of the
    registry's own error after its retries; any other outcome is not a refusal."""
    try:
        write()
    except Exception as err:  # the chain below decides; anything else re-raises
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, ClientError):
            cause = cause.__cause__
        if cause is None:
            raise
        return cause.response["Error"]["Code"] == "AccessDenied"
    return False


def _gate_report(asset: str, object_key: str, passed: bool = True) -> GateReport:
    return GateReport(
        asset=asset, partition=DAY, passed=passed, gates=[], blocking=[], object_key=object_key
    )


def _publish(store: S3ObjectStore, asset: str, layer: str, data: bytes) -> str:
    """What write-audit-publish writes for one approved partition: the version, the audit
    report and the approval pointer (create-only, then compare-and-swap)."""
    key = version_key(asset, DAY, daily_partitions, layer, hashlib.sha256(data).hexdigest())
    store.put_bytes(key, data)
    report = _gate_report(asset, key)
    write_report(store, report, daily_partitions)
    _, version = read_approval_versioned(store, asset, DAY, daily_partitions)
    write_approval(store, report, daily_partitions, expected_version=version)
    return key


def _run_worker_job(iam: LoopbackIam) -> dict[str, str]:
    store = iam.store("run-worker")
    source = _publish(store, "daily_events", "sources", b"events")
    old_feature = _publish(store, "user_features", "features", b"features v1")
    # A second approved version, then retention collects the first one.
    new_feature = version_key("user_features", DAY, daily_partitions, "features", "f" * 64)
    store.put_bytes(new_feature, b"features v2")
    store.delete(old_feature)
    superseded_source = _publish(store, "daily_events", "sources", b"events, redelivered")
    store.delete(superseded_source)
    dataset = {"inputs": [{"object_key": new_feature}, {"object_key": source}]}
    store.put_bytes(manifest_key(DAY), json.dumps(dataset).encode())
    for asset, layer in (("model_checkpoint", "models"), ("model_evaluation", "evaluations")):
        store.put_bytes(
            partition_object_key(asset, DAY, daily_partitions, layer=layer, suffix="json"), b"{}"
        )
    candidate = {"checkpoint_key": STEP_KEY}
    store.put_if_absent(report_key(candidate, "e" * 64), b"{}")
    store.put_if_absent(marker_key(DAY, "freshness"), b"{}")
    # The next-day guard's verdict, its rollback record and its alert marker.
    claim_verdict(store, {"partition": DAY})
    record_rollback(store, DAY, {"partition": DAY})
    store.put_if_absent(marker_key(DAY, "next_day_regression", GUARD_ALERTS), b"{}")
    request_preemption(iam.store("code-server"), "run-a", "run-b", "daily run waits")
    clear_request(store, "run-a")
    assert store.list_keys("features") == [new_feature]
    return {"feature": new_feature, "source": source}


def _trainer_job(iam: LoopbackIam) -> str:
    """Reads its manifest and inputs, saves resumable checkpoints (pruning the oldest) and its
    heartbeat; returns the sha256 of the last step's manifest (what the registry approves)."""
    store = iam.store("trainer")
    manifest = json.loads(store.get_bytes(manifest_key(DAY)))
    assert [store.get_bytes(i["object_key"]) for i in manifest["inputs"]]
    model = build_model(TrainConfig(model_inputs=CTR_MODEL_INPUTS))
    with CheckpointManager(store, CHECKPOINT_PREFIX, keep_last=2) as checkpoints:
        for step in (5, 10, 15):
            checkpoints.save(step, {MODEL_FILE: model.state_dict()}, fingerprint="fp-abc")
    Heartbeat(store, CHECKPOINT_PREFIX).write(15, "fp-abc")
    assert store.list_keys(f"{CHECKPOINT_PREFIX}/step-000005") == []
    return hashlib.sha256(store.get_bytes(f"{STEP_KEY}/{MANIFEST_NAME}")).hexdigest()


def _promotion_job(
    iam: LoopbackIam, monkeypatch: pytest.MonkeyPatch, manifest_sha256: str
) -> ModelRegistry:
    """Through resources/factory.py's production wiring: the registry's client is built from
    the PROMOTION_* credentials, while `storage` keeps the run worker's."""
    promotion, worker = iam.credentials["promotion"], iam.credentials["run-worker"]
    for name, value in {
        "AWS_REGION": REGION,
        "S3_ENDPOINT_URL": iam.endpoint,
        "AWS_ACCESS_KEY_ID": worker.access_key,
        "AWS_SECRET_ACCESS_KEY": worker.secret_key,
        "PROMOTION_AWS_ACCESS_KEY_ID": promotion.access_key,
        "PROMOTION_AWS_SECRET_ACCESS_KEY": promotion.secret_key,
        "OBJECT_STORE_BUCKET": iam.bucket,
        "OBJECT_STORE_PREFIX": PREFIX,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("PROMOTION_AWS_SESSION_TOKEN", raising=False)
    resources = build_resources("prod")
    with dg.build_resources(
        {"registry": resources["registry"], "storage": resources["storage"]}
    ) as built:
        models = built.registry.open_registry()
        worker_store = built.storage.open_store()
    iam.record_writes("promotion", models.store)
    iam.record_writes("run-worker", worker_store)
    for version in ("v1", "v2"):
        models.register(
            record(
                version,
                checkpoint_key=STEP_KEY,
                manifest_sha256=manifest_sha256,
                config=TrainConfig(model_inputs=CTR_MODEL_INPUTS).to_dict(),
            )
        )
    promote(models, "v1", None, "first model", "run-1")
    promote(models, "v2", "v1", "daily evaluation passed", "run-2")
    assert models.resolve(PRODUCTION).version == "v2"
    assert [m.to_version for m in models.history(PRODUCTION)] == ["v1", "v2"]
    # The pipeline's own client cannot write what the promotion client just did.
    assert refused(lambda: ModelRegistry(worker_store, DEFAULT_MODEL).register(record("v3")))
    return models


@pytest.fixture(scope="module")
def jobs_done(iam: LoopbackIam) -> dict:
    """Every component's job, in pipeline order, each with its own credentials only."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        inputs = _run_worker_job(iam)
        manifest_sha256 = _trainer_job(iam)
        models = _promotion_job(iam, monkeypatch, manifest_sha256)
    return {**inputs, "models": models}


def test_each_component_does_its_job_with_only_its_own_credentials(
    iam: LoopbackIam, jobs_done: dict
) -> None:
    serving = ModelRegistry(iam.store("serving-reader"), DEFAULT_MODEL)
    assert serving.verify(PRODUCTION) == []
    # The serving path end to end: alias, version record, checkpoint hashes, weights.
    served = load_alias(serving, PRODUCTION)
    assert served.version.version == "v2" and served.version.checkpoint_key == STEP_KEY
    code_server = iam.store("code-server")
    request_preemption(code_server, "run-c", "run-d", "daily run waits")
    assert pending_requests(code_server) == {"run-c"}
    assert set(iam.writes) == {"code-server", "run-worker", "trainer", "promotion"}


# identity -> {what the write would do: the write}; every one must be refused with AccessDenied.
def _forbidden_writes(iam: LoopbackIam, jobs_done: dict) -> dict[str, dict[str, Callable]]:
    models: ModelRegistry = jobs_done["models"]
    alias, version = models.alias_key(PRODUCTION), models.version_key("v1")
    history = models.history_key(PRODUCTION, 1)
    approved = partition_object_key(
        "user_features", DAY, daily_partitions, layer="approved", suffix="json"
    )
    feature = jobs_done["feature"]
    stores = {identity: iam.store(identity) for identity in IDENTITIES}
    trainer, worker = stores["trainer"], stores["run-worker"]
    promotion = models.store
    pointer = json.dumps({"move": "forged"}).encode()
    never_writes = {
        "move the production alias": lambda s: s.put_bytes(alias, pointer),
        "overwrite an approved partition": lambda s: s.put_bytes(feature, b"forged"),
        "move an approval pointer": lambda s: s.put_bytes(approved, b"forged"),
        "write a checkpoint": lambda s: s.put_bytes(f"{CHECKPOINT_PREFIX}/x", b"forged"),
    }
    return {
        "trainer": {
            "move the production alias": lambda: trainer.put_bytes(alias, pointer),
            "create the alias": lambda: trainer.put_if_absent(models.alias_key("staging"), pointer),
            "register a version": lambda: trainer.put_if_absent(models.version_key("v9"), b"{}"),
            "delete a version record": lambda: trainer.delete(version),
            "delete a history record": lambda: trainer.delete(history),
            "overwrite an approved partition": lambda: trainer.put_bytes(feature, b"forged"),
            "move an approval pointer": lambda: trainer.put_bytes(approved, b"forged"),
            "delete an approved partition": lambda: trainer.delete(feature),
            "write a training-set manifest": lambda: trainer.put_bytes(manifest_key(DAY), b"{}"),
        },
        "run-worker": {
            "move the production alias": lambda: worker.put_bytes(alias, pointer),
            "register a version": lambda: worker.put_if_absent(models.version_key("v9"), b"{}"),
            "delete a version record": lambda: worker.delete(version),
            "write a checkpoint": lambda: worker.put_bytes(f"{CHECKPOINT_PREFIX}/x", b"forged"),
        },
        "promotion": {
            "delete a version record": lambda: promotion.delete(version),
            "delete a history record": lambda: promotion.delete(history),
            "delete the alias pointer": lambda: promotion.delete(alias),
            "overwrite an approved partition": lambda: promotion.put_bytes(feature, b"forged"),
            "write a checkpoint": lambda: promotion.put_bytes(f"{CHECKPOINT_PREFIX}/x", b"x"),
        },
        "code-server": {
            name: (lambda w=w: w(stores["code-server"])) for name, w in never_writes.items()
        },
        "serving-reader": {
            **{name: (lambda w=w: w(stores["serving-reader"])) for name, w in never_writes.items()},
            "delete a version record": lambda: stores["serving-reader"].delete(version),
        },
        "slo-exporter": {
            **{name: (lambda w=w: w(stores["slo-exporter"])) for name, w in never_writes.items()},
            "read the production alias": lambda: stores["slo-exporter"].get_bytes(alias),
        },
    }


def test_every_forbidden_write_is_refused_by_the_server(iam: LoopbackIam, jobs_done: dict):
    forbidden = _forbidden_writes(iam, jobs_done)
    models: ModelRegistry = jobs_done["models"]
    before = {key: models.store.get_bytes(key) for key in models.store.list_keys("registry")}
    accepted = [
        f"{identity}: {what}"
        for identity, writes in forbidden.items()
        for what, write in writes.items()
        if not refused(write)
    ]
    assert accepted == []
    # Nothing moved: the registry and the approved partition hold what the jobs wrote.
    assert {key: models.store.get_bytes(key) for key in before} == before
    assert models.resolve(PRODUCTION).version == "v2"
    assert iam.store("run-worker").get_bytes(jobs_done["feature"]) == b"features v2"


def test_create_only_records_are_never_replaced_even_by_the_promotion_identity(
    jobs_done: dict,
) -> None:
    """The registry's own guard (S3's If-None-Match); AWS also enforces it in the policy's
    s3:if-none-match condition, which moto does not evaluate."""
    models: ModelRegistry = jobs_done["models"]
    with pytest.raises(PreconditionFailed):
        models.store.put_if_absent(models.version_key("v1"), b"{}")
    with pytest.raises(PreconditionFailed):
        models.store.put_if_absent(models.history_key(PRODUCTION, 1), b"{}")


def _write_grants(identity: str) -> list[tuple[str, re.Pattern]]:
    """The object patterns an identity's policy lets it put or delete, relative to the prefix."""
    policy = json.loads((POLICIES / f"{identity}.json").read_text())
    grants = []
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        if not {"s3:PutObject", "s3:DeleteObject"} & set(statement["Action"]):
            continue
        for action in {"s3:PutObject", "s3:DeleteObject"} & set(statement["Action"]):
            for resource in statement["Resource"]:
                path = resource.split("/REPLACE-WITH-PREFIX/", 1)[1]
                pattern = re.escape(path).replace(r"\*", ".*")
                grants.append((action.removeprefix("s3:"), re.compile(f"^{PREFIX}/{pattern}$")))
    return grants


@pytest.mark.parametrize("identity", IDENTITIES)
def test_no_identity_holds_a_write_grant_its_job_does_not_use(
    iam: LoopbackIam, jobs_done: dict, identity: str
) -> None:
    made = iam.writes.get(identity, [])
    unused = [
        f"{action} {pattern.pattern}"
        for action, pattern in _write_grants(identity)
        if not any(op == action and pattern.match(key) for op, key in made)
    ]
    assert unused == [], f"{identity} holds write grants its job never used: {unused}"
