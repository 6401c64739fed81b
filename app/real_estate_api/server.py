"""The HTTP server: uvicorn (httptools) with the limits a public API needs, which uvicorn 0.54 does not set.

uvicorn closes idle keep-alive connections, but nothing bounds a request's headers: a connection that sends nothing,
or its headers a byte at a time, is held forever, and one header of megabytes is buffered whole before the app
sees it. Here each request's headers must arrive within HEADER_TIMEOUT_SECONDS of its first byte (of the connection,
for the first request) and within MAX_HEADER_BYTES (request line included) and MAX_HEADERS, else the answer is 408
or 431 and the connection is closed. The body has its own limits in the app (size, and a deadline per chunk:
app.GuardRequests).

The image runs `python -m real_estate_api.server --host 0.0.0.0 --port 8000` (uvicorn's command line cannot name a
protocol class of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Optional

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from real_estate_api import logs
from real_estate_api.config import SettingsError, env_seconds

MAX_HEADER_BYTES = 32 * 1024
MAX_HEADERS = 100
# HEADER_TIMEOUT_SECONDS in the environment (tests shorten it).
HEADER_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
# uvicorn finishes in-flight requests on SIGTERM for up to this long (the pod allows 30: components/api.py).
GRACEFUL_SHUTDOWN_SECONDS = 25
REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """A request is "reading headers" from its first byte (for the first request: from the connection) until its
    headers are complete; only then are its bytes counted and timed. Bytes after that — a body, or the rest of a body
    the app refused without reading — are not headers."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: Optional[asyncio.TimerHandle] = None
        self._refused = False
        self._start_headers()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counted = self._reading_headers
        if counted:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._reading_headers and not counted:
            # A request began in this chunk (keep-alive): its bytes so far, at most this chunk.
            self._header_bytes += len(data)
        if self._reading_headers and self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(431, "request headers too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._reading_headers:
            self._start_headers()

    def on_url(self, url: bytes) -> None:
        self._header_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_size += len(name) + len(value)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._disarm()
        # Headers that arrived whole in one read are measured here; those still arriving, in data_received.
        if self._refused:
            raise _Refused()  # refused while the one before it was answered: this one is not served either
        refusal = ("too many request headers" if self._header_count > MAX_HEADERS
                   else "request headers too large" if self._header_size > MAX_HEADER_BYTES else None)
        if refusal:
            self._refuse(431, refusal)
            # Stops the parser: the rest of this connection's bytes are never read.
            raise _Refused()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # The parser's error after a refusal above: the answer is already decided.
        if not self._refused:
            super().send_400_response(msg)

    def _start_headers(self) -> None:
        self._reading_headers = True
        self._header_bytes = self._header_count = self._header_size = 0
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._reading_headers:
            self._refuse(408, "request headers not received in time")

    def _refuse(self, status: int, message: str) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request refused while the one before it is still answered: no answer of ours in the middle
            # of that one's; the connection closes once it is complete.
            self.cycle.keep_alive = False
            self.transport.pause_reading()
            return
        body = message.encode()
        self.transport.write(b"".join([
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status]),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]))
        self.transport.close()


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="The API's HTTP server (uvicorn with request limits).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    global HEADER_TIMEOUT_SECONDS
    try:
        HEADER_TIMEOUT_SECONDS = env_seconds(os.environ, "HEADER_TIMEOUT_SECONDS", HEADER_TIMEOUT_SECONDS, high=60)
    except SettingsError as error:
        logs.configure()
        logging.getLogger("real_estate_api").critical(f"invalid settings: {error}")
        sys.exit(2)
    uvicorn.run("main:app", host=args.host, port=args.port, http=GuardedHttpToolsProtocol, access_log=False,
                timeout_keep_alive=KEEP_ALIVE_SECONDS, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                log_level=args.log_level)


if __name__ == "__main__":
    main()
