"""Serve a built site on loopback with the static server from the standard library.

No live reload on purpose: the site is generated from the store, so "serve" means build once, then look.
The same server (in a thread) backs the browser tests.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

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


def make_server(site_dir: Path | str, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    handler = functools.partial(SiteHandler, directory=str(site_dir))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


@contextlib.contextmanager
def serve_in_thread(site_dir: Path | str, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``site_dir`` in a background thread; yields the base URL (ending in '/')."""
    server = make_server(site_dir, host, port)
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
        print(f"serving {site_dir} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
