"""An SLO breach alerts once: the first materialization that finds it claims a marker in the
object store (create-only), later ones (re-materializations, overlapping runs) find it taken.

The marker is claimed before the Notifier is called, so of two runs racing exactly one sends;
a process killed between the claim and the send loses that one alert (the check result and
the marker still name the breach). Every claim carries its own random token, so a refused
claim is settled by reading the marker: this claim's token there means an earlier attempt of
it landed (its answer lost) and it sends; another token means another run claimed it; no
marker at all (S3's 409, not applied) means the claim is sent again (`create_or_read`).
"""

import json
import uuid
from dataclasses import asdict

from resources.notifier import Alert, Notifier
from resources.storage.create_only import create_or_read
from resources.storage.object_store import ObjectStore

ALERTS_PREFIX = "slo/alerts"


def marker_key(day: str, check: str, prefix: str = ALERTS_PREFIX) -> str:
    return f"{prefix}/{day}/{check}.json"


def alert_once(
    store: ObjectStore,
    notifier: Notifier,
    day: str,
    check: str,
    alert: Alert,
    *,
    prefix: str = ALERTS_PREFIX,
) -> bool:
    """Send `alert` unless this day's breach of `check` was already announced (markers under
    `prefix`: each alerting capability has its own). True: sent."""
    claim = json.dumps({**asdict(alert), "claim": uuid.uuid4().hex}).encode()
    stored = create_or_read(store, marker_key(day, check, prefix), claim)  # type: ignore[arg-type]
    if stored is not None and stored != claim:
        return False
    notifier.send(alert)
    return True
