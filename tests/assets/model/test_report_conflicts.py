"""An evaluation report is written create-only under its content hash; a refusal that is not
"it exists" (S3's 409: another conditional write in flight, this one not applied) writes it
again instead of reading a report that is not there. Faults are injected at the local store's
boundary and into the boto3 client under the S3 store (moto on loopback)."""

import hashlib

import pytest

from assets.model.records import read_report, report_key, write_report
from resources.registry.registry import canonical_json
from resources.storage.object_store import ConditionalWriteConflict
from tests.support.store_faults import FaultyStores, KeyFault

CANDIDATE = {"checkpoint_key": "checkpoints/model_checkpoint/2026-11-05/fp/step-000100"}
REPORT = {"candidate": CANDIDATE, "passed": True, "metrics": {"eval_auc": 0.71}}
DIGEST = hashlib.sha256(canonical_json(REPORT)).hexdigest()
KEY = report_key(CANDIDATE, DIGEST)


@pytest.fixture(params=["local", "s3"])
def stores(request, tmp_path) -> FaultyStores:
    return FaultyStores(request.param, request, tmp_path)


def test_a_409_with_nothing_written_writes_the_report_again(stores):
    """Before: the 409 was taken for "it exists" and the read of the absent report failed."""
    fault = stores.inject(KeyFault(KEY, "409"))

    assert write_report(stores.store, REPORT) == (KEY, DIGEST)

    assert fault.injected == 1
    assert read_report(stores.plain, KEY, DIGEST) == REPORT


def test_a_409_while_the_same_report_is_written_by_another_attempt_is_that_report(stores):
    fault = stores.inject(KeyFault(KEY, "409", before=lambda: write_report(stores.plain, REPORT)))

    assert write_report(stores.store, REPORT) == (KEY, DIGEST)

    assert fault.injected == 1
    assert read_report(stores.plain, KEY, DIGEST) == REPORT


def test_other_content_under_the_key_is_refused_never_overwritten(stores):
    stores.plain.put_if_absent(KEY, b'{"someone": "else"}')

    with pytest.raises(RuntimeError, match="exists with other content"):
        write_report(stores.store, REPORT)

    assert stores.plain.get_bytes(KEY) == b'{"someone": "else"}'


def test_409s_that_never_stop_fail_naming_the_key(stores):
    stores.inject(KeyFault(KEY, "409", times=None))

    with pytest.raises(ConditionalWriteConflict, match=KEY):
        write_report(stores.store, REPORT)

    assert not stores.plain.exists(KEY)
