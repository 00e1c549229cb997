"""The fake org in its own process: ``python -m benchmarks.org_server``.

Starts a `FakeSalesforceOrg` (no login rate limit, no daily API limit), a canned-response
"echo" server and a control endpoint, prints one JSON line with their URLs and the org's
credentials, then serves until its stdin closes. The benchmark client drives it through
`benchmarks._org.OrgProcess`.

Control endpoint (all ``POST`` but ``/stats``):

| path | effect |
|---|---|
| ``/expire`` | ``org.expire_all_sessions()`` |
| ``/reset`` | zero the stats, drop queued faults, ``token_delay_s = 0`` |
| ``/delay?s=0.5`` | ``org.token_delay_s = 0.5`` |
| ``/fault?error=E&description=D&count=N`` | the next N token requests answer 400 ``E`` |
| ``/stats`` (GET) | token requests, 401s served, API requests, most concurrent token requests |
| ``/seed?sobject=Account&count=N`` | ``org.seed_records(sobject, N)`` (generated on demand) |
| ``/records/clear`` | forget every stored and deleted record (seeded tables stay) |
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

from sfoauth_async.testing import FakeSalesforceOrg, Fault

_ECHO_BODY = json.dumps({"DailyApiRequests": {"Max": 15000, "Remaining": 14999}}).encode()
_ECHO_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json;charset=UTF-8\r\n"
    b"Content-Length: " + str(len(_ECHO_BODY)).encode() + b"\r\n"
    b"\r\n" + _ECHO_BODY
)


class EchoProtocol(asyncio.Protocol):
    """Answers every request head with the same 200: a server that costs next to nothing.

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


def control_app(org: FakeSalesforceOrg) -> web.Application:
    """The control endpoint's routes."""

    async def expire(_: web.Request) -> web.Response:
        org.expire_all_sessions()
        return web.json_response({"ok": True})

    async def reset(_: web.Request) -> web.Response:
        org.stats.reset()
        org.faults.token.clear()
        org.token_delay_s = 0.0
        return web.json_response({"ok": True})

    async def delay(request: web.Request) -> web.Response:
        org.token_delay_s = float(request.query["s"])
        return web.json_response({"ok": True})

    async def fault(request: web.Request) -> web.Response:
        fault = Fault.oauth_error(request.query["error"], request.query.get("description", ""))
        org.faults.token.push(*[fault] * int(request.query.get("count", "1")))
        return web.json_response({"ok": True})

    async def seed(request: web.Request) -> web.Response:
        org.seed_records(request.query["sobject"], int(request.query["count"]))
        return web.json_response({"ok": True})

    async def clear_records(_: web.Request) -> web.Response:
        org._records.clear()
        org._data.recycle_bin.clear()
        org._data.cursors.clear()
        org._data.forget_indexes()
        return web.json_response({"ok": True})

    async def stats(_: web.Request) -> web.Response:
        s = org.stats
        return web.json_response(
            {
                "token_requests": s.token_requests_total,
                "unauthorized": s.unauthorized,
                "api_requests": s.api_requests,
                "max_concurrent_token_requests": s.max_concurrent_token_requests,
            }
        )

    app = web.Application()
    app.router.add_post("/expire", expire)
    app.router.add_post("/reset", reset)
    app.router.add_post("/delay", delay)
    app.router.add_post("/fault", fault)
    app.router.add_get("/stats", stats)
    app.router.add_post("/seed", seed)
    app.router.add_post("/records/clear", clear_records)
    return app


async def serve() -> None:
    """Start everything, announce it on stdout, serve until stdin closes."""
    loop = asyncio.get_running_loop()
    async with FakeSalesforceOrg(login_rate_limit_per_hour=None) as org:
        org.api_limit = 10**12
        runner = web.AppRunner(control_app(org), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        control_port = runner.addresses[0][1]
        echo = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
        echo_port = echo.sockets[0].getsockname()[1]
        info = {
            "my_domain_url": org.my_domain_url,
            "login_url": org.login_url,
            "control_url": f"http://127.0.0.1:{control_port}",
            "echo_url": f"http://127.0.0.1:{echo_port}",
            "client_id": org.app.client_id,
            "client_secret": org.app.client_secret,
            "username": org.user.username,
            "password": org.user.password,
            "security_token": org.user.security_token,
            "private_key_pem": org.private_key_pem.decode(),
        }
        print(json.dumps(info), flush=True)
        try:
            await loop.run_in_executor(None, sys.stdin.buffer.read)
        finally:
            echo.close()
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve())
