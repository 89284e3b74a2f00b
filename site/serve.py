"""Serve a built site on loopback with the static server from the standard library.

No live reload on purpose: the site is generated from the store, so "serve" means build once, then look.
The same server (in a thread) backs the browser tests.

Bounded against clients that misbehave: every connection has a socket timeout (an idle or half-open one is
closed after `timeout` seconds), at most `max_threads` connections are handled at once (the rest wait in
the listen queue), a path Python cannot open (``/%00``, undecodable bytes) is a 400, and a client that
leaves mid-response ends its connection quietly (no BrokenPipe traceback).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

from featvis_site.text import printable

#: seconds a connection may stay silent before the server closes it
TIMEOUT = 15.0
#: connections handled at once; more wait in the listen queue until one ends or times out
MAX_THREADS = 64

#: types Python's mimetypes may not know (webp before 3.13) or gets wrong on some systems
TYPES = {
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".svg": "image/svg+xml",
    ".js": "text/javascript",
    ".json": "application/json",
    ".css": "text/css",
    ".xml": "application/xml",
}


class SiteHandler(SimpleHTTPRequestHandler):
    """Static files with correct media types and no request log spam."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def send_head(self) -> Any:
        """The file of a request path, or 400 for a path no file can have (NUL, unencodable characters)."""
        try:
            return super().send_head()
        except ValueError:  # open() and os.stat(): "embedded null byte", UnicodeEncodeError
            self.send_error(400, "Bad request path")
            return None


class SiteServer(ThreadingHTTPServer):
    """A threading server with a bounded number of threads and quiet disconnects."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: Any, max_threads: int = MAX_THREADS) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_threads)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()  # full: the accept loop waits, new connections queue in the kernel
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left or stalled needs no report; anything else is one line, not a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        print(printable(f"featvis site serve: request from {client_address[0]} failed: "
                        f"{type(error).__name__}: {error}"), file=sys.stderr, flush=True)


def make_server(site_dir: Path | str, host: str = "127.0.0.1", port: int = 8000, *, timeout: float = TIMEOUT,
                max_threads: int = MAX_THREADS) -> SiteServer:
    handler = functools.partial(type("Handler", (SiteHandler,), {"timeout": timeout}), directory=str(site_dir))
    return SiteServer((host, port), handler, max_threads)


@contextlib.contextmanager
def serve_in_thread(site_dir: Path | str, host: str = "127.0.0.1", port: int = 0, **bounds: Any) -> Iterator[str]:
    """Serve ``site_dir`` in a background thread; yields the base URL (ending in '/'). `bounds`: make_server's
    timeout and max_threads."""
    server = make_server(site_dir, host, port, **bounds)
    thread = threading.Thread(target=server.serve_forever, name="featvis-site-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def serve_forever(site_dir: Path | str, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted (Ctrl-C)."""
    with make_server(site_dir, host, port) as server:
        print(printable(f"serving {site_dir} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)"), flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
