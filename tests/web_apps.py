"""The example web apps of docs/examples, served for tests: in this process or as processes.

In-process, an app runs on the test's event loop next to the fake org (FastAPI under a real
uvicorn server, aiohttp under its AppRunner), on a socket bound first so that the
``redirect_uri`` names its port. As a process, it runs exactly as docs/web.md says:
``python docs/examples/<framework>_app.py --port N``, configured by ``SF_*`` variables.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
from aiohttp import web

from sfoauth_async import AuthorizationCodeFlow, TokenStore, UserSessions
from sfoauth_async.testing import FakeSalesforceOrg, FakeUser

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
FRAMEWORKS = ("fastapi", "aiohttp")
SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnop"
CALLBACK_PATH = "/login/salesforce/callback"
_START_TIMEOUT_S = 30.0


def example(framework: str) -> ModuleType:
    """The example module of a framework (``fastapi_app`` or ``aiohttp_app``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(f"{framework}_app")


def callback_url(port: int) -> str:
    """The redirect URI of an app on ``port``."""
    return f"http://127.0.0.1:{port}{CALLBACK_PATH}"


def bound_socket() -> socket.socket:
    """A listening socket on a free loopback port."""
    return socket.create_server(("127.0.0.1", 0))


@dataclass
class RunningApp:
    """An example app being served: its base URL and its `UserSessions`."""

    framework: str
    url: str
    users: UserSessions
    flow: AuthorizationCodeFlow


@asynccontextmanager
async def serve_example(
    framework: str,
    org: FakeSalesforceOrg,
    store: TokenStore,
    *,
    secret_key: str = SECRET_KEY,
    **user_options: Any,
) -> AsyncIterator[RunningApp]:
    """Serve ``framework``'s example app in this process, logging in against ``org``."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    flow = org.authorization_code_flow(callback_url(port))
    users = UserSessions(flow, store=store, **user_options)
    app = example(framework).create_app(users, secret_key=secret_key)
    url = f"http://127.0.0.1:{port}"
    if framework == "aiohttp":
        runner = web.AppRunner(app)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        try:
            yield RunningApp(framework, url, users, flow)
        finally:
            await runner.cleanup()
            sock.close()
        return
    import uvicorn  # noqa: PLC0415 - only the FastAPI runs need it

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            assert not task.done(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)  # polling uvicorn's started flag, bounded
        yield RunningApp(framework, url, users, flow)
    finally:
        server.should_exit = True
        await task
        sock.close()


def client() -> aiohttp.ClientSession:
    """An HTTP client that keeps cookies for 127.0.0.1 and does not follow redirects."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def org_env(org: FakeSalesforceOrg, **extra: str) -> dict[str, str]:
    """The environment of an example process logging in against ``org``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "REDIS_URL"))}
    env.update(
        SF_CLIENT_ID=org.app.client_id,
        SF_CLIENT_SECRET=org.app.client_secret,
        SF_LOGIN_URL=org.login_url,
        APP_SECRET_KEY=SECRET_KEY,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


class ExampleProcess:
    """``python docs/examples/<framework>_app.py --port N`` as a child process."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.greeting = ""

    @classmethod
    async def start(
        cls, framework: str, port: int, env: Mapping[str, str], log: Path
    ) -> ExampleProcess:
        """Start it and wait for its greeting (it serves from then on)."""
        with log.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(EXAMPLES / f"{framework}_app.py"),
                "--port",
                str(port),
                env=dict(env),
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=str(ROOT),
            )
        started = cls(process, port, log)
        assert process.stdout is not None
        async with asyncio.timeout(_START_TIMEOUT_S):
            line = await process.stdout.readline()
        if not line:
            await process.wait()
            raise AssertionError(f"the example exited; its log is {log}")
        started.greeting = line.decode()
        return started

    def fake_user(self) -> tuple[str, str]:
        """The username and password the greeting of an embedded fake org gives."""
        found = re.search(r"as (\S+) with password (\S+) ", self.greeting)
        assert found is not None, self.greeting
        return found[1], found[2]

    async def stop(self) -> None:
        """SIGINT (Ctrl+C), as a user stops it; SIGKILL if it lingers."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(_START_TIMEOUT_S):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.process.stdout is not None:
            await self.process.stdout.read()


def free_port() -> int:
    """A loopback port free now (for a child process to bind)."""
    with bound_socket() as sock:
        port: int = sock.getsockname()[1]
        return port


async def sign_in(page: Any, user: FakeUser, *, allow: bool = True) -> None:
    """On the fake org's login page: log in as ``user``, then Allow (or Deny)."""
    await page.wait_for_selector("#username")
    await page.fill("#username", user.username)
    await page.fill("#password", user.password)
    await page.click("#Login")
    await page.click("#oaapprove" if allow else "#oadeny")
