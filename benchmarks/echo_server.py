"""A server that costs next to nothing, in its own process: ``python -m benchmarks.echo_server``.

It answers every request head with the same canned 200 (the body of a ``limits/`` call) and
does not parse HTTP, so that scenario 4b measures the client process alone. It prints one
JSON line, ``{"echo_url": ...}``, then serves until SIGTERM or SIGINT. The fake org itself
runs in another process: ``python -m sfoauth_async.testing serve`` (see ``_org.py``).
"""

from __future__ import annotations

import asyncio
import json
import signal

_ECHO_BODY = json.dumps({"DailyApiRequests": {"Max": 15000, "Remaining": 14999}}).encode()
_ECHO_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json;charset=UTF-8\r\n"
    b"Content-Length: " + str(len(_ECHO_BODY)).encode() + b"\r\n"
    b"\r\n" + _ECHO_BODY
)


class EchoProtocol(asyncio.Protocol):
    """Answers every request head with the same 200.

    Only for body-less requests (GET): it counts blank lines, it does not parse HTTP.
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        heads = buffer.count(b"\r\n\r\n")
        if heads:
            assert self._transport is not None
            self._transport.write(_ECHO_RESPONSE * heads)
            buffer = buffer[buffer.rfind(b"\r\n\r\n") + 4 :]
        self._buffer = buffer


async def serve() -> None:
    """Start, announce the URL on stdout, serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    echo = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
    port = echo.sockets[0].getsockname()[1]
    print(json.dumps({"echo_url": f"http://127.0.0.1:{port}"}), flush=True)
    try:
        await stop.wait()
    finally:
        echo.close()


if __name__ == "__main__":
    asyncio.run(serve())
