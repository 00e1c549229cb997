"""``python -m sfoauth_async.testing serve``: the fake org in a process of its own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sfoauth_async import (
    AsyncSession,
    ClientCredentialsFlow,
    JWTBearerFlow,
    PasswordFlow,
    RefreshTokenFlow,
)
from sfoauth_async.testing import FakeSalesforceOrg


@dataclass
class Server:
    """A running ``serve`` process and what it announced."""

    process: asyncio.subprocess.Process
    info: dict[str, Any]

    async def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        """Send ``signum``; the exit status and everything it wrote on stderr."""
        self.process.send_signal(signum)
        async with asyncio.timeout(30):
            out, err = await self.process.communicate()
        assert out == b"", "only one JSON line may be written on stdout"
        assert self.process.returncode is not None
        return self.process.returncode, err.decode()


Start = Callable[..., Awaitable[Server]]


async def spawn(*argv: str) -> asyncio.subprocess.Process:
    """Start ``python -m sfoauth_async.testing`` with ``argv``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sfoauth_async.testing",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
async def start_server() -> AsyncIterator[Start]:
    """Start ``serve`` processes and read their JSON line; any left running is killed after."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(*argv: str) -> Server:
        process = await spawn("serve", *argv)
        processes.append(process)
        assert process.stdout is not None
        async with asyncio.timeout(60):
            line = await process.stdout.readline()
        if not line:
            assert process.stderr is not None
            raise AssertionError((await process.stderr.read()).decode())
        return Server(process, json.loads(line))

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.communicate()


def consecutive_free_ports(count: int) -> int:
    """A port N with N .. N+count-1 free on 127.0.0.1 a moment ago."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return first
    pytest.fail("no run of free ports found")


async def control(server: Server, method: str, path: str, **query: str) -> Any:
    """Call the control site."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.info["control_url"] + path, params=query) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_serve_announces_credentials_that_work_for_every_grant(start_server: Start) -> None:
    """The printed credentials log in with each grant; SIGTERM then ends it with status 0."""
    server = await start_server("--session-lifetime", "90s")
    info = server.info
    assert info["session_lifetime_s"] == 90.0
    assert os.stat(info["private_key_file"]).st_mode & 0o777 == 0o600
    flows = [
        ClientCredentialsFlow(
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            login_url=info["my_domain_url"],
        ),
        JWTBearerFlow(
            client_id=info["client_id"],
            username=info["username"],
            private_key=Path(info["private_key_file"]),
            login_url=info["login_url"],
        ),
        RefreshTokenFlow(
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            refresh_token=info["refresh_token"],
            login_url=info["login_url"],
        ),
    ]
    with pytest.deprecated_call():
        flows.append(
            PasswordFlow(
                client_id=info["client_id"],
                client_secret=info["client_secret"],
                username=info["username"],
                password=info["password"],
                security_token=info["security_token"],
                login_url=info["login_url"],
            )
        )
    for flow in flows:
        async with AsyncSession(flow) as sf, sf.get("limits/") as resp:
            assert resp.status == 200, type(flow).__name__
            assert sf.token is not None
            assert sf.token.instance_url == info["instance_url"]
    stats = await control(server, "GET", "/stats")
    assert stats["token_requests"] == 4
    assert stats["api_requests"] == 4
    code, err = await server.stop()
    assert code == 0
    assert "Traceback" not in err
    assert not os.path.exists(info["private_key_file"])  # noqa: ASYNC240 - after the exit


async def test_control_site_expires_sessions_and_injects_faults(start_server: Start) -> None:
    """/expire makes the next call 401 (healed by a refresh); /fault refuses the next login."""
    server = await start_server()
    info = server.info
    flow = ClientCredentialsFlow(
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        login_url=info["my_domain_url"],
    )
    async with AsyncSession(flow) as sf:
        await sf.get_token()
        await control(server, "POST", "/expire")
        async with sf.get("limits/") as resp:
            assert resp.status == 200
        assert (await control(server, "GET", "/stats"))["unauthorized"] == 1
    await control(server, "POST", "/fault", error="invalid_grant", description="nope")
    async with aiohttp.ClientSession() as http:
        form = {
            "grant_type": "client_credentials",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
        }
        async with http.post(info["my_domain_url"] + "/services/oauth2/token", data=form) as r:
            assert r.status == 400
            assert (await r.json())["error"] == "invalid_grant"
    fresh = await control(server, "POST", "/refresh-token")
    assert fresh["refresh_token"] != info["refresh_token"]
    await control(server, "POST", "/reset")
    assert (await control(server, "GET", "/stats"))["token_requests"] == 0
    assert (await server.stop(signal.SIGINT))[0] == 0


async def test_fixed_port_uses_three_consecutive_ports(start_server: Start) -> None:
    """--port N: login on N, My Domain on N+1, control on N+2."""
    port = consecutive_free_ports(3)
    server = await start_server("--port", str(port))
    assert server.info["login_url"] == f"http://127.0.0.1:{port}"
    assert server.info["my_domain_url"] == f"http://127.0.0.1:{port + 1}"
    assert server.info["control_url"] == f"http://127.0.0.1:{port + 2}"
    assert (await server.stop())[0] == 0


@pytest.mark.parametrize("taken_offset", [0, 2])
async def test_port_in_use_exits_2_in_one_line(taken_offset: int) -> None:
    """A taken port among N..N+2: exit 2 with one line saying what to do, no JSON."""
    port = consecutive_free_ports(3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + taken_offset))
        taken.listen()
        process = await spawn("serve", "--port", str(port))
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    assert process.returncode == 2
    assert out == b""
    lines = err.decode().splitlines()
    assert lines == [
        f"serve: error: cannot listen on 127.0.0.1 around port {port} (in use). --port N uses "
        "N, N+1 and N+2: choose other ports, or leave --port out for free ones."
    ]


async def test_cli_against_the_standalone_org(start_server: Start, tmp_path: Path) -> None:
    """The sfoauth console script logs in to a served org with the printed credentials."""
    server = await start_server()
    info = server.info
    env = {
        "PATH": "/usr/bin:/bin",
        "SF_CLIENT_ID": info["client_id"],
        "SF_USERNAME": info["username"],
        "SF_PRIVATE_KEY_FILE": info["private_key_file"],
        "SF_LOGIN_URL": info["login_url"],
        "SFOAUTH_CONFIG_DIR": str(tmp_path),
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("sfoauth")),
        "check",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, out.decode() + err.decode()
    assert out.decode().splitlines()[-1] == "Everything works."


def test_bad_port_is_a_usage_error() -> None:
    """--port past 65533 is refused by the parser (N+2 must exist)."""
    from sfoauth_async.testing._server import main  # noqa: PLC0415

    with pytest.raises(SystemExit) as caught:
        main(["serve", "--port", "65534"])
    assert caught.value.code == 2


def test_fake_org_validates_its_ports() -> None:
    """FakeSalesforceOrg refuses a port outside 0..65535."""
    with pytest.raises(ValueError, match="login_port"):
        FakeSalesforceOrg(login_port=70000)
