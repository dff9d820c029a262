"""Alerts reach the log always and a webhook when configured; a dead webhook loses nothing."""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from resources.notifier import Alert, Notifier
from tests.support.environment import free_port

ALERT = Alert(
    kind="gate_failed",
    asset="daily_events",
    partition="2026-11-05",
    gate="completeness",
    observed="18 of 24 hours",
    threshold=">= 24 hours with events",
    summary="No events in hours [18..23].",
)


def test_webhook_receives_the_alert_as_json(caplog):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            """Keep the test output clean."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        Notifier(webhook_url=url).send(ALERT)
    thread.join(timeout=5)
    server.server_close()

    [payload] = received
    assert payload["partition"] == "2026-11-05" and payload["gate"] == "completeness"
    assert payload["observed"] == "18 of 24 hours"
    assert payload["threshold"] == ">= 24 hours with events"
    assert "daily_events partition 2026-11-05" in payload["text"]
    assert any("completeness" in r.getMessage() for r in caplog.records)


def test_unreachable_webhook_is_logged_not_raised(caplog):
    url = f"http://127.0.0.1:{free_port()}/hook"
    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        Notifier(webhook_url=url, timeout_seconds=1).send(ALERT)
    messages = [r.getMessage() for r in caplog.records]
    assert any("Alert webhook failed" in m and "2026-11-05" in m for m in messages)
