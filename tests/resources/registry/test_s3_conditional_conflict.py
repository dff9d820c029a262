"""S3's 409 ConditionalRequestConflict on the alias compare-and-swap, against the real S3 API
on loopback (moto's S3, benchmarks/loopback_s3.py): the registry re-reads the pointer and
re-decides. If the alias still names the expected version it swaps again (one move, no gap);
if a concurrent writer moved it, the move is refused with the conflict and the other writer's
move stands.

moto never answers 409 by itself (and makes its check and write one step only because the
loopback server applies each request alone: see docs/registry.md), so a thin wrapper around
the real boto3 client answers the first conditional PUT of the pointer (`IfMatch`) with exactly the
ClientError botocore raises for S3's 409, optionally after letting a competing writer move
the alias first (what a real 409 means: another conditional write to the key was in flight).
"""

import pytest
from botocore.exceptions import ClientError

from resources.registry.registry import PRODUCTION, ModelRegistry, PromotionConflict, promote
from resources.storage.object_store import open_s3_store
from tests.support.registry import record
from tests.support.s3 import loopback_client


class ConflictOnce:
    """A boto3 S3 client whose first `put_object(IfMatch=…)` fails with 409."""

    def __init__(self, client, before=None):
        self._client = client
        self._before = before
        self.conflicts = 0
        self.conditional_puts = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def put_object(self, **kwargs):
        if "IfMatch" in kwargs:
            self.conditional_puts += 1
            if self.conflicts == 0:
                self.conflicts += 1
                if self._before is not None:
                    self._before()
                raise ClientError(
                    {
                        "Error": {
                            "Code": "ConditionalRequestConflict",
                            "Message": "A conflicting conditional operation is currently in "
                            "progress against this resource. Please try again.",
                        },
                        "ResponseMetadata": {"HTTPStatusCode": 409},
                    },
                    "PutObject",
                )
        return self._client.put_object(**kwargs)


def _registry(endpoint, bucket, client=None) -> ModelRegistry:
    store = open_s3_store(
        bucket,
        "ml",
        region="us-east-1",
        endpoint_url=endpoint,
        access_key="testing",
        secret_key="testing",
        client=client,
    )
    return ModelRegistry(store, "ctr")


@pytest.fixture
def seeded(s3_endpoint, s3_bucket):
    """v1, v2, v3 registered; production names v1 (move 1)."""
    plain = _registry(s3_endpoint, s3_bucket)
    for version in ("v1", "v2", "v3"):
        plain.register(record(version))
    promote(plain, "v1", None, "first", "r1")
    return plain


def test_409_while_the_alias_is_unchanged_rereads_and_swaps_once(seeded, s3_endpoint, s3_bucket):
    client = ConflictOnce(loopback_client(s3_endpoint))
    registry = _registry(s3_endpoint, s3_bucket, client)

    result = promote(registry, "v2", "v1", "v2 passed against v1", "r2")

    assert client.conflicts == 1 and client.conditional_puts == 2  # refused once, then swapped
    assert result.moved and result.move.sequence == 2
    assert seeded.resolve(PRODUCTION).version == "v2"
    moves = seeded.history(PRODUCTION)
    assert [(m.sequence, m.from_version, m.to_version) for m in moves] == [
        (1, None, "v1"),
        (2, "v1", "v2"),
    ]
    assert seeded.verify(PRODUCTION) == []


def test_409_after_a_concurrent_move_is_refused_as_a_conflict(seeded, s3_endpoint, s3_bucket):
    def competing_move():
        promote(seeded, "v3", "v1", "the other writer", "r3")

    client = ConflictOnce(loopback_client(s3_endpoint), before=competing_move)
    registry = _registry(s3_endpoint, s3_bucket, client)

    with pytest.raises(PromotionConflict) as raised:
        promote(registry, "v2", "v1", "v2 passed against v1", "r2")

    # Re-read, re-decided: the alias moved to v3, which v2 was never judged against.
    assert (raised.value.expected, raised.value.observed) == ("v1", "v3")
    assert "re-decide against 'v3'" in str(raised.value)
    assert client.conflicts == 1 and client.conditional_puts == 1  # no second, blind write
    assert seeded.resolve(PRODUCTION).version == "v3"
    assert [m.to_version for m in seeded.history(PRODUCTION)] == ["v1", "v3"]
    assert seeded.verify(PRODUCTION) == []
