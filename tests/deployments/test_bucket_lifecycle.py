"""The bucket's lifecycle document collects what a killed upload leaves behind.

A process killed mid multipart upload (a preempted pod, an OOM kill) never aborts it, and the
run worker holds no `s3:AbortMultipartUpload` anyway: its parts would stay billed forever.
deployments/s3/lifecycle.json is the rule that aborts them; here S3's own request model (boto3
validates the document's shape) and the loopback S3 server accept it, and it covers every
prefix the identities' policies let them write.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3

DEPLOYMENTS = Path(__file__).resolve().parents[2] / "deployments"
PREFIX = "ml/ctr"


def _lifecycle(prefix: str) -> dict:
    text = (DEPLOYMENTS / "s3" / "lifecycle.json").read_text()
    return json.loads(text.replace("REPLACE-WITH-PREFIX", prefix))


def _written_prefixes() -> set[str]:
    """Every object-key pattern some identity may PutObject to, bucket removed."""
    patterns = set()
    for policy in (DEPLOYMENTS / "iam").glob("*.json"):
        for statement in json.loads(policy.read_text())["Statement"]:
            actions = statement["Action"]
            if "s3:PutObject" in (actions if isinstance(actions, list) else [actions]):
                resources = statement["Resource"]
                for arn in resources if isinstance(resources, list) else [resources]:
                    patterns.add(arn.split(":::", 1)[1].split("/", 1)[1])
    return patterns


def test_every_written_prefix_is_under_the_rule():
    [rule] = _lifecycle("REPLACE-WITH-PREFIX")["Rules"]
    written = _written_prefixes()
    assert written, "no identity writes anything: the policies were not read"
    uncovered = sorted(p for p in written if not p.startswith(rule["Filter"]["Prefix"]))
    assert not uncovered, f"writes outside the lifecycle rule's prefix: {uncovered}"
    assert rule["Status"] == "Enabled"
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1


def test_s3_accepts_the_rule(s3_endpoint: str, s3_bucket: str):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration=_lifecycle(PREFIX)
    )
    [rule] = client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rule["Filter"] == {"Prefix": f"{PREFIX}/"}
