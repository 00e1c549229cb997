"""The fake org in its own process, as the product ships it, plus the echo server.

`OrgProcess` starts ``python -m sfoauth_async.testing serve`` (no login rate limit, the daily
API limit out of reach) and ``python -m benchmarks.echo_server``, reads their JSON lines, and
drives the org through its control site.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sfoauth_async import ClientCredentialsFlow

_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class OrgInfo:
    """What the server announced: URLs and the credentials of its default app and user."""

    my_domain_url: str
    login_url: str
    control_url: str
    echo_url: str
    client_id: str
    client_secret: str
    username: str
    password: str
    security_token: str
    private_key_file: str

    def client_credentials_flow(self) -> ClientCredentialsFlow:
        """A new flow object each time, so each session gets its own `Refresher`."""
        return ClientCredentialsFlow(
            client_id=self.client_id,
            client_secret=self.client_secret,
            login_url=self.my_domain_url,
        )

    @property
    def limits_url(self) -> str:
        """The absolute URL every steady-state client GETs."""
        return f"{self.my_domain_url}/services/data/v67.0/limits/"


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def pin_client() -> None:
    """Keep this (the client) process on the first CPU, away from the servers.

    With two CPUs shared freely, the scheduler moves the client and the servers around and
    the per-round CPU figures of the client scatter by 50 % and more; one CPU each makes the
    client's cost per call what it is. Nothing happens with a single CPU.
    """
    cpus = _cpus()
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[0]})


def pin_servers(pid: int) -> None:
    """Keep a server process on the CPUs the client does not use (see `pin_client`)."""
    cpus = _cpus()
    if len(cpus) >= 2:
        os.sched_setaffinity(pid, set(cpus[1:]))


class OrgProcess:
    """``with OrgProcess() as org:`` runs the fake org in a child process until the block ends.

    Control calls are plain blocking ``urllib`` requests: they happen between measurements.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._echo: subprocess.Popen[str] | None = None
        self.info: OrgInfo | None = None

    @staticmethod
    def _start(*argv: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", *argv], cwd=_ROOT, stdout=subprocess.PIPE, text=True
        )
        pin_servers(proc.pid)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=10)
            raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}")
        announced: dict[str, Any] = json.loads(line)
        return proc, announced

    def __enter__(self) -> Self:
        self._proc, org = self._start(
            "sfoauth_async.testing", "serve", "--no-login-rate-limit", "--api-limit", str(10**12)
        )
        try:
            self._echo, echo = self._start("benchmarks.echo_server")
        except BaseException:
            self._stop(self._proc)
            raise
        wanted = {f.name for f in dataclasses.fields(OrgInfo)}
        self.info = OrgInfo(**{k: v for k, v in {**org, **echo}.items() if k in wanted})
        return self

    @staticmethod
    def _stop(proc: subprocess.Popen[str] | None) -> None:
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        echo, self._echo = self._echo, None
        self._stop(echo)
        self._stop(proc)

    @property
    def pid(self) -> int:
        """The server's process id (for py-spy)."""
        assert self._proc is not None
        return self._proc.pid

    def _call(self, method: str, path: str, **query: object) -> dict[str, Any]:
        assert self.info is not None
        url = self.info.control_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def expire_all_sessions(self) -> None:
        """Every access token issued so far now answers 401."""
        self._call("POST", "/expire")

    def reset(self) -> None:
        """Zero the counters, drop queued faults, make the token endpoint fast again."""
        self._call("POST", "/reset")

    def set_token_delay(self, seconds: float) -> None:
        """Make every token request wait ``seconds`` before it answers."""
        self._call("POST", "/delay", s=seconds)

    def push_token_error(self, error: str, description: str, count: int = 1) -> None:
        """The next ``count`` token requests answer 400 ``{"error": error, ...}``."""
        self._call("POST", "/fault", error=error, description=description, count=count)

    def seed_records(self, sobject: str, count: int) -> None:
        """``count`` generated records of ``sobject`` (see `FakeSalesforceOrg.seed_records`)."""
        self._call("POST", "/seed", sobject=sobject, count=count)

    def clear_records(self) -> None:
        """Forget every stored and deleted record; seeded tables stay."""
        self._call("POST", "/records/clear")

    def stats(self) -> dict[str, int]:
        """``token_requests``, ``unauthorized``, ``api_requests``, ``max_concurrent_...``."""
        return self._call("GET", "/stats")
