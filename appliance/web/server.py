"""Serving the tablet UI with a production WSGI server (cheroot): a thread pool sized for
tablets streaming video, optional TLS, a clean stop."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask

from appliance.errors import WebError
from appliance.web.tls import ensure_certificate

log = logging.getLogger(__name__)


class WebServer:
    """One server on host:port; `start()` serves in the background, `stop()` ends it."""

    def __init__(self, app: Flask, *, host: str, port: int, threads: int,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.tls = tls
        self._server = wsgi.Server((host, port), app, numthreads=threads,
                                   server_name="vigbox", timeout=30,
                                   accepted_queue_timeout=10)
        # A 4 GiB upload streams through; headers stay small.
        self._server.max_request_header_size = 64 * 1024
        if tls is not None:
            cert, key = ensure_certificate(*tls)
            self._server.ssl_adapter = BuiltinSSLAdapter(str(cert), str(key))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.bind_addr[1])

    @property
    def url(self) -> str:
        """Where a browser finds the UI."""
        host = self._server.bind_addr[0]
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        return f"{'https' if self.tls else 'http'}://{shown}:{self.port}/"

    def start(self) -> None:
        """Bind and serve in the background; WebError if the port cannot be had."""
        try:
            self._server.prepare()
        except OSError as e:
            raise WebError(f"cannot listen on {self._server.bind_addr}: {e.strerror or e}; "
                           "is another `vigbox web` running? use --port") from None
        self._thread = threading.Thread(target=self._server.serve, name="web", daemon=True)
        self._thread.start()
        log.info("tablet UI at %s", self.url)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop serving: open requests get a moment to finish; a request that will not
        (a long import) is abandoned after `timeout_s` rather than holding the stop."""
        stopper = threading.Thread(target=self._server.stop, name="web-stop", daemon=True)
        stopper.start()
        stopper.join(timeout_s)
        if stopper.is_alive():
            log.warning("the web server did not stop within %.0f s; leaving anyway", timeout_s)
        if self._thread is not None:
            self._thread.join(1)
