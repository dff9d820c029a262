"""An SLO breach alerts once: the first materialization that finds it claims a marker in the
object store (create-only), later ones (re-materializations, overlapping runs) find it taken.

The marker is claimed before the Notifier is called, so of two runs racing exactly one sends;
a process killed between the claim and the send loses that one alert (the check result and
the marker still name the breach).
"""

import json
from dataclasses import asdict

from resources.notifier import Alert, Notifier
from resources.storage.object_store import ObjectStore, PreconditionFailed

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
    try:
        store.put_if_absent(marker_key(day, check, prefix), json.dumps(asdict(alert)).encode())  # type: ignore[attr-defined]
    except PreconditionFailed:
        return False
    notifier.send(alert)
    return True
