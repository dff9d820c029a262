"""A loopback stand-in for the Kubernetes API server: dagster-k8s's real launcher and step
handler talk to it through the real kubernetes client (a kubeconfig names it), and it records
every request: the verb and path (what RBAC must grant) and the body (what would be created).

It answers just enough for the calls to complete: a created object is echoed back, a Job's
status is "active", a pod list holds one pod of the Job, a delete succeeds. Nothing is
scheduled and nothing is enforced; Kubernetes' schemas are checked by kubernetes_schema.py.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import yaml

# /api/v1/namespaces/<ns>/<resource>[/<name>[/<subresource>]] and /apis/<group>/<version>/...
_PATH = re.compile(
    r"^/api(?:/v1|s/(?P<group>[^/]+)/[^/]+)/namespaces/(?P<namespace>[^/]+)/"
    r"(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_VERBS = {"POST": "create", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    body: dict | None

    def rbac(self) -> tuple[str, str, str, str]:
        """(namespace, API group, resource[/subresource], verb): what a Role must grant."""
        match = _PATH.match(urlsplit(self.path).path)
        if match is None:
            raise AssertionError(f"not a namespaced API path: {self.method} {self.path}")
        resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
        reads = "get" if match["name"] else "list"
        verb = reads if self.method == "GET" else _VERBS[self.method]
        return match["namespace"], match["group"] or "", resource, verb


@dataclass
class LoopbackKubernetesApi:
    kubeconfig: Path
    requests: list[ApiRequest] = field(default_factory=list)

    def created(self, resource: str) -> list[dict]:
        return [
            r.body
            for r in self.requests
            if r.method == "POST" and r.body is not None and r.rbac()[2] == resource
        ]


def _answer(request: ApiRequest) -> dict:
    if request.method == "POST":
        return request.body or {}
    if request.method == "DELETE":
        return {"kind": "Status", "apiVersion": "v1", "status": "Success"}
    _, group, resource, verb = request.rbac()
    name = urlsplit(request.path).path.rstrip("/").split("/")
    if resource == "jobs/status":
        return {
            "kind": "Job",
            "apiVersion": "batch/v1",
            "metadata": {"name": name[-2]},
            "status": {"active": 1},
        }
    if resource == "pods" and verb == "list":
        job = re.search(r"job-name%3D([^&]+)|job-name=([^&]+)", request.path)
        pod = (job.group(1) or job.group(2)) + "-a1b2c" if job else "pod-a1b2c"
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
            {"metadata": {"name": pod}}
        ]}  # fmt: skip
    raise AssertionError(f"unexpected request {request.method} {request.path} ({group})")


@contextmanager
def loopback_kubernetes_api(directory: Path) -> Iterator[LoopbackKubernetesApi]:
    api = LoopbackKubernetesApi(kubeconfig=directory / "kubeconfig.yaml")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = ApiRequest(self.command, self.path, json.loads(raw) if raw else None)
            api.requests.append(request)
            try:
                answer, status = _answer(request), 201 if self.command == "POST" else 200
            except AssertionError as err:
                answer, status = {"kind": "Status", "status": "Failure", "message": str(err)}, 501
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle

        def log_message(self, *args) -> None:  # the test reads the records, not stderr
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "loopback",
                        "cluster": {"server": f"http://127.0.0.1:{server.server_port}"},
                    }
                ],
                "users": [{"name": "loopback", "user": {}}],
                "contexts": [
                    {"name": "loopback", "context": {"cluster": "loopback", "user": "loopback"}}
                ],
                "current-context": "loopback",
            }
        )
    )
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
