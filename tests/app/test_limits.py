"""The HTTP server's limits against hostile and careless clients, on the real server as the image runs it
(`python -m real_estate_api.server`, real PostgreSQL, Redis and milvus-lite), with its timeouts shortened to 1 s:
oversized and too many headers, headers or a body that never finish, a connection that says nothing, more /v1
requests at once than a pod serves — each refused with its status and its connection closed, while /health answers
at once throughout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from real_estate_api.server import MAX_HEADER_BYTES, MAX_HEADERS
from tests.app.conftest import API_KEY, APP_DIR
from tests.services import free_port, wait_for_port

pytestmark = pytest.mark.server


@pytest.fixture
def limited(env):
    port = free_port()
    overrides = {"HEADER_TIMEOUT_SECONDS": "1", "BODY_READ_TIMEOUT_SECONDS": "1", "MAX_IN_FLIGHT_REQUESTS": "2"}
    process = subprocess.Popen([sys.executable, "-m", "real_estate_api.server", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=APP_DIR, env={**os.environ, **env, **overrides}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 60)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/ready").json()["status"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.1)
    yield port, base
    process.kill()
    process.wait()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _health_answers_at_once(base: str) -> None:
    started = time.monotonic()
    assert httpx.get(f"{base}/health", timeout=2).status_code == 200
    assert time.monotonic() - started < 0.5


def test_headers_over_the_size_limit_are_refused_and_the_connection_closed(limited):
    port, base = limited
    with _connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n\r\n")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431 ") and answer.endswith(b"request headers too large")
    # Just under the limit is served.
    response = httpx.get(f"{base}/health", headers={"X-Big": "a" * (MAX_HEADER_BYTES - 200)})
    assert response.status_code == 200


def test_one_header_of_megabytes_is_cut_off_early(limited):
    port, base = limited
    with _connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: ")
        sent = 0
        with pytest.raises(OSError):  # the server closes its end long before 8 MB
            for _ in range(128):
                sock.sendall(b"a" * 65536)
                sent += 65536
        assert sent < 4 * 1024 * 1024
    _health_answers_at_once(base)


def test_too_many_headers_are_refused(limited):
    port, base = limited
    def headers(count: int) -> bytes:
        return b"Host: x\r\nConnection: close\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(count - 2))

    with _connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n" + headers(MAX_HEADERS) + b"\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200 ")
    with _connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n" + headers(MAX_HEADERS + 1) + b"\r\n")
        answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 431 ") and answer.endswith(b"too many request headers")


def test_headers_that_never_finish_and_a_silent_connection_are_closed(limited):
    port, base = limited
    slow, silent = _connect(port), _connect(port)
    slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    _health_answers_at_once(base)
    assert _answer(slow).startswith(b"HTTP/1.1 408 ")
    assert _answer(silent).startswith(b"HTTP/1.1 408 ")
    assert 0.9 < time.monotonic() - started < 3
    slow.close()
    silent.close()


def test_many_slow_clients_do_not_stall_health(limited):
    port, base = limited
    clients = []
    for _ in range(200):
        sock = _connect(port)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        clients.append(sock)
    _health_answers_at_once(base)
    time.sleep(1.5)
    # Every one of them was answered 408 and closed.
    assert all(_answer(sock).startswith(b"HTTP/1.1 408 ") for sock in clients)
    for sock in clients:
        sock.close()


def _stalled_body(port: int) -> socket.socket:
    sock = _connect(port)
    sock.sendall(b"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\nX-API-Key: " + API_KEY.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user_id\":")
    return sock


def test_a_body_that_stops_arriving_is_refused_and_frees_its_slot(limited):
    port, base = limited
    first, second = _stalled_body(port), _stalled_body(port)
    time.sleep(0.2)
    # Two /v1 requests in progress, the pod's limit here: the third is told to retry, probes still answer.
    busy = httpx.post(f"{base}/v1/recommendations", json={}, headers={"X-API-Key": API_KEY})
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert busy.json()["error"] == "too many requests in progress; retry shortly"
    _health_answers_at_once(base)
    assert httpx.get(f"{base}/ready").status_code == 200
    # The stalled bodies end in 408 within the body timeout, and their slots are free again.
    for sock in (first, second):
        answer = _answer(sock)
        assert b" 408 " in answer.split(b"\r\n", 1)[0] and b"request body not received within 1 s" in answer
        sock.close()
    wish = {"user_id": "limits", "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3, "latitude": 31.2, "longitude": 121.5}
    assert httpx.post(f"{base}/v1/recommendations", json=wish, headers={"X-API-Key": API_KEY}).status_code == 200


def test_a_body_trickling_in_is_cut_at_one_deadline_for_the_whole_body(limited):
    port, _ = limited
    sock = _connect(port)
    sock.sendall(b"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\nX-API-Key: " + API_KEY.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    started = time.monotonic()
    sock.settimeout(0.3)
    answer = b""
    while not answer and time.monotonic() - started < 5:
        sock.sendall(b" ")  # a byte every 0.3 s: each within any per-chunk timeout, the whole far past 1 s
        try:
            answer = sock.recv(65536)
        except socket.timeout:
            pass
    assert b" 408 " in answer.split(b"\r\n", 1)[0] and b"connection: close" in answer.lower()
    assert time.monotonic() - started < 2
    sock.close()


def test_a_body_refused_unread_gets_no_second_answer(limited):
    port, _ = limited
    with _connect(port) as sock:
        # No key: 401 before the body is read; the body's bytes that follow are not a new request's headers.
        sock.sendall(b"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        sock.settimeout(3)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 401 ")
        sock.sendall(b"0123456789")  # the body, after its answer
        time.sleep(1.5)  # past the 1 s header timeout
        try:
            rest = sock.recv(65536)
        except socket.timeout:
            rest = b""
        assert b"HTTP/1.1" not in rest, rest


def test_a_pipelined_request_refused_does_not_cut_into_the_answer_before_it(limited):
    port, _ = limited
    with _connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n\r\n")
        answer = _answer(sock)
    # The first is answered whole; the second is not served, and nothing else is written before the close.
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"status":"ok"}') and answer.count(b"HTTP/1.1") == 1
