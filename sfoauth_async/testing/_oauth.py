"""OAuth endpoints of the fake org, served on both sites (login host and My Domain).

Token (every grant), revoke, introspect, userinfo, the identity URL, JWKS, discovery, and the
browser pages of the authorize endpoint. Shapes follow the protocol reference
(``salesforce-oauth.md``); where it marks a behaviour UNCONFIRMED, the comment next to the code
says which one the fake picked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlencode

import jwt
from aiohttp import web

from ._http import form_fields, json_response
from ._keys import ORG_SIGNING_KID, at_hash, jwks, load_verifying_key, org_signing_key
from ._model import AccessTokenRecord, AuthorizationCode, FakeApp, FakeUser, PendingApproval
from ._pages import approval_page, error_page, login_page

if TYPE_CHECKING:
    from ._org import FakeSalesforceOrg, Site

__all__ = ["JWT_BEARER", "OAuthFailure", "OAuthSite"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Salesforce's codes are "short-lived"; the exact lifetime is UNCONFIRMED, 15 min is assumed.
_CODE_LIFETIME_S = 15 * 60
_APPROVAL_LIFETIME_S = 15 * 60
# The JWT-bearer "exp within 3 minutes" rule, plus a little clock skew either way.
_ASSERTION_MAX_AHEAD_S = 180
_ASSERTION_SKEW_S = 10
_ID_TOKEN_LIFETIME_S = 300
# Scopes a server-to-server token never gets (simple-salesforce PR #662).
_NO_SESSION_SCOPES = frozenset({"full", "web", "offline_access", "refresh_token"})
_REFRESH_SCOPES = frozenset({"refresh_token", "offline_access"})
_AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "login_hint",
    "prompt",
    "display",
)
_BAD_LOGIN = (
    "Please check your username and password. "
    "If you still can't log in, contact your Salesforce administrator."
)


class OAuthFailure(Exception):  # noqa: N818 - an answer to send, not a bug
    """An OAuth error answer: ``{"error": ..., "error_description": ...}`` with a status."""

    def __init__(
        self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def response(self) -> web.Response:
        """The error as Salesforce sends it."""
        return json_response(
            {"error": self.error, "error_description": self.description},
            status=self.status,
            headers={**_NO_STORE, **self.headers},
        )


def _invalid_grant(description: str) -> OAuthFailure:
    return OAuthFailure("invalid_grant", description)


def _invalid_client() -> OAuthFailure:
    return OAuthFailure("invalid_client", "invalid client credentials")


_EXPIRED_TOKEN = "expired access/refresh token"
_INVALID_ASSERTION = "invalid assertion"


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _signature(secret: str, identity: str, issued_at: str) -> str:
    mac = hmac.new(secret.encode(), (identity + issued_at).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _redirect(uri: str, params: dict[str, str]) -> web.Response:
    # urlencode writes spaces as "+", as Salesforce's own redirects do.
    location = uri + ("&" if "?" in uri else "?") + urlencode(params)
    return web.Response(status=302, headers={"Location": location, **_NO_STORE})


def _html(page: str, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers=_NO_STORE,
    )


class OAuthSite:
    """The OAuth handlers of one site; ``site`` says which (client credentials care)."""

    def __init__(self, org: FakeSalesforceOrg, site: Site) -> None:
        self.org = org
        self.site = site
        self._grants: dict[str, Callable[[dict[str, str], web.Request], dict[str, Any]]] = {
            "authorization_code": self._authorization_code,
            "refresh_token": self._refresh_token,
            "password": self._password,
            "client_credentials": self._client_credentials,
            JWT_BEARER: self._jwt_bearer,
        }

    @property
    def base_url(self) -> str:
        """This site's ``http://127.0.0.1:<port>``."""
        return self.org._site_url(self.site)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register every OAuth route on ``router``."""
        router.add_route("*", "/services/oauth2/token", self.token)
        router.add_route("GET", "/services/oauth2/revoke", self.revoke)
        router.add_route("POST", "/services/oauth2/revoke", self.revoke)
        router.add_route("POST", "/services/oauth2/introspect", self.introspect)
        router.add_route("GET", "/services/oauth2/userinfo", self.userinfo)
        router.add_route("POST", "/services/oauth2/userinfo", self.userinfo)
        router.add_route("GET", "/services/oauth2/authorize", self.authorize)
        router.add_route("POST", "/login", self.login)
        router.add_route("POST", "/approve", self.approve)
        router.add_route("GET", "/id/keys", self.keys)
        router.add_route("GET", "/id/{org_id}/{user_id}", self.identity)
        router.add_route("POST", "/id/{org_id}/{user_id}", self.identity)
        router.add_route("GET", "/.well-known/openid-configuration", self.discovery)

    # -- token endpoint -------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.StreamResponse:
        """``/services/oauth2/token``: count, suffer any fault, then run the grant."""
        org = self.org
        form = await self._token_form(request)
        grant = form.get("grant_type", "")
        org.stats.token_requests[grant or "missing"] += 1
        if request.headers.get("Authorization", "").lower().startswith("bearer"):
            org.stats.bearer_token_requests += 1
        org._token_request_started()
        try:
            if org.token_delay_s > 0:
                await asyncio.sleep(org.token_delay_s)
            queue, closing = org.faults.token, org._closing_event()
            fault = queue._faults[0] if len(queue) else None
            if fault is None or not fault.after_processing:
                faulted = await queue._apply(request, closing)
                if faulted is not None:
                    return faulted
            else:
                queue._pop()
            try:
                response = json_response(self._grant(grant, form, request), headers=_NO_STORE)
            except OAuthFailure as failure:
                response = failure.response()
            if fault is not None and fault.after_processing:
                return await queue._deliver(fault, request, response, closing)
            return response
        finally:
            org._token_request_finished()

    async def _token_form(self, request: web.Request) -> dict[str, str]:
        if request.method == "POST":
            return await form_fields(request)
        # Only so that a GET is counted under the grant it tried; it is refused anyway.
        return {"grant_type": request.query.get("grant_type", "")}

    def _grant(self, grant: str, form: dict[str, str], request: web.Request) -> dict[str, Any]:
        if request.method != "POST":
            # Exact wording UNCONFIRMED; Salesforce insists on POST for the token call.
            raise OAuthFailure("invalid_request", "must use HTTP POST")
        if not grant:
            raise OAuthFailure("invalid_request", "grant type is missing")
        handler = self._grants.get(grant)
        if handler is None:
            raise OAuthFailure("unsupported_grant_type", "grant type not supported")
        return handler(form, request)

    # -- client authentication -------------------------------------------------------------------

    def _client_credentials_of(
        self, form: dict[str, str], request: web.Request
    ) -> tuple[str | None, str | None]:
        """``(client_id, client_secret)`` from the body or an HTTP Basic header, not both."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return form.get("client_id") or None, form.get("client_secret") or None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except ValueError:  # binascii.Error and UnicodeDecodeError are both ValueErrors
            raise _invalid_client() from None
        client_id, colon, secret = decoded.partition(":")
        if not colon:
            raise _invalid_client()
        # RFC 6749 §2.3.1 form-encodes both halves before base64.
        client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        # RFC 6749 forbids two client authentication methods in one request; how Salesforce
        # reacts is UNCONFIRMED, the fake answers invalid_request.
        if "client_secret" in form or form.get("client_id", client_id) != client_id:
            raise OAuthFailure(
                "invalid_request",
                "client authentication must use either the request body or "
                "the Authorization header, not both",
            )
        return client_id, secret or None

    def _app(self, client_id: str | None) -> FakeApp:
        app = self.org._find_app(client_id)
        if app is None:
            raise OAuthFailure("invalid_client_id", "client identifier invalid")
        return app

    @staticmethod
    def _check_secret(app: FakeApp, secret: str | None, *, required: bool) -> None:
        if secret is None:
            if required:
                raise _invalid_client()
            return
        if not _same(secret, app.client_secret):
            raise _invalid_client()

    def _confidential_client(self, form: dict[str, str], request: web.Request) -> FakeApp:
        client_id, secret = self._client_credentials_of(form, request)
        app = self._app(client_id)
        self._check_secret(app, secret, required=True)
        return app

    @staticmethod
    def _check_active(user: FakeUser) -> None:
        if not user.active:
            # Description UNCONFIRMED (legacy code list); the code is documented.
            raise OAuthFailure("inactive_user", "user is inactive")

    def _count_login(self, user: FakeUser) -> None:
        if not self.org._count_login(user):
            raise _invalid_grant("login rate exceeded")

    # -- grants ---------------------------------------------------------------------------------

    def _authorization_code(self, form: dict[str, str], request: web.Request) -> dict[str, Any]:
        org = self.org
        client_id, secret = self._client_credentials_of(form, request)
        app = self._app(client_id)
        if app.confidential:
            self._check_secret(app, secret, required=True)
        elif secret is not None:
            # Public clients must not send a secret (partner rules, 2026); the error Salesforce
            # answers is UNCONFIRMED, the fake treats it as failed client authentication.
            raise _invalid_client()
        code = org._codes.get(form.get("code", ""))
        if code is None or code.app is not app:
            raise _invalid_grant("invalid authorization code")
        if code.used or org._now() >= code.expires_at:
            raise _invalid_grant("expired authorization code")
        if form.get("redirect_uri") != code.redirect_uri:
            # Code name and text UNCONFIRMED (spec table 4.1 lists redirect_uri_mismatch).
            raise OAuthFailure("redirect_uri_mismatch", "redirect_uri must match configuration")
        if code.code_challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                raise _invalid_grant("invalid code verifier")
            if not _same(_s256(verifier), code.code_challenge):
                raise OAuthFailure("invalid_request", "invalid code verifier")
        self._check_active(code.user)
        code.used = True
        family = None
        if _REFRESH_SCOPES & set(code.scopes):
            family = org._new_family(app, code.user, code.scopes)
        record = org._mint_access_token(app, code.user, code.scopes, "authorization_code", family)
        return self._token_body(
            record,
            refresh_token=family.current if family else None,
            id_token="openid" in code.scopes,
            nonce=code.nonce,
        )

    def _refresh_token(self, form: dict[str, str], request: web.Request) -> dict[str, Any]:
        org = self.org
        client_id, secret = self._client_credentials_of(form, request)
        app = self._app(client_id)
        if app.confidential:
            self._check_secret(app, secret, required=app.require_secret_for_refresh)
        elif secret is not None:
            raise _invalid_client()
        value = form.get("refresh_token", "")
        family = org._refresh_family(value)
        if family is None or family.revoked or family.app is not app:
            raise _invalid_grant(_EXPIRED_TOKEN)
        if value != family.current:
            # A rotated-out token came back: under RTR that means it leaked, so Salesforce
            # revokes the current refresh token and its sessions too [H-rt].
            org.stats.refresh_token_reuses += 1
            org.stats.grants_revoked += 1
            family.revoke()
            raise _invalid_grant(_EXPIRED_TOKEN)
        self._check_active(family.user)
        rotated = org._rotate(family) if app.rotate_refresh_tokens else None
        record = org._mint_access_token(app, family.user, family.scopes, "refresh_token", family)
        return self._token_body(record, refresh_token=rotated, id_token="openid" in family.scopes)

    def _password(self, form: dict[str, str], request: web.Request) -> dict[str, Any]:
        org = self.org
        app = self._confidential_client(form, request)
        if not org.password_flow_enabled:
            # What orgs created since Summer '23 answer (the flow is blocked by default).
            raise _invalid_grant("authentication failure")
        user = org._find_user(form.get("username"))
        if user is None or not _same(form.get("password", ""), user.password + user.security_token):
            raise _invalid_grant("authentication failure")
        self._check_active(user)
        self._count_login(user)
        scopes = tuple(scope for scope in app.scopes if scope not in _REFRESH_SCOPES)
        record = org._mint_access_token(app, user, scopes, "password")
        # The password flow grants no scopes, so Salesforce's answer has no "scope" field.
        return self._token_body(record, show_scope=False)

    def _client_credentials(self, form: dict[str, str], request: web.Request) -> dict[str, Any]:
        org = self.org
        if self.site == "login":
            raise _invalid_grant("request not supported on this domain")
        app = self._confidential_client(form, request)
        user = app.client_credentials_user
        if user is None:
            # Exact status/shape UNCONFIRMED; the text is what READMEs quote.
            raise _invalid_grant("no client credentials user enabled")
        self._check_active(user)
        self._count_login(user)
        scopes = tuple(scope for scope in app.scopes if scope not in _NO_SESSION_SCOPES)
        record = org._mint_access_token(app, user, scopes, "client_credentials")
        body = self._token_body(record)
        body["api_instance_url"] = "https://api.salesforce.com"
        return body

    def _jwt_bearer(self, form: dict[str, str], _request: web.Request) -> dict[str, Any]:
        org = self.org
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid_grant(_INVALID_ASSERTION) from None
        if header.get("alg") != "RS256":
            raise _invalid_grant(_INVALID_ASSERTION)
        issuer = claims.get("iss")
        app = self._app(issuer if isinstance(issuer, str) else None)
        if app.certificate_pem is None:
            raise _invalid_grant(_INVALID_ASSERTION)
        try:
            key = load_verifying_key(app.certificate_pem)
            jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                # Claims are checked below, with Salesforce's rules and error texts.
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except (ValueError, TypeError, jwt.PyJWTError):
            raise _invalid_grant(_INVALID_ASSERTION) from None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(value in org.accepted_audiences for value in audiences):
            raise _invalid_grant("audience is invalid")
        exp = claims.get("exp")
        now = org._now()
        if (
            not isinstance(exp, int | float)
            or isinstance(exp, bool)
            or not now - _ASSERTION_SKEW_S < exp <= now + _ASSERTION_MAX_AHEAD_S + _ASSERTION_SKEW_S
        ):
            raise _invalid_grant(_INVALID_ASSERTION)
        # Legacy "prn" wins over "sub" when both are present (KB 000204593).
        username = claims.get("prn") or claims.get("sub")
        user = org._find_user(username if isinstance(username, str) else None)
        if user is None:
            # Salesforce's text for an unknown username is UNCONFIRMED; "invalid assertion".
            raise _invalid_grant(_INVALID_ASSERTION)
        self._check_active(user)
        if not user.pre_authorized:
            raise _invalid_grant("user hasn't approved this consumer")
        self._count_login(user)
        scopes = tuple(scope for scope in app.scopes if scope not in _REFRESH_SCOPES)
        record = org._mint_access_token(app, user, scopes, JWT_BEARER)
        # The official sample has no issued_at and no signature for this grant.
        return self._token_body(record, signed=False)

    def _token_body(
        self,
        record: AccessTokenRecord,
        *,
        refresh_token: str | None = None,
        signed: bool = True,
        show_scope: bool = True,
        id_token: bool = False,
        nonce: str | None = None,
    ) -> dict[str, Any]:
        """A success answer, its keys in Salesforce's order; never an ``expires_in``."""
        org = self.org
        identity = org.identity_url(record.user)
        issued_at = str(int(record.issued_at * 1000))
        body: dict[str, Any] = {"access_token": record.value}
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        if signed:
            body["signature"] = _signature(record.app.client_secret, identity, issued_at)
        if show_scope:
            body["scope"] = " ".join(record.scopes)
        if id_token:
            body["id_token"] = self._id_token(record, nonce)
        body["instance_url"] = org.instance_url
        body["id"] = identity
        body["token_type"] = "Bearer"
        if signed:
            body["issued_at"] = issued_at
        if org.jwt_access_tokens:
            body["token_format"] = "jwt"
        return body

    def _id_token(self, record: AccessTokenRecord, nonce: str | None) -> str:
        issued = int(record.issued_at)
        claims: dict[str, Any] = {
            "at_hash": at_hash(record.value),
            "sub": self.org.identity_url(record.user),
            "aud": record.app.client_id,
            "iss": self.base_url,
            "exp": issued + _ID_TOKEN_LIFETIME_S,
            "iat": issued,
            "name": record.user.display_name,
            "preferred_username": record.user.username,
            "email": record.user.email,
            "email_verified": True,
        }
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(
            claims, org_signing_key(), algorithm="RS256", headers={"kid": ORG_SIGNING_KID}
        )

    # -- revoke and introspect -----------------------------------------------------------------

    async def revoke(self, request: web.Request) -> web.Response:
        """``/services/oauth2/revoke``: 200 and an empty body, or 400 ``invalid_token``."""
        org = self.org
        org.stats.revocations += 1
        org.stats._changed()
        faulted = await org.faults.oauth._apply(request, org._closing_event())
        if faulted is not None:
            return faulted
        if request.method == "GET":
            token, form = request.query.get("token", ""), {}
        else:
            form = await form_fields(request)
            token = form.get("token", "")
        if not token:
            return OAuthFailure("invalid_request", "token is missing").response()
        try:
            self._check_revoking_client(form, request, token)
        except OAuthFailure as failure:
            return failure.response()
        record = org._access_token(token)
        if record is not None and record.alive(org._now()):
            record.ended = True
            return web.Response(status=200, headers=_NO_STORE)
        family = org._refresh_family(token)
        if family is not None and not family.revoked and token == family.current:
            family.revoke()
            return web.Response(status=200, headers=_NO_STORE)
        # jsforce parses this body as form-encoded; JSON here is what the brief fixes
        # (Salesforce's encoding is UNCONFIRMED).
        return OAuthFailure("invalid_token", "invalid token").response()

    def _check_revoking_client(
        self, form: dict[str, str], request: web.Request, token: str
    ) -> None:
        """RFC 7009 2.1: check the client credentials sent, and require them if the app does."""
        org = self.org
        record = org._access_token(token)
        family = org._refresh_family(token)
        owner = record.app if record is not None else family.app if family is not None else None
        basic = request.headers.get("Authorization", "").lower().startswith("basic")
        # RFC 6749 5.2: a failed Basic authentication answers 401 and names the scheme.
        refused = OAuthFailure(
            "invalid_client",
            "invalid client credentials",
            status=401 if basic else 400,
            headers={"WWW-Authenticate": 'Basic realm="revoke"'} if basic else None,
        )
        try:
            client_id, secret = self._client_credentials_of(form, request)
        except OAuthFailure:
            raise refused from None
        required = owner is not None and owner.revoke_requires_client_auth
        if client_id is None:
            if required:
                raise refused
            return
        app = org._find_app(client_id)
        if app is None:
            raise refused
        if secret is not None and not _same(secret, app.client_secret):
            raise refused
        if required and ((app.confidential and secret is None) or app is not owner):
            raise refused

    async def introspect(self, request: web.Request) -> web.Response:
        """``/services/oauth2/introspect`` (RFC 7662), for the caller's own tokens."""
        org = self.org
        org.stats.introspections += 1
        org.stats._changed()
        faulted = await org.faults.oauth._apply(request, org._closing_event())
        if faulted is not None:
            return faulted
        form = await form_fields(request)
        try:
            client_id, secret = self._client_credentials_of(form, request)
            app = self._app(client_id)
            # RFC 7662 answers failed client auth with 401; Salesforce's status is
            # UNCONFIRMED, the fake answers 400 like every other OAuth error it sends.
            self._check_secret(app, secret, required=app.confidential)
        except OAuthFailure as failure:
            return failure.response()
        token = form.get("token", "")
        if not token:
            return OAuthFailure("invalid_request", "token is missing").response()
        body = self._introspection(app, token, form.get("token_type_hint"))
        return json_response(body, headers=_NO_STORE)

    def _introspection(self, app: FakeApp, token: str, hint: str | None) -> dict[str, Any]:
        org = self.org
        now = org._now()
        lookups = [self._introspect_access, self._introspect_refresh]
        if hint == "refresh_token":
            lookups.reverse()
        for lookup in lookups:
            body = lookup(app, token, now)
            if body is not None:
                return body
        return {"active": False}

    def _introspect_access(self, app: FakeApp, token: str, now: float) -> dict[str, Any] | None:
        record = self.org._access_token(token)
        if (
            record is None
            or not record.alive(now)
            # Username-password sessions cannot be introspected (help, JA edition).
            or record.grant == "password"
            or (record.app is not app and not app.introspect_all_tokens)
        ):
            return None
        return {
            "active": True,
            "scope": " ".join(record.scopes),
            "client_id": record.app.client_id,
            "username": record.user.username,
            "sub": self.org.identity_url(record.user),
            "token_type": "access_token",
            "exp": int(record.expires_at),
            "iat": int(record.issued_at),
            "nbf": int(record.issued_at),
        }

    def _introspect_refresh(self, app: FakeApp, token: str, _now: float) -> dict[str, Any] | None:
        family = self.org._refresh_family(token)
        if (
            family is None
            or family.revoked
            or token != family.current
            or (family.app is not app and not app.introspect_all_tokens)
        ):
            return None
        # Refresh tokens here are valid until revoked, so there is no "exp" to report
        # (what Salesforce reports for them is UNCONFIRMED).
        return {
            "active": True,
            "scope": " ".join(family.scopes),
            "client_id": family.app.client_id,
            "username": family.user.username,
            "sub": self.org.identity_url(family.user),
            "token_type": "refresh_token",
            "iat": int(family.issued_at),
            "nbf": int(family.issued_at),
        }

    # -- identity -------------------------------------------------------------------------------

    def _bearer(self, request: web.Request) -> AccessTokenRecord | web.Response:
        """The live session named by the request, or the 401 to send.

        Salesforce answers a bad token on these endpoints with a bare word rather than JSON;
        the fake sends ``Missing_OAuth_Token`` / ``Bad_OAuth_Token`` as text with a 401
        (Salesforce's status for a bad token here is UNCONFIRMED: 401 or 403).
        """
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        token = value.strip() if scheme.lower() in ("bearer", "oauth") else ""
        token = token or request.query.get("oauth_token", "")
        if not token:
            return web.Response(status=401, text="Missing_OAuth_Token")
        record = self.org._live_access_token(token)
        if record is None:
            return web.Response(status=401, text="Bad_OAuth_Token")
        return record

    def _urls(self, user: FakeUser, version: str) -> dict[str, str]:
        org = self.org
        data = f"{org.my_domain_url}/services/data/v{version}"
        soap = f"{org.my_domain_url}/services/Soap"
        return {
            "enterprise": f"{soap}/c/{version}/{org.org_id}",
            "metadata": f"{soap}/m/{version}/{org.org_id}",
            "partner": f"{soap}/u/{version}/{org.org_id}",
            "rest": f"{data}/",
            "sobjects": f"{data}/sobjects/",
            "search": f"{data}/search/",
            "query": f"{data}/query/",
            "recent": f"{data}/recent/",
            "tooling_soap": f"{soap}/T/{version}/{org.org_id}",
            "tooling_rest": f"{data}/tooling/",
            "profile": f"{org.my_domain_url}/{user.user_id}",
            "feeds": f"{data}/chatter/feeds",
            "groups": f"{data}/chatter/groups",
            "users": f"{data}/chatter/users",
            "feed_items": f"{data}/chatter/feed-items",
            "feed_elements": f"{data}/chatter/feed-elements",
            "custom_domain": org.my_domain_url,
        }

    @staticmethod
    def _version(request: web.Request) -> str:
        # Salesforce leaves the "{version}" placeholder in place unless asked for a version.
        version = request.query.get("version", "")
        if version == "latest":
            return "67.0"
        return version or "{version}"

    async def userinfo(self, request: web.Request) -> web.Response:
        """``/services/oauth2/userinfo``: OIDC claims about the token's user."""
        org = self.org
        faulted = await org.faults.oauth._apply(request, org._closing_event())
        if faulted is not None:
            return faulted
        record = self._bearer(request)
        if isinstance(record, web.Response):
            return record
        user = record.user
        first, _, last = user.display_name.rpartition(" ")
        return json_response(
            {
                "sub": org.identity_url(user),
                "user_id": user.user_id,
                "organization_id": org.org_id,
                "preferred_username": user.username,
                "nickname": user.username.partition("@")[0],
                "name": user.display_name,
                "email": user.email,
                "email_verified": True,
                "given_name": first,
                "family_name": last,
                "zoneinfo": "America/Los_Angeles",
                "photos": {},
                "profile": f"{org.my_domain_url}/{user.user_id}",
                "picture": None,
                "address": {},
                "urls": self._urls(user, self._version(request)),
                "active": user.active,
                "user_type": "STANDARD",
                "language": "en_US",
                "locale": "en_US",
                "utcOffset": -28800000,
                "updated_at": "2026-01-01T00:00:00Z",
                "is_app_installed": True,
            }
        )

    async def identity(self, request: web.Request) -> web.Response:
        """``/id/{org_id}/{user_id}``: the identity URL of any user of this org."""
        org = self.org
        faulted = await org.faults.oauth._apply(request, org._closing_event())
        if faulted is not None:
            return faulted
        record = self._bearer(request)
        if isinstance(record, web.Response):
            return record
        user = org._find_user_by_id(request.match_info["user_id"])
        if request.match_info["org_id"] not in (org.org_id, org.org_id[:15]) or user is None:
            return web.Response(status=404, text="Bad_Id")
        first, _, last = user.display_name.rpartition(" ")
        return json_response(
            {
                "id": org.identity_url(user),
                "asserted_user": user is record.user,
                "user_id": user.user_id,
                "organization_id": org.org_id,
                "username": user.username,
                "nick_name": user.username.partition("@")[0],
                "display_name": user.display_name,
                "email": user.email,
                "email_verified": True,
                "first_name": first,
                "last_name": last,
                "timezone": "America/Los_Angeles",
                "photos": {},
                "addr_street": None,
                "addr_city": None,
                "addr_state": None,
                "addr_country": None,
                "addr_zip": None,
                "mobile_phone": None,
                "mobile_phone_verified": False,
                "is_lightning_login_user": False,
                "status": {"created_date": None, "body": None},
                "urls": self._urls(user, self._version(request)),
                "active": user.active,
                "user_type": "STANDARD",
                "language": "en_US",
                "locale": "en_US",
                "utcOffset": -28800000,
                "last_modified_date": "2026-01-01T00:00:00.000+0000",
                "is_app_installed": True,
            }
        )

    async def keys(self, request: web.Request) -> web.Response:  # noqa: ARG002 - aiohttp handler
        """``/id/keys``: the JWKS that verifies id tokens and JWT access tokens."""
        return json_response(jwks())

    async def discovery(self, request: web.Request) -> web.Response:  # noqa: ARG002 - handler
        """``/.well-known/openid-configuration`` for this site."""
        base = self.base_url
        return json_response(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/services/oauth2/authorize",
                "token_endpoint": f"{base}/services/oauth2/token",
                "revocation_endpoint": f"{base}/services/oauth2/revoke",
                "userinfo_endpoint": f"{base}/services/oauth2/userinfo",
                "introspection_endpoint": f"{base}/services/oauth2/introspect",
                "jwks_uri": f"{base}/id/keys",
                "scopes_supported": [
                    "id",
                    "api",
                    "web",
                    "full",
                    "refresh_token",
                    "offline_access",
                    "openid",
                    "profile",
                    "email",
                ],
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                    "private_key_jwt",
                ],
            }
        )

    # -- authorize (browser) ----------------------------------------------------------------------

    def _check_client(self, params: dict[str, str]) -> FakeApp | web.Response:
        """The app, or the error page shown when redirecting back would be unsafe."""
        app = self.org._find_app(params.get("client_id"))
        if app is None:
            return _html(error_page("invalid_client_id", "client identifier invalid"), 400)
        if params.get("redirect_uri") not in app.callback_urls:
            return _html(
                error_page("redirect_uri_mismatch", "redirect_uri must match configuration"), 400
            )
        return app

    @staticmethod
    def _requested_scopes(app: FakeApp, params: dict[str, str]) -> tuple[str, ...]:
        requested = params.get("scope", "").split()
        return tuple(dict.fromkeys(requested)) if requested else tuple(app.scopes)

    def _authorize_error(self, app: FakeApp, params: dict[str, str]) -> tuple[str, str] | None:
        if params.get("response_type") != "code":
            # The fake implements the web-server flow only.
            return ("unsupported_response_type", "response type not supported")
        if app.require_pkce and not params.get("code_challenge"):
            return ("invalid_request", "missing required code challenge")
        if params.get("code_challenge_method", "S256") != "S256":
            return ("invalid_request", "invalid code challenge method")
        if not set(self._requested_scopes(app, params)) <= set(app.scopes):
            # Code and text UNCONFIRMED.
            return ("invalid_scope", "the requested scope is not allowed")
        return None

    @staticmethod
    def _redirect_error(params: dict[str, str], error: str, description: str) -> web.Response:
        query = {"error": error, "error_description": description}
        if "state" in params:
            query["state"] = params["state"]
        return _redirect(params["redirect_uri"], query)

    def _issue_code(self, app: FakeApp, user: FakeUser, params: dict[str, str]) -> web.Response:
        org = self.org
        code = org._new_code(
            AuthorizationCode(
                app=app,
                user=user,
                redirect_uri=params["redirect_uri"],
                scopes=self._requested_scopes(app, params),
                code_challenge=params.get("code_challenge") or None,
                nonce=params.get("nonce") or None,
                expires_at=org._now() + _CODE_LIFETIME_S,
            )
        )
        query = {"code": code}
        if "state" in params:
            query["state"] = params["state"]
        return _redirect(params["redirect_uri"], query)

    async def authorize(self, request: web.Request) -> web.Response:
        """``GET /services/oauth2/authorize``: the login page (or a redirect)."""
        params: dict[str, str] = {}
        for name, value in request.query.items():
            params.setdefault(name, value)
        params = {name: params[name] for name in _AUTHORIZE_PARAMS if name in params}
        app = self._check_client(params)
        if isinstance(app, web.Response):
            return app
        error = self._authorize_error(app, params)
        if error is not None:
            return self._redirect_error(params, *error)
        if self.org.auto_approve:
            user = self.org._find_user(params.get("login_hint")) or self.org.user
            return self._issue_code(app, user, params)
        return _html(login_page(params, username=params.get("login_hint", "")))

    async def login(self, request: web.Request) -> web.Response:
        """``POST /login``: check the password, then show the approval page."""
        form = await form_fields(request)
        # The hidden fields came back from the browser: check them again, never trust them.
        params = {name: form[name] for name in _AUTHORIZE_PARAMS if name in form}
        app = self._check_client(params)
        if isinstance(app, web.Response):
            return app
        error = self._authorize_error(app, params)
        if error is not None:
            return self._redirect_error(params, *error)
        username = form.get("username", "")
        user = self.org._find_user(username)
        if user is None or not user.active or not _same(form.get("password", ""), user.password):
            return _html(login_page(params, username=username, error=_BAD_LOGIN))
        pending = PendingApproval(
            app=app,
            user=user,
            params=params,
            expires_at=self.org._now() + _APPROVAL_LIFETIME_S,
        )
        pending_id = self.org._new_approval(pending)
        return _html(
            approval_page(
                app_name=app.name,
                username=user.username,
                scopes=self._requested_scopes(app, params),
                pending=pending_id,
            )
        )

    async def approve(self, request: web.Request) -> web.Response:
        """``POST /approve``: Allow redirects with a code, Deny with ``access_denied``."""
        org = self.org
        form = await form_fields(request)
        pending = org._approvals.pop(form.get("pending", ""), None)
        if pending is None or org._now() >= pending.expires_at:
            return _html(error_page("invalid_request", "the approval request has expired"), 400)
        if form.get("decision") != "allow":
            return self._redirect_error(
                pending.params, "access_denied", "end-user denied authorization"
            )
        return self._issue_code(pending.app, pending.user, pending.params)
