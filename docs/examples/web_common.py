"""What the two web examples share: their settings, and the page they show.

`web_settings` reads the Salesforce settings from ``SF_*`` variables (the names of
`sfoauth_async.flow_from_env`); without ``SF_CLIENT_ID`` it starts an embedded fake
Salesforce org, with two users who each own a few Accounts. `profile` asks Salesforce for
the logged-in user's name and their 10 newest Accounts; `home_page` shows them.

Variables: ``SF_CLIENT_ID``, ``SF_CLIENT_SECRET``, ``SF_LOGIN_URL`` (your My Domain URL),
``SF_REDIRECT_URI`` (default ``http://<host>:<port>/login/salesforce/callback``),
``SF_SCOPE`` (default ``api refresh_token openid``), ``APP_SECRET_KEY`` (the cookies' key:
the same in every worker; a random one per run otherwise) and where users' tokens live:
``REDIS_URL`` (a fleet), ``SF_TOKEN_FILE`` (one machine), or neither (memory: users log in
again after a restart).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from sfoauth_async import (
    AsyncSession,
    AuthorizationCodeFlow,
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenStore,
    flow_from_env,
)
from sfoauth_async.testing import FakeSalesforceOrg

CALLBACK_PATH = "/login/salesforce/callback"
LOGOUT_PATH = "/logout/salesforce"
_SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15,18}")


@dataclass
class WebSettings:
    """What an example app needs: the flow, where tokens live, the cookies' key."""

    flow: AuthorizationCodeFlow
    store: TokenStore
    secret_key: str
    greeting: str


@asynccontextmanager
async def _store_from_env() -> AsyncIterator[TokenStore]:
    if os.environ.get("REDIS_URL"):
        async with RedisTokenStore.from_url(os.environ["REDIS_URL"]) as store:
            yield store
    elif os.environ.get("SF_TOKEN_FILE"):
        yield FileTokenStore(os.environ["SF_TOKEN_FILE"])
    else:
        yield MemoryTokenStore()


def _seed(org: FakeSalesforceOrg) -> None:
    """Two users of the fake org, each owning Accounts the other cannot see."""
    ada = org.add_user(username="ada@fake.org", password="ada-password", display_name="Ada")
    now = datetime.now(UTC)
    for owner, count in ((org.user, 12), (ada, 3)):
        name = owner.display_name
        for n in range(count):
            created = (now - timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
            fields = {"Name": f"{name} account {n + 1}", "OwnerId": owner.user_id}
            org.add_record("Account", {**fields, "CreatedDate": created})


@asynccontextmanager
async def web_settings(*, host: str, port: int) -> AsyncIterator[WebSettings]:
    """The example's settings, from ``SF_*`` variables or an embedded fake org.

    Example:
        ```python
        async with web_settings(host="127.0.0.1", port=8000) as settings:
            print(settings.greeting)
        ```
    """
    secret_key = os.environ.get("APP_SECRET_KEY") or secrets.token_urlsafe(32)
    env = {
        "SF_REDIRECT_URI": f"http://{host}:{port}{CALLBACK_PATH}",
        "SF_SCOPE": "api refresh_token openid",
        **{k: v for k, v in os.environ.items() if k.startswith("SF_") and v},
    }
    async with _store_from_env() as store:
        if "SF_CLIENT_ID" in env:
            flow = flow_from_env(env, flow="authorization_code")
            assert isinstance(flow, AuthorizationCodeFlow)
            greeting = f"Open http://{host}:{port}/ and log in with Salesforce."
            yield WebSettings(flow, store, secret_key, greeting)
            return
        async with FakeSalesforceOrg(private_sharing=True) as org:
            _seed(org)
            flow = org.authorization_code_flow(env["SF_REDIRECT_URI"])
            greeting = (
                f"Open http://{host}:{port}/ and log in to the fake org as "
                f"{org.user.username} with password {org.user.password} "
                f"(or as ada@fake.org with password ada-password)."
            )
            yield WebSettings(flow, store, secret_key, greeting)


async def profile(sf: AsyncSession) -> dict[str, Any]:
    """The user's name (OpenID Connect userinfo) and their 10 newest Accounts.

    Example:
        ```python
        me = await profile(sf)
        print(me["name"], len(me["accounts"]))
        ```
    """
    token = await sf.get_token()
    if not _SALESFORCE_ID.fullmatch(token.user_id or ""):
        raise ValueError("the token names no user")
    # The query goes first: a REST call heals a session that expired on the server (401,
    # one refresh), after which userinfo gets the fresh token too.
    soql = (
        "SELECT Id, Name, CreatedDate FROM Account "  # noqa: S608 - an id, checked above
        f"WHERE OwnerId = '{token.user_id}' ORDER BY CreatedDate DESC LIMIT 10"
    )
    accounts = await sf.query_all(soql)
    async with sf.get("/services/oauth2/userinfo") as resp:
        resp.raise_for_status()
        info = await resp.json()
    return {
        "name": info.get("name"),
        "username": info.get("preferred_username"),
        "accounts": [{"id": a["Id"], "name": a["Name"]} for a in accounts],
    }


def home_page(me: dict[str, Any]) -> str:
    """The logged-in page: the user's name, their Accounts, a logout button.

    Example:
        ```python
        html = home_page({"name": "Ada", "username": "ada@fake.org", "accounts": []})
        ```
    """
    rows = "\n".join(
        f'<li data-id="{escape(a["id"])}">{escape(a["name"])}</li>' for a in me["accounts"]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Your Salesforce accounts</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f3f3f3; margin: 0; }}
main {{ max-width: 36rem; margin: 3rem auto; background: #fff; padding: 2rem;
       border: 1px solid #ddd; border-radius: .5rem; }}
button {{ background: #0176d3; color: #fff; border: 0; padding: .5rem 1rem;
          border-radius: .25rem; font-size: 1rem; cursor: pointer; }}
</style></head>
<body><main>
<h1>Hello, <span id="name">{escape(me["name"] or "")}</span></h1>
<p>Logged in with Salesforce as <strong id="username">{escape(me["username"] or "")}</strong>.</p>
<h2>Your 10 newest Accounts</h2>
<ul id="accounts">
{rows}
</ul>
<form method="post" action="{LOGOUT_PATH}"><button id="logout" type="submit">Log out</button></form>
</main></body></html>
"""
