"""``sfoauth login --web``: the authorization code flow with PKCE, from a terminal.

A one-shot listener on ``127.0.0.1`` waits at the port and path of the app's callback URL;
the user's browser logs in on Salesforce and comes back there with a code (or an error).
The state is checked, the code exchanged, and the token saved where the other commands of
the command line find it.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import TextIO

from aiohttp import web
from yarl import URL

from ._authorization_code import AuthorizationCodeFlow
from ._cli_config import SavedLogin, sf_values, token_store
from ._env import flow_from_env
from ._errors import AuthorizationError, ConfigurationError, SFOAuthError, StateMismatchError
from ._refresher import Refresher
from ._token import Token
from ._urls import is_loopback_host

__all__ = ["DEFAULT_REDIRECT_URI", "CallbackListener", "ListenError", "LoginResult", "login_web"]

DEFAULT_REDIRECT_URI = "http://localhost:1717/OauthRedirect"
"""The Salesforce CLI's callback URL, which many connected apps already register."""


class ListenError(ConfigurationError):
    """The callback listener cannot take its port."""


def _page(title: str, text: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n"
        f'<body><h1>{escape(title)}</h1><p id="message">{escape(text)}</p></body></html>\n'
    )


class CallbackListener:
    """An HTTP server on ``127.0.0.1:port`` that takes one request at ``path``.

    The first request there is the callback: its query is handed over and the browser
    waits for the page `finish` gives. Any later request there is answered 410, any other
    path 404 (browsers ask for ``/favicon.ico``).
    """

    def __init__(self, *, port: int, path: str) -> None:
        self._port = port
        self._path = path
        self._query: asyncio.Future[dict[str, str]] | None = None
        self._page: asyncio.Future[str] | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen.

        Raises:
            ListenError: The port is in use or cannot be bound.
        """
        loop = asyncio.get_running_loop()
        self._query = loop.create_future()
        self._page = loop.create_future()
        app = web.Application()
        app.router.add_get(self._path, self._callback)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, "127.0.0.1", self._port).start()
        except OSError as exc:
            await self.close()
            why = "it is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ListenError(
                f"Cannot listen for the login callback on 127.0.0.1:{self._port} ({why}). "
                f"Stop the program using that port (another sfoauth login or sf org login?), "
                f"or register a callback URL with a free port on the connected app and pass "
                f"it as --redirect-uri."
            ) from None

    async def _callback(self, request: web.Request) -> web.Response:
        assert self._query is not None
        assert self._page is not None
        if self._query.done():
            return web.Response(status=410, text="This login is over; start a new one.")
        self._query.set_result(dict(request.query))
        page = await self._page
        return web.Response(text=page, content_type="text/html")

    async def query(self) -> dict[str, str]:
        """Wait for the callback's query parameters."""
        assert self._query is not None
        return await asyncio.shield(self._query)

    def finish(self, title: str, text: str) -> None:
        """Answer the callback's browser with a page (once)."""
        if self._page is not None and not self._page.done():
            self._page.set_result(_page(title, text))

    async def close(self) -> None:
        """Stop listening, after the callback's page is sent."""
        self.finish("Login ended", "The login ended; go back to the terminal.")
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


@dataclass(frozen=True)
class LoginResult:
    """What a web login produced."""

    token: Token
    saved: SavedLogin
    token_file: Path


def _listen_address(flow: AuthorizationCodeFlow) -> tuple[int, str]:
    uri = URL(flow.redirect_uri)
    if uri.scheme != "http" or not is_loopback_host(uri.host):
        raise ConfigurationError(
            f"login --web receives the callback on this machine, so the redirect URI must be "
            f"http://localhost:<port>/<path> or http://127.0.0.1:<port>/<path>, got "
            f"{flow.redirect_uri!r}. Add such a Callback URL to the connected app and pass "
            f"it as --redirect-uri (default {DEFAULT_REDIRECT_URI})."
        )
    if uri.explicit_port is None:
        raise ConfigurationError(
            f"The redirect URI {flow.redirect_uri!r} has no port: use one such as "
            f"{DEFAULT_REDIRECT_URI}."
        )
    return uri.explicit_port, uri.path or "/"


async def _username(flow: AuthorizationCodeFlow, token: Token) -> str | None:
    try:
        info = await flow.userinfo(token)
    except SFOAuthError:
        return None  # the app may not grant openid/id: the user id will do
    name = info.get("preferred_username")
    return name if isinstance(name, str) else None


async def login_web(
    *,
    env: Mapping[str, str],
    options: Mapping[str, str | None],
    directory: Path,
    open_url: Callable[[str], bool] | None,
    timeout_s: float,
    session_timeout_s: float,
    out: TextIO,
    err: TextIO,
) -> LoginResult:
    """Log in through the browser and save the token.

    Args:
        env: The environment (``SF_*`` variables).
        options: ``SF_*`` values given on the command line.
        directory: The config directory.
        open_url: Opens the browser, returns whether it did; ``None`` prints the URL.
        timeout_s: How long to wait for the browser to come back.
        session_timeout_s: The org's session timeout, for the token's expiry.
        out: Where the URL goes when the browser is not opened.
        err: Where instructions go.

    Raises:
        ConfigurationError: Missing ``SF_CLIENT_ID``, or a redirect URI not on this machine.
        ListenError: The callback port is taken.
        AuthorizationError: Denied, wrong state, or no answer in time.
        OAuthError: The code exchange was refused.
    """
    values = sf_values(env, options)
    values.setdefault("SF_REDIRECT_URI", DEFAULT_REDIRECT_URI)
    flow = flow_from_env(values, flow="authorization_code")
    assert isinstance(flow, AuthorizationCodeFlow)
    port, path = _listen_address(flow)
    request = flow.authorization_url()
    listener = CallbackListener(port=port, path=path)
    await listener.start()
    try:
        err.write(f"Waiting for the browser at {flow.redirect_uri} ...\n")
        if open_url is not None and open_url(request.url):
            err.write("Log in to Salesforce in the browser window that opened.\n")
        else:
            err.write("Open this URL in a browser and log in to Salesforce:\n")
            out.write(request.url + "\n")
            out.flush()
        err.flush()
        try:
            async with asyncio.timeout(timeout_s):
                query = await listener.query()
        except TimeoutError:
            raise AuthorizationError(
                f"No login came back to {flow.redirect_uri} within {timeout_s:g} s. Run "
                f"sfoauth login --web again, and finish the login in the browser."
            ) from None
        try:
            # State first, unlike parse_callback (which reports Salesforce's error first):
            # any local program can reach the listener, and only a request that carries our
            # state may end the login with an error of its choosing.
            if not hmac.compare_digest(query.get("state", "").encode(), request.state.encode()):
                raise StateMismatchError(
                    "The callback's state does not match the one sent with the authorization "
                    "request: it may be forged (CSRF) or stale. Run sfoauth login --web again."
                )
            code = flow.parse_callback(query, state=request.state)
            token = await flow.exchange(code, code_verifier=request.code_verifier)
        except SFOAuthError as exc:
            listener.finish("Login failed", f"{exc} Go back to the terminal.")
            raise
        listener.finish("Logged in", "You are logged in; you can close this window.")
    finally:
        await listener.close()
    store = token_store(directory, env)
    key = flow.store_key(token)
    async with Refresher(
        flow, store=store, store_key=key, session_timeout=timedelta(seconds=session_timeout_s)
    ) as refresher:
        await refresher.put_token(token)
    saved = SavedLogin(
        client_id=flow.client_id,
        login_url=flow.login_url,
        redirect_uri=flow.redirect_uri,
        store_key=key,
        username=await _username(flow, token),
        user_id=token.user_id,
        org_id=token.org_id,
        instance_url=token.instance_url,
        scope=values.get("SF_SCOPE"),
    )
    saved.save(directory)
    return LoginResult(token=token, saved=saved, token_file=store.path)
