"""Production refuses a TRAINER_IMAGE that a tag could move: the run that would launch the
trainer fails when it builds the launcher, naming the variable and its value; the definitions
still load without it (EnvVars resolve at run time)."""

import dagster as dg
import pytest

from resources.factory import build_resources
from resources.trainer.k8s_launcher import K8sTrainerLauncher
from resources.trainer.launcher import TrainerLauncher
from tests.support.gpu_inventory import INVENTORY

PINNED = "registry.example/ml-template@sha256:" + "d" * 64


@dg.asset
def uses_the_trainer(trainer: TrainerLauncher) -> dg.MaterializeResult:
    """Builds the launcher the way a training run does; launches nothing."""
    return dg.MaterializeResult(metadata={"image": trainer.image})


def _run_with(monkeypatch, image: str):
    monkeypatch.setenv("TRAINER_IMAGE", image)
    launcher = build_resources("prod")["trainer"]
    assert launcher.image == dg.EnvVar("TRAINER_IMAGE")  # unresolved until the run
    return dg.materialize([uses_the_trainer], resources={"trainer": launcher}, raise_on_error=False)


@pytest.mark.parametrize(
    "image",
    [
        "registry.example/ml-template:latest",
        "registry.example/ml-template:2026-11-06",
        "registry.example/ml-template@sha256:abc",  # not a whole digest
        "registry.example/ml-template@sha256:" + "D" * 64,  # digests are lowercase hex
    ],
)
def test_prod_refuses_a_trainer_image_not_pinned_by_digest(monkeypatch, image):
    result = _run_with(monkeypatch, image)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_failure]
    message = str(failure.event_specific_data.error.to_string())
    assert "TRAINER_IMAGE" in message and repr(image) in message
    assert "not pinned by digest" in message


def test_prod_accepts_a_trainer_image_pinned_by_digest(monkeypatch):
    result = _run_with(monkeypatch, PINNED)
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["image"].value == PINNED
    # A tag beside the digest is fine: the digest decides what is pulled.
    assert K8sTrainerLauncher(
        image="repo/x:v1@sha256:" + "e" * 64, inventory=INVENTORY
    ).image.startswith("repo/x:v1")


def test_a_launcher_built_in_code_is_checked_at_once():
    with pytest.raises(ValueError, match="'repo/x:latest', which is not pinned by digest"):
        K8sTrainerLauncher(image="repo/x:latest", inventory=INVENTORY)
