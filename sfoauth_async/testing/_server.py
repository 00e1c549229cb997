"""``python -m sfoauth_async.testing serve``: the fake org as a server of its own.

For trying a web app or the ``sfoauth`` command line by hand, and for sharing one fake org
between processes (the benchmarks run their clients against one). It starts a
`FakeSalesforceOrg` and a control site, prints one JSON line with their URLs and the
credentials a client needs, then serves until SIGINT or SIGTERM and exits with status 0.

``--format env`` prints shell ``export`` lines instead of the JSON line: the ``SF_*``
variables of the ``sfoauth`` command line and `flow_from_env` (client credentials against
the My Domain, and the user to log in as), for ``. ./org.env``.

Ports: ``--port N`` serves the login site on N, the My Domain site on N+1 and the control
site on N+2; without it, each gets a free port.

The control site (plain HTTP on ``127.0.0.1``, no authentication: it is a fake):

| request | effect |
|---|---|
| ``POST /expire`` | ``org.expire_all_sessions()``: every access token so far answers 401 |
| ``POST /reset`` | zero the counters, drop queued faults, ``token_delay_s = 0`` |
| ``POST /delay?s=0.5`` | every token request waits 0.5 s |
| ``POST /fault?error=E&description=D&count=N`` | the next N token requests answer 400 ``E`` |
| ``POST /refresh-token`` | ``{"refresh_token": ...}``: a new refresh token of the default user |
| ``POST /seed?sobject=Account&count=N`` | ``org.seed_records(sobject, N)`` (made on demand) |
| ``POST /records/clear`` | ``org.clear_records()`` (seeded tables stay) |
| ``GET /stats`` | token requests, 401s served, API requests, most concurrent token requests |
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import shlex
import signal
import sys
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from .._duration import duration_argument
from ._faults import Fault
from ._org import FakeSalesforceOrg

__all__ = ["control_app", "main", "serve"]

_HIGHEST_PORT = 65535


def control_app(org: FakeSalesforceOrg) -> web.Application:
    """The control site's routes (see the module docstring)."""

    async def expire(_: web.Request) -> web.Response:
        org.expire_all_sessions()
        return web.json_response({"ok": True})

    async def reset(_: web.Request) -> web.Response:
        org.stats.reset()
        org.faults.clear()
        org.token_delay_s = 0.0
        return web.json_response({"ok": True})

    async def delay(request: web.Request) -> web.Response:
        try:
            seconds = float(request.query["s"])
        except (KeyError, ValueError):
            return web.json_response({"error": "give ?s=<seconds>"}, status=400)
        org.token_delay_s = max(seconds, 0.0)
        return web.json_response({"ok": True})

    async def fault(request: web.Request) -> web.Response:
        error = request.query.get("error")
        try:
            count = int(request.query.get("count", "1"))
        except ValueError:
            count = 0
        if not error or count < 1:
            return web.json_response({"error": "give ?error=<code>[&count=<n>]"}, status=400)
        pushed = Fault.oauth_error(error, request.query.get("description", ""))
        org.faults.token.push(*[pushed] * count)
        return web.json_response({"ok": True})

    async def refresh_token(_: web.Request) -> web.Response:
        return web.json_response({"refresh_token": org.issue_refresh_token()})

    async def seed(request: web.Request) -> web.Response:
        org.seed_records(request.query["sobject"], int(request.query["count"]))
        return web.json_response({"ok": True})

    async def clear_records(_: web.Request) -> web.Response:
        org.clear_records()
        return web.json_response({"ok": True})

    async def stats(_: web.Request) -> web.Response:
        s = org.stats
        return web.json_response(
            {
                "token_requests": s.token_requests_total,
                "token_requests_by_grant": dict(s.token_requests),
                "unauthorized": s.unauthorized,
                "api_requests": s.api_requests,
                "revocations": s.revocations,
                "introspections": s.introspections,
                "max_concurrent_token_requests": s.max_concurrent_token_requests,
            }
        )

    app = web.Application()
    app.router.add_post("/expire", expire)
    app.router.add_post("/reset", reset)
    app.router.add_post("/delay", delay)
    app.router.add_post("/fault", fault)
    app.router.add_post("/refresh-token", refresh_token)
    app.router.add_post("/seed", seed)
    app.router.add_post("/records/clear", clear_records)
    app.router.add_get("/stats", stats)
    return app


def _announcement(
    org: FakeSalesforceOrg, control_url: str, key_file: Path, refresh_token: str
) -> dict[str, Any]:
    return {
        "login_url": org.login_url,
        "my_domain_url": org.my_domain_url,
        "instance_url": org.instance_url,
        "control_url": control_url,
        "org_id": org.org_id,
        "user_id": org.user.user_id,
        "client_id": org.app.client_id,
        "client_secret": org.app.client_secret,
        "username": org.user.username,
        "password": org.user.password,
        "security_token": org.user.security_token,
        "refresh_token": refresh_token,
        "private_key_file": str(key_file),
        "callback_urls": list(org.app.callback_urls),
        "session_lifetime_s": org.session_lifetime.total_seconds(),
        "pid": os.getpid(),
    }


def _shell_exports(info: dict[str, Any]) -> str:
    # Client credentials is the grant flow_from_env picks from these (no SF_REFRESH_TOKEN, no
    # private key), and it works against the My Domain; SF_USERNAME and SF_PASSWORD are there
    # for `sfoauth login --web` and the password grant.
    variables = {
        "SF_CLIENT_ID": info["client_id"],
        "SF_CLIENT_SECRET": info["client_secret"],
        "SF_LOGIN_URL": info["my_domain_url"],
        "SF_USERNAME": info["username"],
        "SF_PASSWORD": info["password"],
        "SF_SECURITY_TOKEN": info["security_token"],
    }
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())


def _cannot_listen(port: int, exc: OSError) -> str:
    why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
    return (
        f"serve: error: cannot listen on 127.0.0.1 around port {port} ({why}). --port N uses "
        f"N, N+1 and N+2: choose other ports, or leave --port out for free ones.\n"
    )


async def serve(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    """Run the server until SIGINT or SIGTERM; returns the exit status.

    Example:
        ```python
        raise SystemExit(
            asyncio.run(serve(_parser().parse_args(["serve"]), out=sys.stdout, err=sys.stderr))
        )
        ```
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    port: int = args.port
    org = FakeSalesforceOrg(
        session_lifetime=timedelta(seconds=args.session_lifetime),
        login_rate_limit_per_hour=None if args.no_login_rate_limit else 3600,
        auto_approve=args.auto_approve,
        rotate_refresh_tokens=args.rotate_refresh_tokens,
        login_port=port,
        my_domain_port=port + 1 if port else 0,
    )
    if args.api_limit is not None:
        org.api_limit = args.api_limit
    org.app.callback_urls.extend(
        url for url in args.callback_url if url not in org.app.callback_urls
    )
    with tempfile.TemporaryDirectory(prefix="sfoauth-fake-org-") as directory:
        key_file = Path(directory) / "server.key"
        # Written 0600 from the start: a private key, even a fake one, is not world-readable.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(org.private_key_pem)
        try:
            await org.start()
        except OSError as exc:
            err.write(_cannot_listen(port, exc))
            return 2
        runner = web.AppRunner(control_app(org), access_log=None)
        try:
            await runner.setup()
            try:
                await web.TCPSite(runner, "127.0.0.1", port + 2 if port else 0).start()
            except OSError as exc:
                err.write(_cannot_listen(port, exc))
                return 2
            control_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            info = _announcement(org, control_url, key_file, org.issue_refresh_token())
            # One write: a reader that waits for a non-empty file never sees half of it.
            out.write(_shell_exports(info) if args.format == "env" else json.dumps(info) + "\n")
            out.flush()
            err.write(
                f"Fake Salesforce org {org.org_id}: login URL {org.login_url}, My Domain "
                f"{org.my_domain_url}, control {control_url}. Ctrl-C or SIGTERM stops it.\n"
            )
            err.flush()
            await stop.wait()
        finally:
            await runner.cleanup()
            await org.close()
    return 0


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {value!r}") from None
    if not 0 <= number <= _HIGHEST_PORT - 2:
        raise argparse.ArgumentTypeError(
            f"must be 1 to {_HIGHEST_PORT - 2} (N, N+1 and N+2 are used), or 0 for free ports"
        )
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sfoauth_async.testing",
        description="The fake Salesforce org of sfoauth_async.testing, as a server.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "serve",
        help="serve a fake org until SIGINT/SIGTERM",
        description="Serve a fake Salesforce org on 127.0.0.1. Prints one JSON line (URLs, "
        "client id and secret, user, password, security token, a refresh token, the private "
        "key file), then serves until SIGINT or SIGTERM.",
    )
    run.add_argument(
        "--format",
        choices=("json", "env"),
        default="json",
        help="json: one JSON line (default); env: shell export lines of the SF_* variables "
        "(client credentials against the My Domain, and the user), for `. ./org.env`",
    )
    run.add_argument(
        "--port",
        type=_port,
        default=0,
        metavar="N",
        help="login site on N, My Domain on N+1, control site on N+2 (default: free ports)",
    )
    run.add_argument(
        "--session-lifetime",
        type=duration_argument,
        default=7200.0,
        metavar="S",
        help="how long access tokens work: seconds, or 90s, 30m, 2h (2h)",
    )
    run.add_argument(
        "--no-login-rate-limit",
        action="store_true",
        help="no 3,600 logins per user per hour limit",
    )
    run.add_argument(
        "--api-limit", type=int, metavar="N", help="daily API requests before 403 (100000)"
    )
    run.add_argument(
        "--auto-approve",
        action="store_true",
        help="the authorize endpoint skips the login and approval pages",
    )
    run.add_argument("--rotate-refresh-tokens", action="store_true", help="refresh-token rotation")
    run.add_argument(
        "--callback-url",
        action="append",
        default=[],
        metavar="URL",
        help="register another callback URL on the default app (repeatable)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sfoauth_async.testing serve [--format F] [--port N] [--session-lifetime S] ...``.

    Example:
        ```python
        raise SystemExit(main(["serve", "--port", "8700"]))
        ```
    """
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(serve(args, out=sys.stdout, err=sys.stderr))
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130
