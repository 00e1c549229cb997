"""What the fake org knows: connected apps, users, and the tokens and codes it has issued.

`FakeApp` and `FakeUser` are public and mutable: a test changes a setting (``app.require_pkce =
True``, ``user.active = False``) and the next request sees it. The token records are private.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

from ._keys import app_certificate_pem

__all__ = ["DEFAULT_SCOPES", "FakeApp", "FakeUser", "new_id"]

DEFAULT_SCOPES = ("api", "id", "openid", "refresh_token", "offline_access", "web")
_BASE62 = string.ascii_letters + string.digits
_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_id(prefix: str, body: str | None = None) -> str:
    """An 18-character Salesforce record id: 3-char key prefix, 12 chars, 3-char checksum.

    The 12 characters are ``body`` when given (generated records), else random. The checksum
    is Salesforce's case-safe suffix, so ids look and round-trip like real ones.
    """
    id15 = prefix + (body if body is not None else _random(_BASE62, 12))
    suffix = ""
    for start in range(0, 15, 5):
        chunk = id15[start : start + 5]
        bits = sum(1 << i for i, char in enumerate(chunk) if char.isupper())
        suffix += _SUFFIX_ALPHABET[bits]
    return id15 + suffix


def opaque(prefix: str, nbytes: int = 64) -> str:
    """A random token in Salesforce's alphabet (letters, digits, ``.`` and ``_``)."""
    return prefix + secrets.token_urlsafe(nbytes).replace("-", ".")


@dataclass(kw_only=True, eq=False)
class FakeUser:
    """A user of the fake org; create one with `FakeSalesforceOrg.add_user`.

    Attributes:
        username: The login name, an e-mail address; matched case-insensitively.
        password: The password typed on the login page.
        security_token: Appended to the password by the password grant.
        user_id: The 18-character ``005...`` id.
        email: The e-mail address shown by the identity URL and userinfo.
        display_name: The full name shown by the identity URL and userinfo.
        pre_authorized: Admin-approved for the org's apps; without it the JWT bearer grant
            answers ``user hasn't approved this consumer``.
        active: ``False`` makes every grant answer ``inactive_user`` and the login page refuse.

    Example:
        ```python
        bob = org.add_user(username="bob@example.com", pre_authorized=False)
        bob.active = False
        ```
    """

    username: str = field(default_factory=lambda: f"user.{_random(_BASE62, 8).lower()}@fake.org")
    password: str = field(default_factory=lambda: "pw-" + secrets.token_urlsafe(12))
    security_token: str = field(default_factory=lambda: _random(_BASE62, 24))
    user_id: str = field(default_factory=lambda: new_id("005"))
    email: str = ""
    display_name: str = "Fake User"
    pre_authorized: bool = True
    active: bool = True

    def __post_init__(self) -> None:
        if not self.email:
            self.email = self.username

    def __repr__(self) -> str:
        # Never show the password or the security token in test output.
        return f"FakeUser(username={self.username!r}, user_id={self.user_id!r})"


@dataclass(kw_only=True, eq=False)
class FakeApp:
    """A connected app (or External Client App) of the fake org.

    Create one with `FakeSalesforceOrg.add_app`; the org also has a default one, ``org.app``.

    Attributes:
        client_id: The consumer key (``3MVG9...``).
        client_secret: The consumer secret.
        name: Shown on the approval page.
        callback_urls: Redirect URIs the authorize endpoint accepts (exact match); mutable.
        scopes: OAuth scopes the app may grant, e.g. ``api``, ``refresh_token``, ``openid``.
        confidential: ``False`` makes a public client: the authorization-code and refresh
            grants then refuse a ``client_secret`` (PKCE is its only proof).
        require_secret_for_refresh: Whether a confidential app's refresh grant needs the secret.
        require_pkce: The authorize endpoint refuses requests without ``code_challenge``.
        rotate_refresh_tokens: Refresh-token rotation: every refresh answers a new refresh
            token and kills the old one; reusing a rotated-out one revokes the whole family.
        client_credentials_user: The "Run As" user of the client-credentials grant; ``None``
            answers ``no client credentials user enabled``.
        certificate_pem: The X.509 certificate (or bare public key) in PEM that verifies
            JWT-bearer assertions; ``None`` refuses every assertion.
        introspect_all_tokens: Whether this app may introspect other apps' tokens.
        revoke_requires_client_auth: The revoke endpoint refuses this app's tokens unless the
            request authenticates the app, as RFC 7009 2.1 has it: the consumer key and
            secret (form or HTTP Basic) for a confidential app, the consumer key for a public
            one. Off by default, as Salesforce revokes any token it is sent.

    Example:
        ```python
        public = org.add_app(confidential=False, require_pkce=True)
        public.callback_urls.append("http://127.0.0.1:8765/callback")
        ```
    """

    client_id: str = field(default_factory=lambda: "3MVG9" + _random(_BASE62 + "._", 80))
    client_secret: str = field(default_factory=lambda: secrets.token_hex(32).upper())
    name: str = "Fake Connected App"
    callback_urls: list[str] = field(
        default_factory=lambda: ["http://localhost:1717/OauthRedirect"]
    )
    scopes: list[str] = field(default_factory=lambda: list(DEFAULT_SCOPES))
    confidential: bool = True
    require_secret_for_refresh: bool = True
    require_pkce: bool = False
    rotate_refresh_tokens: bool = False
    client_credentials_user: FakeUser | None = None
    certificate_pem: bytes | None = field(default_factory=app_certificate_pem)
    introspect_all_tokens: bool = False
    revoke_requires_client_auth: bool = False

    def __repr__(self) -> str:
        # Never show the client secret in test output.
        return f"FakeApp(name={self.name!r}, client_id={self.client_id[:12] + '...'!r})"


@dataclass(eq=False)
class AccessTokenRecord:
    """One issued access token (a session)."""

    value: str
    app: FakeApp
    user: FakeUser
    scopes: tuple[str, ...]
    grant: str
    issued_at: float
    expires_at: float
    family: RefreshFamily | None = None
    ended: bool = False

    def alive(self, now: float) -> bool:
        """Not revoked, not expired by `expire_all_sessions`, and within its lifetime."""
        return not self.ended and now < self.expires_at


@dataclass(eq=False)
class RefreshFamily:
    """A refresh token and its rotated-out predecessors: they live and die together."""

    app: FakeApp
    user: FakeUser
    scopes: tuple[str, ...]
    current: str
    issued_at: float
    retired: set[str] = field(default_factory=set)
    access_tokens: list[AccessTokenRecord] = field(default_factory=list)
    revoked: bool = False

    def revoke(self) -> None:
        """Kill the refresh token and every access token minted from it."""
        self.revoked = True
        for token in self.access_tokens:
            token.ended = True


@dataclass(eq=False)
class AuthorizationCode:
    """A code from the authorize endpoint, waiting to be exchanged once."""

    app: FakeApp
    user: FakeUser
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    nonce: str | None
    expires_at: float
    used: bool = False


@dataclass(eq=False)
class PendingApproval:
    """A logged-in user looking at the approval page."""

    app: FakeApp
    user: FakeUser
    params: dict[str, str]
    expires_at: float
