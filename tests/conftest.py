"""Fixtures shared by the whole suite."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core
from yarl import URL


@pytest.fixture(autouse=True)
async def _no_task_left_pending() -> AsyncIterator[None]:
    """Fail any test that leaves an asyncio task running behind it."""
    yield
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not pending, f"tasks left pending: {pending}"


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs a missing tool; in CI (CI=true) fail instead: it must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}. CI=true: this test must run, never skip.")
    pytest.skip(reason)


@pytest.fixture
def virtualenv() -> Path:
    """This interpreter's virtualenv, which the README's commands run from (as ``.venv``)."""
    if sys.prefix == sys.base_prefix:
        skip_or_fail("the README's commands run from a virtualenv: run the tests in one")
    return Path(sys.prefix)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (Debian's, as .ci/run installs it), driven by Playwright."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        skip_or_fail("no chromium on PATH (Debian: apt-get install chromium)")
    from playwright.async_api import async_playwright  # noqa: PLC0415 - only browser tests

    async with async_playwright() as playwright:
        chrome = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield chrome
        finally:
            await chrome.close()


class _MockResponse(aiohttp.ClientResponse):
    """A ClientResponse that aioresponses 0.7.9 can build under aiohttp 3.14."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        # aioresponses 0.7.9 does not pass the stream_writer that aiohttp 3.14 requires.
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """Mocked aiohttp for request-shape unit tests: requests are recorded, unmatched fail."""
    monkeypatch.setattr(aioresponses_core, "ClientResponse", _MockResponse)
    with aioresponses() as mock:
        yield mock


# =========================================================================================
# Redis: a real redis-server for the token-store and fleet tests (issue 4).
# Keep this section at the END of the file; other sections go above it.
# =========================================================================================

import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

_REDIS_START_TIMEOUT_S = 15.0


@dataclass
class RedisServer:
    """A redis-server process of the test run, on 127.0.0.1 and a free port."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process.poll() is None

    def command(self, *words: str) -> bytes:
        """Send one inline command on a new connection and return the raw reply."""
        with socket.create_connection((self.host, self.port), timeout=5.0) as s:
            s.sendall(" ".join(words).encode() + b"\r\n")
            return s.recv(65536)

    def restart(self) -> None:
        """Start the (stopped) server again on the same port, empty."""
        assert not self.running
        self.process = start_redis_server(self.directory, port=self.port).process

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait until it has exited."""
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        reason = (
            "redis-server is not installed: install Debian's redis-server "
            "(apt-get install redis-server) to run the Redis tests"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}. CI=true: the Redis tests must run, never skip.")
        pytest.skip(reason)
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis_server(directory: Path, *, port: int | None = None) -> RedisServer:
    """Start a redis-server (no persistence), waiting until it answers PING.

    On ``port``, or on a free port: a port taken between choosing and binding it is then
    retried with another one. A server that cannot start fails the test (in CI as
    everywhere: the binary is there).
    """
    binary = _redis_server_binary()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "redis.log"
    output = ""
    wanted = port
    for _ in range(5):
        port = wanted or _free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--protected-mode", "no",
                "--daemonize", "no",
                "--dir", str(directory),
                "--logfile", str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + _REDIS_START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                return RedisServer(port=port, directory=directory, process=process)
            time.sleep(0.01)  # polling for the server to answer, bounded by the deadline
        process.kill()
        process.wait()
        output = log.read_text(errors="replace") if log.exists() else ""
        if wanted or "Address already in use" not in output:
            break
    pytest.fail(f"redis-server did not start:\n{output[-2000:]}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole run (never stopped by a test: use the factory)."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the shared redis-server, emptied for this test."""
    assert redis_server.running, "the shared redis-server died"
    assert redis_server.command("FLUSHALL").startswith(b"+OK")
    return redis_server.url


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Start dedicated redis-servers that a test may stop; all are stopped afterwards."""
    servers: list[RedisServer] = []

    def start() -> RedisServer:
        server = start_redis_server(tmp_path / f"redis-{len(servers)}")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# -- worker processes for the multi-process store and fleet tests (issue 4) ---------------

import json  # noqa: E402
import signal  # noqa: E402

FLEET_WORKER = Path(__file__).with_name("fleet_worker.py")


class WorkerProcess:
    """One ``tests/fleet_worker.py`` process: JSON lines on stdout, ``go`` on stdin."""

    def __init__(self, process: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.process = process
        self.stderr_path = stderr_path
        self.pid = process.pid

    def _tail(self) -> str:
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return text[-4000:]

    async def event(self, name: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait for the worker's next line whose ``event`` is ``name`` (skipping others)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout_s):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    await self.process.wait()
                    raise AssertionError(
                        f"worker {self.pid} exited ({self.process.returncode}) before "
                        f"'{name}':\n{self._tail()}"
                    )
                event: dict[str, Any] = json.loads(line)
                if event["event"] == name:
                    return event

    async def ready(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait for the worker's ``ready`` line."""
        return await self.event("ready", timeout_s)

    def go(self) -> None:
        """Tell the worker to start."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    async def result(self, timeout_s: float = 120.0) -> dict[str, Any]:
        """Wait for the worker's ``result`` line and for it to exit with status 0."""
        event = await self.event("result", timeout_s)
        async with asyncio.timeout(timeout_s):
            returncode = await self.process.wait()
        assert returncode == 0, f"worker {self.pid} exited with {returncode}:\n{self._tail()}"
        return event

    def kill(self) -> None:
        """SIGKILL the worker (``kill -9``)."""
        if self.process.returncode is None:
            self.process.kill()

    def freeze(self) -> None:
        """SIGSTOP the worker: it holds what it holds, and renews nothing, until thawed."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen worker."""
        os.kill(self.pid, signal.SIGCONT)

    async def close(self) -> None:
        """Kill the worker if it still runs, and release its pipes."""
        self.kill()
        if self.process.stdin is not None:
            self.process.stdin.close()
        await self.process.wait()
        if self.process.stdout is not None:
            await self.process.stdout.read()


@pytest.fixture
async def start_worker(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Any]]:
    """Start ``tests/fleet_worker.py <command> <config>`` processes; all are ended after."""
    workers: list[WorkerProcess] = []

    async def start(command: str, config: dict[str, Any]) -> WorkerProcess:
        stderr_path = tmp_path / f"worker-{len(workers)}.stderr"
        with stderr_path.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(FLEET_WORKER),
                command,
                json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        worker = WorkerProcess(process, stderr_path)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        await worker.close()
