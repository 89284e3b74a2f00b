"""`featvis site serve` against clients that misbehave (issue 19, items 2.7 and 2.10): `GET /%00` gave a
traceback, idle half-open connections were never timed out (1,000 held 1,002 threads), and a client that left
mid-response printed a BrokenPipe traceback. Raw sockets on 127.0.0.1 only, every loop and wait bounded.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from featvis_site.serve import serve_in_thread


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "sub").mkdir(parents=True)
    (site / "index.html").write_text("<p>home</p>")
    (site / "sub" / "index.html").write_text("<p>sub</p>")
    (site / "big.bin").write_bytes(b"\x00" * 8_000_000)
    (tmp_path / "secret.txt").write_text("SECRET-OUTSIDE-THE-SITE")
    return site


def port_of(base: str) -> int:
    return int(base.rstrip("/").rsplit(":", 1)[1])


def exchange(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send `raw`, read until the server closes (HTTP/1.0), at most `timeout` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), response[:80]
    return int(response.split(b" ", 2)[1])


ODD = [b"/%00", b"/sub%00", b"/%ed%a0%80", b"/%ff%fe", b"/" + b"a" * 20000,
       b"/..%2f..%2fsecret.txt", b"/../secret.txt", b"//secret.txt", b"/%2e%2e/secret.txt", b"/sub/..%00",
       b"/\\..\\secret.txt", b"/index.html%00.png"]


def test_odd_paths_are_4xx_without_a_traceback(site: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with serve_in_thread(site, timeout=2) as base:
        port = port_of(base)
        for path in ODD:
            response = exchange(port, b"GET " + path + b" HTTP/1.0\r\n\r\n")
            assert 400 <= status(response) < 500, (path, response[:80])
            assert b"SECRET" not in response
        assert b"<p>home</p>" in exchange(port, b"GET / HTTP/1.0\r\n\r\n")  # and it still serves
    err = capfd.readouterr().err
    assert "Traceback" not in err and err == "", err


def test_idle_connections_time_out_and_the_server_still_answers(site: Path) -> None:
    with serve_in_thread(site, timeout=1) as base:
        port = port_of(base)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(50)]
        half = idle[:10]
        for sock in half:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # half a request, then silence
        started = time.monotonic()
        assert b"<p>home</p>" in exchange(port, b"GET / HTTP/1.0\r\n\r\n", timeout=3)
        assert time.monotonic() - started < 1.0  # answered at once, not after the idle ones left
        closed = 0
        for sock in idle:  # the server closes each one itself, after its timeout
            try:
                data = sock.recv(1024)
                closed += data == b"" or data.startswith(b"HTTP/1.")
            except (ConnectionError, TimeoutError):
                pass
            sock.close()
        assert closed == 50
        assert time.monotonic() - started < 4.5


def test_threads_are_bounded(site: Path) -> None:
    before = threading.active_count()
    with serve_in_thread(site, timeout=1, max_threads=4) as base:
        port = port_of(base)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=6) for _ in range(12)]
        time.sleep(0.3)
        assert threading.active_count() <= before + 1 + 4  # the accept loop and four handlers, not twelve
        started = time.monotonic()
        assert b"<p>home</p>" in exchange(port, b"GET / HTTP/1.0\r\n\r\n", timeout=8)  # queued, then served
        assert time.monotonic() - started < 6
        for sock in idle:
            sock.close()


def test_a_client_that_leaves_mid_response_prints_nothing(site: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with serve_in_thread(site, timeout=2) as base:
        port = port_of(base)
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
            sock.recv(1000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
            sock.close()
        time.sleep(0.5)
        assert b"<p>sub</p>" in exchange(port, b"GET /sub/ HTTP/1.0\r\n\r\n")
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err, err
