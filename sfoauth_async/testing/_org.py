"""`FakeSalesforceOrg`: configuration, state, lifecycle and counters of the embedded fake org.

The org runs two aiohttp sites on ``127.0.0.1`` (random free ports) on the caller's event
loop: ``login_url`` stands in for ``login.salesforce.com`` (OAuth only) and ``my_domain_url``
for the org's My Domain (OAuth and REST). The HTTP handlers live in ``_oauth.py`` and
``_rest.py``; this module owns what they share: apps, users, tokens, records, stats, faults.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import jwt
from aiohttp import web

from ._faults import FaultQueues
from ._keys import ORG_SIGNING_KID, app_private_key_pem, loopback_tls_pem, org_signing_key
from ._model import (
    AccessTokenRecord,
    AuthorizationCode,
    FakeApp,
    FakeUser,
    PendingApproval,
    RefreshFamily,
    new_id,
    opaque,
)
from ._oauth import OAuthSite
from ._records import GeneratedIds, OrgRecords
from ._rest import KEY_PREFIXES, RestSite

if TYPE_CHECKING:
    from sfoauth_async import (
        AuthorizationCodeFlow,
        ClientCredentialsFlow,
        JWTBearerFlow,
        PasswordFlow,
        RefreshTokenFlow,
    )

__all__ = ["FakeOrgStats", "FakeSalesforceOrg"]

PRODUCTION_AUDIENCE = "https://login.salesforce.com"
SANDBOX_AUDIENCE = "https://test.salesforce.com"
_LOGIN_WINDOW_S = 3600.0
_SHUTDOWN_TIMEOUT_S = 2.0

Site = Literal["login", "my_domain", "instance"]


@dataclass
class FakeOrgStats:
    """What the fake org has served since it started (or since `reset`).

    Attributes:
        token_requests: Token-endpoint requests by ``grant_type`` as sent (``"missing"`` when
            absent), failed and faulted ones included.
        bearer_token_requests: Token-endpoint requests that carried an ``Authorization:
            Bearer`` header: a client leaking its access token to the token endpoint.
        max_concurrent_token_requests: The most token requests ever in flight at once.
        api_requests: Requests to REST and Bulk endpoints, rejected and faulted ones included.
        unauthorized: REST 401s and Bulk ``InvalidSessionId`` 400s served.
        revocations: Requests to the revoke endpoint, failed ones included.
        introspections: Requests to the introspection endpoint, failed ones included.
        refresh_token_reuses: Refresh grants that presented a rotated-out refresh token:
            a refresh token sent twice.
        grants_revoked: Grants (refresh-token families) revoked because of such a reuse,
            as Salesforce does: every process using the grant is logged out.

    Example:
        ```python
        await flow.fetch_token()
        assert org.stats.token_requests["client_credentials"] == 1
        org.stats.reset()
        ```
    """

    token_requests: Counter[str] = field(default_factory=Counter)
    bearer_token_requests: int = 0
    max_concurrent_token_requests: int = 0
    api_requests: int = 0
    unauthorized: int = 0
    revocations: int = 0
    introspections: int = 0
    refresh_token_reuses: int = 0
    grants_revoked: int = 0
    _held: Callable[[], int] = field(default=lambda: 0, init=False, repr=False, compare=False)
    _waiters: list[asyncio.Future[None]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    @property
    def token_requests_total(self) -> int:
        """Every token-endpoint request, whatever its grant type.

        Example:
            ```python
            assert org.stats.token_requests_total == 1
            ```
        """
        return sum(self.token_requests.values())

    @property
    def held(self) -> int:
        """Requests of any family parked in a ``Fault.hold()`` right now.

        Example:
            ```python
            while org.stats.held < 3:
                await org.stats.wait_changed()
            ```
        """
        return self._held()

    async def wait_changed(self) -> None:
        """Return at the next change of any counter, or of `held`.

        Lets a test wait for a condition without sleeping; loop on the condition, because a
        change may not be the one you wait for. Wrap it in ``asyncio.timeout()``.

        Example:
            ```python
            async with asyncio.timeout(5):
                while org.stats.token_requests_total < 2:
                    await org.stats.wait_changed()
            ```
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            if future in self._waiters:
                self._waiters.remove(future)

    def reset(self) -> None:
        """Zero every counter.

        Example:
            ```python
            org.stats.reset()
            assert org.stats.token_requests_total == 0
            ```
        """
        self.token_requests.clear()
        self.bearer_token_requests = 0
        self.max_concurrent_token_requests = 0
        self.api_requests = 0
        self.unauthorized = 0
        self.revocations = 0
        self.introspections = 0
        self.refresh_token_reuses = 0
        self.grants_revoked = 0
        self._changed()

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)


class FakeSalesforceOrg:
    """An embedded fake Salesforce org, served over real HTTP on ``127.0.0.1``.

    Every setting below is also a mutable attribute of the same name (``rotate_refresh_tokens``
    lives on ``org.app``), read on each request.

    Args:
        session_lifetime: How long an access token works after it is issued (fixed, not
            sliding). ``timedelta(0)`` issues tokens that are dead on arrival.
        rotate_refresh_tokens: Refresh-token rotation for the default app.
        token_delay_s: Every token request waits this long before answering.
        login_rate_limit_per_hour: Logins (JWT, client-credentials and password grants) per
            user in a rolling hour before ``invalid_grant`` / ``login rate exceeded``;
            ``None`` for no limit.
        auto_approve: The authorize endpoint redirects at once with a code for the
            ``login_hint`` user (or the default user), skipping the login and approval pages.
        sandbox: JWT assertions must say ``aud`` ``https://test.salesforce.com`` instead of
            ``https://login.salesforce.com`` (the site URLs are accepted either way).
        jwt_access_tokens: Issue RS256 JWT access tokens (with ``exp``) and answer
            ``token_format: "jwt"``.
        password_flow_enabled: ``False`` answers the password grant with
            ``invalid_grant`` / ``authentication failure``, as orgs made since Summer '23 do.
        clock: Seconds since the epoch; pass a fake clock to move time without sleeping.
        login_port: The port of `login_url`; ``0`` (default) for a free one.
        my_domain_port: The port of `my_domain_url`; ``0`` (default) for a free one.
        tls: Serve HTTPS with a self-signed certificate for ``127.0.0.1``; clients must
            trust it (`client_ssl_context`), as they would a company's own CA.
        private_sharing: Queries return only the records the session's user owns (their
            ``OwnerId``) and records without an owner, as Salesforce's organization-wide
            default "Private" does; ``False`` (default): every record to every user.

    Example:
        ```python
        async with FakeSalesforceOrg(rotate_refresh_tokens=True) as org:
            refresh_token = org.issue_refresh_token()
            async with aiohttp.ClientSession() as http:
                response = await http.post(
                    org.my_domain_url + "/services/oauth2/token",
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": refresh_token,
                        "client_id": org.app.client_id,
                        "client_secret": org.app.client_secret,
                    },
                )
                assert "refresh_token" in await response.json()
        ```
    """

    def __init__(
        self,
        *,
        session_lifetime: timedelta = timedelta(hours=2),
        rotate_refresh_tokens: bool = False,
        token_delay_s: float = 0.0,
        login_rate_limit_per_hour: int | None = 3600,
        auto_approve: bool = False,
        sandbox: bool = False,
        jwt_access_tokens: bool = False,
        password_flow_enabled: bool = True,
        clock: Callable[[], float] = time.time,
        login_port: int = 0,
        my_domain_port: int = 0,
        tls: bool = False,
        private_sharing: bool = False,
    ) -> None:
        if session_lifetime < timedelta(0):
            raise ValueError(f"session_lifetime must not be negative, got {session_lifetime}.")
        if token_delay_s < 0:
            raise ValueError(f"token_delay_s must not be negative, got {token_delay_s!r}.")
        if login_rate_limit_per_hour is not None and login_rate_limit_per_hour < 0:
            raise ValueError(
                "login_rate_limit_per_hour must be None or >= 0, "
                f"got {login_rate_limit_per_hour!r}."
            )
        self.session_lifetime = session_lifetime
        self.token_delay_s = token_delay_s
        self.login_rate_limit_per_hour = login_rate_limit_per_hour
        self.auto_approve = auto_approve
        self.sandbox = sandbox
        self.jwt_access_tokens = jwt_access_tokens
        self.password_flow_enabled = password_flow_enabled
        self.private_sharing = private_sharing
        self.clock = clock
        for name, port in (("login_port", login_port), ("my_domain_port", my_domain_port)):
            if not 0 <= port <= 65535:
                raise ValueError(f"{name} must be 0 (a free port) to 65535, got {port!r}.")
        self._ports: dict[Site, int] = {"login": login_port, "my_domain": my_domain_port}
        self.tls = tls
        """Serve HTTPS (a self-signed certificate for 127.0.0.1; see `client_ssl_context`)."""
        self.api_usage = 0
        """Authenticated API calls so far, reported in ``Sforce-Limit-Info``; settable."""
        self.api_limit = 100_000
        """Daily API allocation; at ``api_usage >= api_limit`` REST answers 403."""
        self.stats = FakeOrgStats()
        self.faults = FaultQueues(on_change=self.stats._changed)
        self.stats._held = lambda: (
            self.faults.token.held + self.faults.api.held + self.faults.oauth.held
        )
        self.org_id = new_id("00D")

        user = FakeUser(username="admin@fake.org", display_name="Fake Admin")
        self._users: list[FakeUser] = [user]
        self._apps: list[FakeApp] = [
            FakeApp(rotate_refresh_tokens=rotate_refresh_tokens, client_credentials_user=user)
        ]
        self._access_tokens: dict[str, AccessTokenRecord] = {}
        self._refresh_tokens: dict[str, RefreshFamily] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._approvals: dict[str, PendingApproval] = {}
        self._logins: dict[FakeUser, deque[float]] = {}
        self._records: dict[str, tuple[str, dict[str, Any]]] = {}
        self._data = OrgRecords(self._records)
        self._token_in_flight = 0
        self._runners: list[web.AppRunner] = []
        self._urls: dict[Site, str] = {}
        self._closing: asyncio.Event | None = None
        self._instance_site: Site = "my_domain"
        self._state: Literal["new", "started", "closed"] = "new"

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind both sites on ``127.0.0.1`` (free ports unless given) and start serving.

        Raises:
            RuntimeError: Already started, or closed (a closed org cannot start again).
            OSError: A port given to the constructor is in use.

        Example:
            ```python
            org = FakeSalesforceOrg()
            await org.start()
            try:
                print(org.my_domain_url)
            finally:
                await org.close()
            ```
        """
        if self._state != "new":
            raise RuntimeError(f"this FakeSalesforceOrg is already {self._state}")
        self._state = "started"
        self._closing = asyncio.Event()
        try:
            await self._serve("login", self._ports["login"])
            await self._serve("my_domain", self._ports["my_domain"])
        except BaseException:
            await self.close()
            raise

    async def _serve(self, site: Site, port: int) -> None:
        app = web.Application()
        if site != "instance":
            OAuthSite(self, site).add_routes(app.router)
        if site != "login":
            RestSite(self).add_routes(app.router)
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=self._server_ssl()).start()
        scheme = "https" if self.tls else "http"
        self._urls[site] = f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"

    def _server_ssl(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        certificate, key = loopback_tls_pem()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as scratch:
            cert_file, key_file = Path(scratch, "cert.pem"), Path(scratch, "key.pem")
            cert_file.write_bytes(certificate)
            key_file.write_bytes(key)
            context.load_cert_chain(cert_file, key_file)
        return context

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this org's certificate (with ``tls=True``).

        Example:
            ```python
            connector = aiohttp.TCPConnector(ssl=org.client_ssl_context())
            ```
        """
        certificate, _ = loopback_tls_pem()
        return ssl.create_default_context(cadata=certificate.decode("ascii"))

    async def move_instance(self, *, end_sessions: bool = True) -> str:
        """Move the org to another instance, as an org migration does; return its URL.

        Token responses from then on name the new instance (a third site, REST only, on a
        free port) as ``instance_url``; REST keeps working on both. With ``end_sessions``
        every access token issued so far ends too, so a client meets a 401 on the old
        instance and learns the new one from its refresh.

        Example:
            ```python
            new = await org.move_instance()
            assert org.instance_url == new != org.my_domain_url
            ```
        """
        if "instance" not in self._urls:
            await self._serve("instance", 0)
        self._instance_site = "instance"
        if end_sessions:
            self.expire_all_sessions()
        return self._urls["instance"]

    async def close(self) -> None:
        """Stop serving; requests parked in ``Fault.hold()`` see their connection dropped.

        Safe to call twice.

        Example:
            ```python
            await org.close()
            ```
        """
        if self._state == "closed":
            return
        self._state = "closed"
        if self._closing is not None:
            self._closing.set()
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        where = self._urls.get("my_domain", self._state)
        return f"<FakeSalesforceOrg {self.org_id} {where}>"

    # -- addresses and identities -------------------------------------------------------------

    def _url(self, site: Site) -> str:
        try:
            return self._urls[site]
        except KeyError:
            raise RuntimeError(
                "the fake org is not serving; use `async with FakeSalesforceOrg() as org:` "
                "or `await org.start()` first"
            ) from None

    @property
    def login_url(self) -> str:
        """``http://127.0.0.1:<port>``: the stand-in for ``https://login.salesforce.com``.

        Serves OAuth only; the client-credentials grant is refused here, as on the real host.

        Example:
            ```python
            token_url = org.login_url + "/services/oauth2/token"
            ```
        """
        return self._url("login")

    @property
    def my_domain_url(self) -> str:
        """``http://127.0.0.1:<port>``: the org's My Domain, serving OAuth and REST.

        Example:
            ```python
            versions_url = org.my_domain_url + "/services/data/"
            ```
        """
        return self._url("my_domain")

    @property
    def instance_url(self) -> str:
        """The ``instance_url`` of token responses: `my_domain_url`, until `move_instance`.

        Example:
            ```python
            assert org.instance_url == org.my_domain_url
            ```
        """
        return self._url(self._instance_site)

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        """JWT-bearer ``aud`` values the org accepts.

        The generic login host (``https://login.salesforce.com``, or
        ``https://test.salesforce.com`` when ``sandbox``), `login_url` and `my_domain_url`.

        Example:
            ```python
            assert org.login_url in org.accepted_audiences
            ```
        """
        generic = SANDBOX_AUDIENCE if self.sandbox else PRODUCTION_AUDIENCE
        return (generic, self.login_url, self.my_domain_url)

    @property
    def app(self) -> FakeApp:
        """The default connected app; JWT-ready, and its client-credentials user is `user`.

        Example:
            ```python
            org.app.rotate_refresh_tokens = True
            ```
        """
        return self._apps[0]

    @property
    def user(self) -> FakeUser:
        """The default user (``admin@fake.org``), pre-authorized for every app.

        Example:
            ```python
            password_with_token = org.user.password + org.user.security_token
            ```
        """
        return self._users[0]

    @property
    def apps(self) -> tuple[FakeApp, ...]:
        """Every connected app, the default first.

        Example:
            ```python
            assert org.apps[0] is org.app
            ```
        """
        return tuple(self._apps)

    @property
    def users(self) -> tuple[FakeUser, ...]:
        """Every user, the default first.

        Example:
            ```python
            assert org.users[0] is org.user
            ```
        """
        return tuple(self._users)

    @property
    def private_key_pem(self) -> bytes:
        """PKCS#8 PEM of the RSA key whose certificate the default app holds.

        One 2048-bit key is generated per process and shared by every fake org.

        Example:
            ```python
            assertion = jwt.encode(claims, org.private_key_pem, algorithm="RS256")
            ```
        """
        return app_private_key_pem()

    def identity_url(self, user: FakeUser | None = None) -> str:
        """The identity URL (the ``id`` of token responses): ``{login_url}/id/{org}/{user}``.

        Example:
            ```python
            assert token["id"] == org.identity_url()
            ```
        """
        return f"{self.login_url}/id/{self.org_id}/{(user or self.user).user_id}"

    def add_app(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        name: str = "Fake Connected App",
        callback_urls: Iterable[str] = ("http://localhost:1717/OauthRedirect",),
        scopes: Iterable[str] | None = None,
        confidential: bool = True,
        require_secret_for_refresh: bool = True,
        require_pkce: bool = False,
        rotate_refresh_tokens: bool = False,
        client_credentials_user: FakeUser | None = None,
        certificate_pem: bytes | None = None,
        introspect_all_tokens: bool = False,
    ) -> FakeApp:
        """Register another connected app; see `FakeApp` for the settings.

        Omitted ``client_id``/``client_secret`` are generated; ``scopes`` defaults to the
        default app's; ``certificate_pem=None`` installs the certificate of
        `private_key_pem`, so JWT bearer works with every app unless you pass your own.

        Example:
            ```python
            app = org.add_app(rotate_refresh_tokens=True, client_credentials_user=org.user)
            ```
        """
        kwargs: dict[str, Any] = {}
        if client_id is not None:
            kwargs["client_id"] = client_id
        if client_secret is not None:
            kwargs["client_secret"] = client_secret
        if scopes is not None:
            kwargs["scopes"] = list(scopes)
        if certificate_pem is not None:
            kwargs["certificate_pem"] = certificate_pem
        if self._find_app(kwargs.get("client_id")) is not None:
            raise ValueError(f"an app with client_id {client_id!r} already exists")
        app = FakeApp(
            name=name,
            callback_urls=list(callback_urls),
            confidential=confidential,
            require_secret_for_refresh=require_secret_for_refresh,
            require_pkce=require_pkce,
            rotate_refresh_tokens=rotate_refresh_tokens,
            client_credentials_user=client_credentials_user,
            introspect_all_tokens=introspect_all_tokens,
            **kwargs,
        )
        self._apps.append(app)
        return app

    def add_user(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        security_token: str | None = None,
        email: str = "",
        display_name: str = "Fake User",
        pre_authorized: bool = True,
        active: bool = True,
    ) -> FakeUser:
        """Register another user; see `FakeUser` for the settings.

        Omitted ``username``/``password``/``security_token`` are generated.

        Example:
            ```python
            bob = org.add_user(username="bob@example.com", password="hunter2")
            ```
        """
        kwargs: dict[str, Any] = {}
        if username is not None:
            kwargs["username"] = username
        if password is not None:
            kwargs["password"] = password
        if security_token is not None:
            kwargs["security_token"] = security_token
        if username is not None and self._find_user(username) is not None:
            raise ValueError(f"a user named {username!r} already exists")
        user = FakeUser(
            email=email,
            display_name=display_name,
            pre_authorized=pre_authorized,
            active=active,
            **kwargs,
        )
        self._users.append(user)
        return user

    # -- test controls --------------------------------------------------------------------------

    def expire_all_sessions(self) -> None:
        """End every access token issued so far, as a session timeout would.

        Refresh tokens keep working.

        Example:
            ```python
            org.expire_all_sessions()
            # the next REST call answers 401 INVALID_SESSION_ID
            ```
        """
        for record in self._access_tokens.values():
            record.ended = True

    def revoke_access_token(self, token: str) -> None:
        """End one access token, as an admin (or the revoke endpoint) would.

        Raises:
            KeyError: The org never issued this token.

        Example:
            ```python
            org.revoke_access_token(token["access_token"])
            ```
        """
        self._access_tokens[token].ended = True

    def revoke_refresh_token(self, token: str) -> None:
        """Revoke a refresh token and every access token issued from it.

        Raises:
            KeyError: The org never issued this token.

        Example:
            ```python
            org.revoke_refresh_token(refresh_token)
            ```
        """
        self._refresh_tokens[token].revoke()

    def issue_refresh_token(
        self,
        user: FakeUser | None = None,
        app: FakeApp | None = None,
        scopes: Iterable[str] | None = None,
    ) -> str:
        """Mint a refresh token as if ``user`` had completed the web-server flow for ``app``.

        Args:
            user: Defaults to the default user.
            app: Defaults to the default app.
            scopes: The granted scopes; defaults to all of the app's scopes.

        Example:
            ```python
            flow = org.refresh_token_flow(org.issue_refresh_token(scopes=["api"]))
            ```
        """
        app = app or self.app
        user = user or self.user
        granted = tuple(scopes) if scopes is not None else tuple(app.scopes)
        return self._new_family(app, user, granted).current

    def add_record(self, sobject: str, fields: dict[str, Any] | None = None) -> str:
        """Store a record that REST ``GET``/``query`` will return; returns its new id.

        Example:
            ```python
            account_id = org.add_record("Account", {"Name": "Acme"})
            ```
        """
        record_id = new_id(KEY_PREFIXES.get(sobject.lower(), "a00"))
        self._records[record_id] = (sobject, {**(fields or {}), "Id": record_id})
        return record_id

    def seed_records(self, sobject: str, count: int, *, seed: int = 0) -> Sequence[str]:
        """Make ``count`` records of ``sobject`` that REST serves, computed only when read.

        A table of 100,000 Accounts costs no memory until queried, and a query pages through
        it (2,000 records a page by default). Each record has ``Id``, ``Name``
        (``"Account 000042"``), ``AccountNumber``, ``Industry``, ``AnnualRevenue``,
        ``NumberOfEmployees``, ``BillingCity``, ``External_Id__c`` (``"GEN-<seed>-0000042"``)
        and ``IsDeleted``; the same ``seed`` gives the same values. A record written through
        REST (updated, upserted or deleted) is stored from then on, like `add_record`'s.
        Seeding the same sObject again replaces its generated records.

        Returns:
            A lazy sequence of the records' ids (``ids[41]`` is record 41's).

        Example:
            ```python
            ids = org.seed_records("Account", 100_000)
            assert len(ids) == 100_000
            ```
        """
        table = self._data.seed(
            sobject, count, seed=seed, prefix=KEY_PREFIXES.get(sobject.lower(), "a00")
        )
        return GeneratedIds(table)

    def clear_records(self) -> None:
        """Forget every stored and deleted record, and open query cursors; seeded tables stay.

        Example:
            ```python
            org.clear_records()
            assert org.get_record(account_id) is None
            ```
        """
        self._records.clear()
        self._data.recycle_bin.clear()
        self._data.cursors.clear()
        self._data.forget_indexes()

    def get_record(self, record_id: str) -> dict[str, Any] | None:
        """The fields of a stored record (``Id`` included), or ``None``.

        Example:
            ```python
            assert org.get_record(account_id)["Name"] == "Acme"
            ```
        """
        stored = self._records.get(record_id)
        return dict(stored[1]) if stored is not None else None

    # -- flow factories (the product's classes, imported lazily) ------------------------------

    def client_credentials_flow(self) -> ClientCredentialsFlow:
        """A `ClientCredentialsFlow` for the default app, on the My Domain site.

        Example:
            ```python
            token = await org.client_credentials_flow().fetch_token()
            ```
        """
        from sfoauth_async import (  # noqa: PLC0415 - lazy: no import cycle with the product
            ClientCredentialsFlow,
        )

        return ClientCredentialsFlow(
            client_id=self.app.client_id,
            client_secret=self.app.client_secret,
            login_url=self.my_domain_url,
        )

    def jwt_bearer_flow(self, username: str | None = None) -> JWTBearerFlow:
        """A `JWTBearerFlow` for the default app and ``username`` (default user), on login_url.

        Example:
            ```python
            token = await org.jwt_bearer_flow().fetch_token()
            ```
        """
        from sfoauth_async import (  # noqa: PLC0415 - lazy: no import cycle with the product
            JWTBearerFlow,
        )

        return JWTBearerFlow(
            client_id=self.app.client_id,
            username=username or self.user.username,
            private_key=self.private_key_pem,
            login_url=self.login_url,
        )

    def password_flow(self) -> PasswordFlow:
        """A `PasswordFlow` for the default app and user, on login_url.

        The class emits a `DeprecationWarning` (the flow is retired in Feb 2027).

        Example:
            ```python
            with pytest.deprecated_call():
                flow = org.password_flow()
            ```
        """
        from sfoauth_async import (  # noqa: PLC0415 - lazy: no import cycle with the product
            PasswordFlow,
        )

        return PasswordFlow(
            client_id=self.app.client_id,
            client_secret=self.app.client_secret,
            username=self.user.username,
            password=self.user.password,
            security_token=self.user.security_token,
            login_url=self.login_url,
        )

    def refresh_token_flow(self, refresh_token: str | None = None) -> RefreshTokenFlow:
        """A `RefreshTokenFlow` for the default app; mints a refresh token if none is given.

        Example:
            ```python
            token = await org.refresh_token_flow().fetch_token()
            ```
        """
        from sfoauth_async import (  # noqa: PLC0415 - lazy: no import cycle with the product
            RefreshTokenFlow,
        )

        return RefreshTokenFlow(
            client_id=self.app.client_id,
            refresh_token=refresh_token or self.issue_refresh_token(),
            client_secret=self.app.client_secret,
            login_url=self.login_url,
        )

    def authorization_code_flow(self, redirect_uri: str) -> AuthorizationCodeFlow:
        """An `AuthorizationCodeFlow` for the default app, on login_url.

        ``redirect_uri`` is added to the app's callback URLs if missing.

        Example:
            ```python
            flow = org.authorization_code_flow("http://127.0.0.1:8765/callback")
            ```
        """
        from sfoauth_async import (  # noqa: PLC0415 - lazy: no import cycle with the product
            AuthorizationCodeFlow,
        )

        if redirect_uri not in self.app.callback_urls:
            self.app.callback_urls.append(redirect_uri)
        return AuthorizationCodeFlow(
            client_id=self.app.client_id,
            redirect_uri=redirect_uri,
            client_secret=self.app.client_secret,
            login_url=self.login_url,
        )

    # -- state shared with the handlers ---------------------------------------------------------

    def _now(self) -> float:
        return self.clock()

    def _site_url(self, site: Site) -> str:
        return self._url(site)

    def _find_app(self, client_id: str | None) -> FakeApp | None:
        if not client_id:
            return None
        return next((app for app in self._apps if app.client_id == client_id), None)

    def _find_user(self, username: str | None) -> FakeUser | None:
        if not username:
            return None
        wanted = username.lower()
        return next((user for user in self._users if user.username.lower() == wanted), None)

    def _find_user_by_id(self, user_id: str) -> FakeUser | None:
        # Salesforce accepts the 15- and the 18-character form of an id.
        return next(
            (user for user in self._users if user_id in (user.user_id, user.user_id[:15])),
            None,
        )

    def _access_token(self, value: str) -> AccessTokenRecord | None:
        return self._access_tokens.get(value)

    def _live_access_token(self, value: str) -> AccessTokenRecord | None:
        record = self._access_tokens.get(value)
        if record is None or not record.alive(self._now()) or not record.user.active:
            # Deactivating a user ends their sessions, as in Salesforce.
            return None
        return record

    def _refresh_family(self, value: str) -> RefreshFamily | None:
        return self._refresh_tokens.get(value)

    def _mint_access_token(
        self,
        app: FakeApp,
        user: FakeUser,
        scopes: tuple[str, ...],
        grant: str,
        family: RefreshFamily | None = None,
    ) -> AccessTokenRecord:
        now = self._now()
        expires_at = now + self.session_lifetime.total_seconds()
        if self.jwt_access_tokens:
            claims = {
                "iss": self.my_domain_url,
                "sub": self.identity_url(user),
                "aud": "https://api.salesforce.com",
                "client_id": app.client_id,
                "scp": list(scopes),
                "mty": "oauth",
                "tnk": self.org_id,
                "iat": int(now),
                "nbf": int(now),
                "exp": int(expires_at),
                "jti": uuid.uuid4().hex,
            }
            value = jwt.encode(
                claims, org_signing_key(), algorithm="RS256", headers={"kid": ORG_SIGNING_KID}
            )
        else:
            value = opaque(self.org_id + "!AQ", 72)
        record = AccessTokenRecord(
            value=value,
            app=app,
            user=user,
            scopes=scopes,
            grant=grant,
            issued_at=now,
            expires_at=expires_at,
            family=family,
        )
        self._access_tokens[value] = record
        if family is not None:
            family.access_tokens.append(record)
        return record

    def _new_family(self, app: FakeApp, user: FakeUser, scopes: tuple[str, ...]) -> RefreshFamily:
        family = RefreshFamily(
            app=app, user=user, scopes=scopes, current=opaque("5Aep861", 64), issued_at=self._now()
        )
        self._refresh_tokens[family.current] = family
        return family

    def _rotate(self, family: RefreshFamily) -> str:
        family.retired.add(family.current)
        family.current = opaque("5Aep861", 64)
        self._refresh_tokens[family.current] = family
        return family.current

    def _new_code(self, code: AuthorizationCode) -> str:
        value = opaque("aPrx", 48)
        self._codes[value] = code
        return value

    def _new_approval(self, approval: PendingApproval) -> str:
        value = opaque("", 24)
        self._approvals[value] = approval
        return value

    def _count_login(self, user: FakeUser) -> bool:
        """Record one login for ``user``; ``False`` when it would exceed the hourly limit."""
        limit = self.login_rate_limit_per_hour
        if limit is None:
            return True
        now = self._now()
        window = self._logins.setdefault(user, deque())
        while window and window[0] <= now - _LOGIN_WINDOW_S:
            window.popleft()
        if len(window) >= limit:
            return False
        window.append(now)
        return True

    def _token_request_started(self) -> None:
        self._token_in_flight += 1
        self.stats.max_concurrent_token_requests = max(
            self.stats.max_concurrent_token_requests, self._token_in_flight
        )
        self.stats._changed()

    def _token_request_finished(self) -> None:
        self._token_in_flight -= 1

    def _closing_event(self) -> asyncio.Event:
        assert self._closing is not None
        return self._closing
