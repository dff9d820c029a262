"""Shared by the registry tests: version records without a checkpoint behind them."""

from resources.registry.registry import ModelVersion


def record(version: str, run_id: str = "run-test", **overrides) -> ModelVersion:
    fields = {
        "version": version,
        "day": "2025-01-10",
        "checkpoint_key": f"checkpoints/model_checkpoint/2025-01-10/{version}/step-000010",
        "checkpoint_manifest_uri": f"file:///nowhere/{version}/manifest.json",
        "manifest_sha256": "a" * 64,
        "config": {},
        "dataset": {"inputs": []},
        "fingerprint": f"fp-{version}",
        "parent_version": None,
        "code_version": "code",
        "environment": {"environment_sha256": "e" * 64},
        "image_digest": None,
        "torch_version": "2.13.0",
        "metrics": {"eval_auc": 0.7},
        "evaluation": {"passed": True},
        "run_id": run_id,
    }
    return ModelVersion(**{**fields, **overrides})
