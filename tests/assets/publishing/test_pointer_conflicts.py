"""The approval pointer's compare-and-swap answered with S3's 409 (another conditional write in
flight, this one not applied). A 409 that left the pointer where it was is no lost race: the
publish sends the same swap again after a pause and, having won it uncontended, runs its
retention as usual; a 409 while another publish moved the pointer re-decides on top of it and
deletes nothing. Faults are injected at the local store's boundary and into the boto3 client
under the S3 store (moto on loopback)."""

import pytest

from assets.partitions import daily_partitions
from assets.publishing import write_audit_publish
from assets.publishing.gate_reports import approval_key, read_approval
from assets.publishing.write_audit_publish import (
    POINTER_ATTEMPTS,
    Evaluation,
    PublishPolicy,
    publish_if_passed,
)
from assets.quality.gates import GateResult
from tests.assets.publishing.test_retention import (
    ASSET,
    DAY,
    PREFIX,
    _assert_pointer_intact,
    _key,
    _named,
    _publish,
    _table,
)
from tests.support.store_faults import FaultyStores, KeyFault

POINTER = approval_key(ASSET, DAY, daily_partitions)


@pytest.fixture(params=["local", "s3"])
def stores(request, tmp_path) -> FaultyStores:
    return FaultyStores(request.param, request, tmp_path)


def test_a_409_on_the_first_pointer_is_sent_again(stores):
    fault = stores.inject(KeyFault(POINTER, "409"))

    _publish(stores.store, 10)

    assert fault.injected == 1
    _assert_pointer_intact(stores.plain, 10)


def test_a_409_that_moved_nothing_swaps_again_and_still_runs_retention(stores):
    """Before: the 409 counted as a lost race, so retention was skipped and the version beyond
    `keep_versions` stayed until some later publish."""
    _publish(stores.plain, 10, keep=1)
    fault = stores.inject(KeyFault(POINTER, "409"))

    _publish(stores.store, 11, keep=1)

    assert fault.injected == 1
    _assert_pointer_intact(stores.plain, 11)
    assert stores.plain.list_keys(PREFIX) == _named(stores.plain) == [_key(11)]


def test_a_409_while_another_publish_moves_the_pointer_re_decides_and_deletes_nothing(stores):
    _publish(stores.plain, 10)
    _publish(stores.plain, 11)
    fault = stores.inject(KeyFault(POINTER, "409", before=lambda: _publish(stores.plain, 13)))

    _publish(stores.store, 12)

    assert fault.injected == 1
    pointer = read_approval(stores.plain, ASSET, DAY, daily_partitions)
    assert pointer.object_key == _key(12) and pointer.superseded == [_key(13)]
    _assert_pointer_intact(stores.plain, 12)
    assert stores.plain.exists(_key(11))  # this publish lost a race: it collected nothing


def test_409s_that_never_stop_fail_the_publish_and_leave_the_approved_version(stores, monkeypatch):
    monkeypatch.setattr(write_audit_publish, "CONFLICT_DELAY_S", 0.0)  # the count is the point
    _publish(stores.plain, 10)
    fault = stores.inject(KeyFault(POINTER, "409", times=None))

    with pytest.raises(RuntimeError, match="409"):
        _publish(stores.store, 11)

    assert fault.injected == POINTER_ATTEMPTS
    _assert_pointer_intact(stores.plain, 10)


def test_a_409_on_taking_a_refused_day_offline_is_sent_again(stores):
    _publish(stores.plain, 10)
    fault = stores.inject(KeyFault(POINTER, "409"))
    refused = Evaluation(
        _table(11), [GateResult("row_count", False, "11", ">= 100", "too few rows")]
    )

    publish_if_passed(
        stores.store,
        ASSET,
        "features",
        DAY,
        refused,
        policy=PublishPolicy(on_refused_redelivery="take_offline"),
    )

    assert fault.injected == 1
    pointer = read_approval(stores.plain, ASSET, DAY, daily_partitions)
    assert not pointer.passed and pointer.superseded == [_key(10)]
