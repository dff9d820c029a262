"""Alerts for people: always logged; also POSTed as JSON when a webhook URL is configured."""

import json
import logging
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass

import dagster as dg
from pydantic import Field

logger = logging.getLogger("ml_template.alerts")


@dataclass(frozen=True)
class Alert:
    kind: str  # "gate_failed" | "retries_exhausted"
    asset: str
    partition: str
    summary: str
    gate: str = ""
    observed: str = ""
    threshold: str = ""
    run_id: str = ""

    def text(self) -> str:
        detail = f" {self.gate}: observed {self.observed}, threshold {self.threshold}."
        return (
            f"[{self.kind}] {self.asset} partition {self.partition}:"
            + (detail if self.gate else "")
            + f" {self.summary}"
        )


class Notifier(dg.ConfigurableResource):
    """Where gate failures and exhausted retries are announced."""

    webhook_url: str | None = Field(
        default=None, description="Optional URL receiving each alert as a JSON POST (EnvVar)."
    )
    timeout_seconds: float = 5.0

    def send(self, alert: Alert) -> None:
        logger.error(alert.text())
        if not self.webhook_url:
            return
        request = urllib.request.Request(
            self.webhook_url,
            data=json.dumps({**asdict(alert), "text": alert.text()}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds):
                pass
        except (urllib.error.URLError, TimeoutError) as err:
            # A broken alert channel must not hide the original failure; it is logged instead.
            logger.error("Alert webhook failed (%s); alert was: %s", err, alert.text())
