"""The S3 API server on loopback that the tests and benchmarks run against: moto's S3, served
on several threads as moto's ThreadedMotoServer serves it, with each request applied as one step.

S3 applies a conditional write (`If-Match: <etag>`, `If-None-Match: *`) atomically: of several
writers holding the same ETag, one wins and the others get 412 or 409. moto 5.2.5
(`moto/s3/responses.py`, `put_object`) compares the ETag and stores the object in two steps
with no lock across them, so two overlapping writers can both be accepted (the promotion race
saw two winners of one round in CI). A read is not safe beside a write either: moto computes a
new object's ETag lazily, seeking and reading the object's buffer, and a GET that does the same
at that moment can read an empty body or cache the ETag of partial bytes. So every request is
applied under one lock here, held by the whole process as moto's state is: a conditional
write's check and store are one step against every other request, as on S3.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wsgi import get_input_stream

# moto's backends are the process's, whichever server a request comes through.
_ONE_STEP = threading.Lock()


class OneRequestAtATime:
    """WSGI middleware: each request applied whole, one at a time in the process."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        # The body is read before the lock is taken: a client that stalls mid-upload (or is
        # killed there) holds up its own request only, never every other one.
        body = get_input_stream(environ).read()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        with _ONE_STEP:
            # The response is drawn while the lock is held (one built lazily would otherwise
            # run part of the request after the lock is let go), and closed as WSGI asks.
            response = self._app(environ, start_response)
            try:
                return list(response)
            finally:
                if hasattr(response, "close"):
                    response.close()


class LoopbackS3:
    """moto's S3 on loopback (a free port unless one is given), each request one step;
    `start()`, then `stop()`."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        self._server: BaseWSGIServer = make_server(
            host,
            port,
            OneRequestAtATime(DomainDispatcherApplication(create_backend_app)),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        self.endpoint = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LoopbackS3:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
