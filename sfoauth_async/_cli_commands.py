"""The ``sfoauth`` commands that use a token: token, display, check, whoami, introspect, ...

The others are revoke and logout (login is in ``_cli_login.py``). Each gets its token
through an `AsyncSession` on the chosen credentials, so a token saved in the command line's
`FileTokenStore` is reused (and refreshed) rather than a new login made per command.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar

import aiohttp

from ._cli_config import Credentials, SavedLogin
from ._errors import InvalidTokenError, SFOAuthError
from ._retry import RetryPolicy
from ._session import AsyncSession
from ._token import Token

__all__ = [
    "CommandError",
    "Context",
    "ExitCode",
    "check",
    "display",
    "introspect",
    "logout",
    "revoke",
    "token",
    "whoami",
]

_T = TypeVar("_T")


class ExitCode:
    """The exit statuses of ``sfoauth`` (documented in ``docs/cli.md`` and ``--help``)."""

    OK = 0
    REFUSED = 1
    """Salesforce refused: credentials, grant, token, consent, state; or a check failed."""
    USAGE = 2
    """Bad usage or configuration: options, missing variables, no login, port in use."""
    UNAVAILABLE = 3
    """Salesforce or the network is unavailable: retry later."""
    INTERNAL = 4
    """A bug in sfoauth: please report it (``--verbose`` shows the traceback)."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C)."""


class CommandError(Exception):
    """A command failed for a reason of its own, with the exit status to use."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Context:
    """What every token command needs."""

    credentials: Credentials
    session_timeout_s: float
    attempts: int
    out: TextIO
    err: TextIO

    def session(self) -> AsyncSession:
        """An `AsyncSession` on the credentials, sharing tokens through the token file."""
        creds = self.credentials
        return AsyncSession(
            creds.flow,
            store=creds.store,
            store_key=creds.store_key,
            session_timeout=timedelta(seconds=self.session_timeout_s),
            retry=RetryPolicy(attempts=self.attempts, total_timeout_s=30.0),
        )

    async def stored_token(self) -> Token | None:
        """The token saved for these credentials, if any (no login)."""
        creds = self.credentials
        if creds.store is None or creds.store_key is None:
            return None
        stored = await creds.store.load(creds.store_key)
        return stored.token if stored is not None else None

    async def get_token(self, sf: AsyncSession) -> Token:
        """A valid token: the saved one, refreshed if needed, or a new login."""
        if self.credentials.saved is not None and await self.stored_token() is None:
            raise CommandError(
                f"The saved login has no token any more (revoked, or removed from "
                f"{self.credentials.store.path if self.credentials.store else 'the store'}): "
                f"log in again with sfoauth login --web.",
                ExitCode.USAGE,
            )
        return await sf.get_token()

    async def with_fresh_token(
        self, sf: AsyncSession, call: Callable[[Token], Awaitable[_T]]
    ) -> _T:
        """``call(token)``, once more with a new token if Salesforce says it is invalid."""
        used = await self.get_token(sf)
        try:
            return await call(used)
        except InvalidTokenError:
            if not sf.refresher.invalidate(used):
                raise
            return await call(await sf.get_token())

    def write_json(self, data: object) -> None:
        """Machine-readable output on stdout."""
        self.out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def write_rows(self, rows: list[tuple[str, object]]) -> None:
        """Aligned ``name  value`` rows on stdout."""
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            self.out.write(f"{name:<{width}}  {'' if value is None else value}\n")


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def token_json(token: Token, label: str) -> dict[str, Any]:
    """A token as ``token --json`` prints it: never a refresh token or a credential."""
    return {
        "access_token": token.access_token,
        "instance_url": token.instance_url,
        "id": token.id,
        "org_id": token.org_id,
        "user_id": token.user_id,
        "token_type": token.token_type,
        "scope": sorted(token.scope),
        "issued_at": _when(token.issued_at),
        "received_at": _when(token.received_at),
        "expires_at": _when(token.expires_at),
        "flow": label,
    }


def mask(access_token: str) -> str:
    """The first characters of a token and stars: enough to tell two tokens apart."""
    return access_token[:5] + "*" * 12


async def token(ctx: Context, *, as_json: bool) -> int:
    """``sfoauth token``: print the access token (or the token as JSON)."""
    async with ctx.session() as sf:
        current = await ctx.get_token(sf)
    if as_json:
        ctx.write_json(token_json(current, ctx.credentials.label))
    else:
        ctx.out.write(current.access_token + "\n")
    return ExitCode.OK


async def _latest_version(sf: AsyncSession) -> str | None:
    async with sf.get("/services/data/") as resp:
        if resp.status != 200:
            return None
        versions = await resp.json()
    numbers = [v.get("version") for v in versions if isinstance(v, dict)]
    return max((n for n in numbers if isinstance(n, str)), key=float, default=None)


async def _userinfo(ctx: Context, sf: AsyncSession) -> dict[str, Any]:
    flow = ctx.credentials.flow
    return await ctx.with_fresh_token(sf, lambda t: flow.userinfo(t, session=sf.http))


async def display(ctx: Context, *, as_json: bool, show_token: bool) -> int:
    """``sfoauth display``: who and where the token is for, like ``sf org display``."""
    async with ctx.session() as sf:
        info = await _userinfo(ctx, sf)
        current = sf.token
        assert current is not None
        version = await _latest_version(sf)
    expires = _when(current.expires_at)
    details = {
        "instance_url": current.instance_url,
        "org_id": current.org_id or info.get("organization_id"),
        "user_id": current.user_id or info.get("user_id"),
        "username": info.get("preferred_username"),
        "api_version": version,
        "expires_at": expires,
        "access_token": current.access_token if show_token else mask(current.access_token),
        **ctx.credentials.describe(),
    }
    if as_json:
        ctx.write_json(details)
        return ExitCode.OK
    timeout = timedelta(seconds=round(ctx.session_timeout_s))
    ctx.write_rows(
        [
            ("Instance URL", details["instance_url"]),
            ("Org ID", details["org_id"]),
            ("User ID", details["user_id"]),
            ("Username", details["username"]),
            ("API version", version or "unknown"),
            ("Expires", f"{expires} (received + {timeout} session timeout)"),
            (
                "Access token",
                details["access_token"]
                if show_token
                else f"{details['access_token']} (--show-token shows it)",
            ),
            ("Flow", f"{details['flow']}, from {details['source']}"),
            ("Login URL", details["login_url"]),
            ("Client ID", details["client_id"]),
            ("Token file", details["token_file"] or "none (--no-store)"),
        ]
    )
    return ExitCode.OK


async def whoami(ctx: Context, *, as_json: bool) -> int:
    """``sfoauth whoami``: the user the token acts as, from ``/services/oauth2/userinfo``."""
    async with ctx.session() as sf:
        info = await _userinfo(ctx, sf)
    if as_json:
        ctx.write_json(info)
        return ExitCode.OK
    ctx.write_rows(
        [
            ("Username", info.get("preferred_username")),
            ("Name", info.get("name")),
            ("Email", info.get("email")),
            ("User ID", info.get("user_id")),
            ("Org ID", info.get("organization_id")),
            ("Active", "yes" if info.get("active") else "no"),
        ]
    )
    return ExitCode.OK


async def introspect(ctx: Context, *, as_json: bool) -> int:
    """``sfoauth introspect``: what ``/services/oauth2/introspect`` says about the token."""
    flow = ctx.credentials.flow
    async with ctx.session() as sf:
        current = await ctx.get_token(sf)
        info = await flow.introspect(current, session=sf.http)
    scope = sorted(info.scope)
    fields = {
        "active": info.active,
        "username": info.username,
        "client_id": info.client_id,
        "scope": scope,
        "token_type": info.token_type,
        "sub": info.sub,
        "iat": _when(info.iat),
        "exp": _when(info.exp),
    }
    if as_json:
        ctx.write_json(fields)
    elif not info.active:
        ctx.out.write("Active    no (expired, revoked, or a username-password token)\n")
    else:
        ctx.write_rows(
            [
                ("Active", "yes"),
                ("Username", info.username),
                ("Client ID", info.client_id),
                ("Scope", " ".join(scope)),
                ("Issued", fields["iat"]),
                ("Expires", fields["exp"]),
            ]
        )
    return ExitCode.OK if info.active else ExitCode.REFUSED


async def _revoke_saved(ctx: Context) -> str | None:
    """Revoke the saved token and forget it in the store; what happened, or ``None``."""
    creds = ctx.credentials
    saved = await ctx.stored_token()
    if saved is None:
        return None
    revoked = await creds.flow.revoke(saved)
    assert creds.store is not None
    assert creds.store_key is not None
    # A tombstone, not a delete: a process still holding the token cannot save it back.
    await creds.store.forget(creds.store_key)
    which = "refresh token (and its sessions)" if saved.refresh_token else "access token"
    if revoked:
        return (
            f"Revoked the {which} of user {saved.user_id} and removed it from {creds.store.path}."
        )
    return (
        f"Salesforce no longer knew the {which} of user {saved.user_id} (already revoked or "
        f"expired); removed it from {creds.store.path}."
    )


async def revoke(ctx: Context) -> int:
    """``sfoauth revoke``: revoke the saved token and remove it from the token file."""
    done = await _revoke_saved(ctx)
    ctx.out.write((done or f"Nothing to revoke: no {ctx.credentials.label} token is saved.") + "\n")
    return ExitCode.OK


async def logout(ctx: Context, directory: Path) -> int:
    """``sfoauth logout``: revoke the saved token, remove it, and forget the saved login."""
    done = await _revoke_saved(ctx)
    if ctx.credentials.saved is not None:
        SavedLogin.forget(directory)
        done = (done + " " if done else "") + "Forgot the saved login."
    ctx.out.write((done or "Not logged in: no token is saved.") + "\n")
    return ExitCode.OK


# -- check ----------------------------------------------------------------------------------


@dataclass
class _Step:
    name: str
    ok: bool
    text: str
    exit_code: int = ExitCode.OK


def _rest_problem(status: int, body: object) -> tuple[str, int]:
    """What a failed REST answer means, what to check, and the exit status."""
    first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
    code = str(first.get("errorCode", ""))
    message = str(first.get("message", ""))
    said = f"HTTP {status} {code}: {message}".rstrip(": ") if code else f"HTTP {status}"
    if status >= 500 or status == 420:
        return (
            f"{said}. Salesforce is unavailable or cannot route to this instance; check "
            f"https://status.salesforce.com and the instance URL.",
            ExitCode.UNAVAILABLE,
        )
    if status == 401 and "not valid for use with the REST API" in message:
        hint = (
            "The token may not call the REST API: add the 'api' scope (Manage user data via "
            "APIs) to the connected app, or raise the session's security level."
        )
    elif status == 401:
        hint = "The session is invalid even after a refresh: it was revoked or logged out."
    elif status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
        hint = "The org's API request limit is used up: wait for the rolling 24-hour window."
    elif status == 403:
        hint = "The user lacks the 'API Enabled' permission, or the org's edition has no API."
    elif status == 404:
        hint = "This API version or resource does not exist on the instance."
    else:
        hint = "See Salesforce's REST API status codes."
    return f"{said}. {hint}", ExitCode.REFUSED


async def _get(sf: AsyncSession, path: str) -> tuple[int, object]:
    async with sf.get(path) as resp:
        try:
            body: object = await resp.json(content_type=None)
        except ValueError:
            body = None
        return resp.status, body


async def _check_rest(sf: AsyncSession, token_: Token) -> list[_Step]:
    steps: list[_Step] = []
    status, versions = await _get(sf, "/services/data/")
    if status != 200 or not isinstance(versions, list) or not versions:
        text, code = _rest_problem(status, versions)
        return [_Step("versions", ok=False, text=f"GET /services/data/: {text}", exit_code=code)]
    latest = max(versions, key=lambda v: float(v.get("version", 0)))
    steps.append(
        _Step(
            "versions",
            ok=True,
            text=f"GET {token_.instance_url}/services/data/: {len(versions)} versions, latest "
            f"v{latest['version']} ({latest.get('label', '?')})",
        )
    )
    base = f"/services/data/v{latest['version']}/"
    status, resources = await _get(sf, base)
    if status != 200 or not isinstance(resources, dict):
        text, code = _rest_problem(status, resources)
        steps.append(_Step("resources", ok=False, text=f"GET {base}: {text}", exit_code=code))
        return steps
    shown = ", ".join(name for name in ("sobjects", "query", "limits") if name in resources)
    steps.append(
        _Step("resources", ok=True, text=f"GET {base}: {len(resources)} resources ({shown}, ...)")
    )
    status, limits = await _get(sf, base + "limits/")
    if status != 200 or not isinstance(limits, dict):
        text, code = _rest_problem(status, limits)
        steps.append(_Step("limits", ok=False, text=f"GET {base}limits/: {text}", exit_code=code))
        return steps
    daily = limits.get("DailyApiRequests") or {}
    steps.append(
        _Step(
            "limits",
            ok=True,
            text=f"GET {base}limits/: DailyApiRequests {daily.get('Remaining', '?')} of "
            f"{daily.get('Max', '?')} left",
        )
    )
    return steps


async def check(ctx: Context) -> int:
    """``sfoauth check``: get a token, then call the REST API the way Salesforce's guide does."""
    creds = ctx.credentials
    ctx.out.write(
        f"Checking the {creds.label} flow ({creds.source}), login URL {creds.flow.login_url}\n"
    )
    steps: list[_Step] = []
    async with ctx.session() as sf:
        try:
            current = await ctx.get_token(sf)
        except (SFOAuthError, CommandError) as exc:
            ctx.out.write(f"  FAIL  token      {exc}\n")
            raise
        how = "saved token" if sf.stats.token_requests == 0 else "new token"
        steps.append(
            _Step(
                "token",
                ok=True,
                text=f"{how} for user {current.user_id} of org {current.org_id}, instance "
                f"{current.instance_url}",
            )
        )
        try:
            steps += await _check_rest(sf, current)
        except (aiohttp.ClientError, TimeoutError) as exc:
            steps.append(
                _Step(
                    "rest",
                    ok=False,
                    text=f"Cannot reach {current.instance_url} ({type(exc).__name__}: {exc}); "
                    f"check the network, proxy and TLS settings.",
                    exit_code=ExitCode.UNAVAILABLE,
                )
            )
    for step in steps:
        ctx.out.write(f"  {'ok' if step.ok else 'FAIL':<4}  {step.name:<9}  {step.text}\n")
    failed = [step for step in steps if not step.ok]
    if not failed:
        ctx.out.write("Everything works.\n")
        return ExitCode.OK
    ctx.out.write(f"{len(failed)} check failed; the line above says what to fix.\n")
    return max(step.exit_code for step in failed)
