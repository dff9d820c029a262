"""The production storage path: inputs and checkpoints in S3 (moto's server on loopback,
spoken to over real HTTP by boto3 and pyarrow), including a corrupt newest checkpoint."""

from __future__ import annotations

import boto3
import pytest
import torch

from tests.support.trainer_process import INPUT_KEYS, TINY_CONFIG, trainer_args

# Starts real processes (trainer, daemon/webserver, make): `make test-fast` skips it.
pytestmark = pytest.mark.slow

CONFIG = {**TINY_CONFIG, "total_steps": 30, "checkpoint_every_steps": 10, "keep_last": 2}
STORE_PREFIX = "ml/ctr"
CHECKPOINTS = "checkpoints/training/2026-11-02/run"


def test_trains_checkpoints_and_falls_back_on_s3(
    s3_bucket, s3_endpoint, inputs, start_trainer, tmp_path
):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for key in INPUT_KEYS:
        data = (inputs.root / key).read_bytes()
        client.put_object(Bucket=s3_bucket, Key=f"{STORE_PREFIX}/{key}", Body=data)
    store_args = ["--s3-bucket", s3_bucket, "--s3-prefix", STORE_PREFIX]
    store_args += ["--s3-endpoint", s3_endpoint]
    args = trainer_args(inputs, CHECKPOINTS, CONFIG, store_args=store_args)

    first = start_trainer(args)
    assert first.finish() == 0, first.stderr[-3000:]
    assert first.summary()["checkpoint_key"] == f"{CHECKPOINTS}/step-000030"

    def step_keys() -> list[str]:
        listed = client.list_objects_v2(Bucket=s3_bucket, Prefix=f"{STORE_PREFIX}/{CHECKPOINTS}/")
        return sorted(item["Key"].rsplit("/", 2)[-2] for item in listed["Contents"])

    assert set(step_keys()) == {"step-000020", "step-000030", CHECKPOINTS.rsplit("/", 1)[-1]}
    model_key = f"{STORE_PREFIX}/{CHECKPOINTS}/step-000030/model.pt"
    final = client.get_object(Bucket=s3_bucket, Key=model_key)["Body"].read()
    client.put_object(Bucket=s3_bucket, Key=model_key, Body=final[: len(final) // 2])

    second = start_trainer(args)
    assert second.finish() == 0, second.stderr[-3000:]
    summary = second.summary()
    assert summary["resumed_from_step"] == 20  # step 30 failed verification
    assert "step-000030 is unusable" in second.stderr
    retrained = client.get_object(Bucket=s3_bucket, Key=model_key)["Body"].read()
    (tmp_path / "a.pt").write_bytes(final)
    (tmp_path / "b.pt").write_bytes(retrained)
    before = torch.load(tmp_path / "a.pt", weights_only=True)
    after = torch.load(tmp_path / "b.pt", weights_only=True)
    assert all(torch.equal(before[name], after[name]) for name in before)
