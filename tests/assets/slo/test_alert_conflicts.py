"""An SLO breach alerts exactly once even when the marker's create-only write is refused for a
reason other than "it exists": S3's 409 (another conditional write in flight, this one not
applied) and a landed write whose answer was lost. Faults are injected at the local store's
boundary and into the boto3 client under the S3 store (moto on loopback)."""

import json

import pytest

from assets.slo.alerts import alert_once, marker_key
from resources.notifier import Alert
from resources.storage.object_store import ConditionalWriteConflict
from tests.support.store_faults import FaultyStores, KeyFault

DAY, CHECK = "2026-11-05", "freshness"
ALERT = Alert(kind="slo_breach", asset="pipeline_slo", partition=DAY, summary="late")


class Recorder:
    """A Notifier that keeps what it was asked to send."""

    def __init__(self):
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


@pytest.fixture(params=["local", "s3"])
def stores(request, tmp_path) -> FaultyStores:
    return FaultyStores(request.param, request, tmp_path)


def test_a_409_with_no_marker_written_claims_again_and_sends_once(stores):
    """Before: the 409 was taken for "already announced" and nobody was told."""
    fault = stores.inject(KeyFault(f"{CHECK}.json", "409"))
    notifier = Recorder()

    assert alert_once(stores.store, notifier, DAY, CHECK, ALERT)

    assert fault.injected == 1
    assert notifier.sent == [ALERT]
    assert json.loads(stores.plain.get_bytes(marker_key(DAY, CHECK)))["summary"] == "late"
    assert not alert_once(stores.plain, notifier, DAY, CHECK, ALERT)
    assert notifier.sent == [ALERT]


def test_a_409_while_another_run_claims_the_marker_leaves_the_alert_to_it(stores):
    other = Recorder()
    stores.inject(
        KeyFault(
            f"{CHECK}.json",
            "409",
            before=lambda: alert_once(stores.plain, other, DAY, CHECK, ALERT),
        )
    )
    notifier = Recorder()

    assert not alert_once(stores.store, notifier, DAY, CHECK, ALERT)

    assert other.sent == [ALERT] and notifier.sent == []


def test_a_claim_that_landed_with_its_answer_lost_still_sends(stores):
    """The write landed; the answer was a 412 (a client retry of a landed create-only PUT).
    The marker holds this claim's own token, so this call is the one that claimed it."""
    stores.inject(KeyFault(f"{CHECK}.json", "412", applied=True))
    notifier = Recorder()

    assert alert_once(stores.store, notifier, DAY, CHECK, ALERT)

    assert notifier.sent == [ALERT]


def test_409s_that_never_stop_fail_loudly_instead_of_dropping_the_alert(stores):
    stores.inject(KeyFault(f"{CHECK}.json", "409", times=None))
    notifier = Recorder()

    with pytest.raises(ConditionalWriteConflict, match=marker_key(DAY, CHECK)):
        alert_once(stores.store, notifier, DAY, CHECK, ALERT)

    assert notifier.sent == []
    assert not stores.plain.exists(marker_key(DAY, CHECK))
