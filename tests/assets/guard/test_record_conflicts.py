"""The guard's create-only records (the day's verdict, its rollback record) under S3's 409
(another conditional write in flight, this one not applied): sent again, never taken for
"already decided" or "already recorded". Faults are injected at the local store's boundary
and into the boto3 client under the S3 store (moto on loopback)."""

import pytest

from assets.guard.records import (
    claim_verdict,
    read_rollback,
    read_verdict,
    record_rollback,
    rollback_key,
    verdict_key,
)
from tests.support.store_faults import FaultyStores, KeyFault

DAY = "2026-11-05"
VERDICT = {"partition": DAY, "regressed": True, "run_id": "run-a"}
OTHER = {"partition": DAY, "regressed": False, "run_id": "run-b"}


@pytest.fixture(params=["local", "s3"])
def stores(request, tmp_path) -> FaultyStores:
    return FaultyStores(request.param, request, tmp_path)


def test_a_409_with_no_verdict_written_claims_the_day_again(stores):
    fault = stores.inject(KeyFault(verdict_key(DAY), "409"))

    assert claim_verdict(stores.store, VERDICT) == (VERDICT, True)

    assert fault.injected == 1
    assert read_verdict(stores.plain, DAY) == VERDICT


def test_a_409_while_another_run_decides_the_day_returns_its_verdict(stores):
    stores.inject(
        KeyFault(verdict_key(DAY), "409", before=lambda: claim_verdict(stores.plain, OTHER))
    )

    assert claim_verdict(stores.store, VERDICT) == (OTHER, False)


def test_a_claim_that_landed_with_its_answer_lost_is_this_runs_decision(stores):
    stores.inject(KeyFault(verdict_key(DAY), "412", applied=True))

    assert claim_verdict(stores.store, VERDICT) == (VERDICT, True)


def test_a_409_on_the_rollback_record_writes_it_instead_of_dropping_it(stores):
    """Before: every PreconditionFailed was taken for "recorded by an earlier attempt"."""
    rollback = {"from": "v2", "to": "v1", "run_id": "run-a"}
    fault = stores.inject(KeyFault(rollback_key(DAY), "409"))

    record_rollback(stores.store, DAY, rollback)

    assert fault.injected == 1
    assert read_rollback(stores.plain, DAY) == rollback
