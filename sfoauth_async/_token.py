"""`Token`: one Salesforce token response, immutable, with the expiry Salesforce never sends.

Salesforce's token endpoint returns no ``expires_in``. An access token is a session that
ends after the session timeout of the connected app, profile or org (two hours unless
changed), so `Token.expires_at` is the local time the response arrived plus the configured
timeout. A JWT-format access token (``token_format: "jwt"``) carries its own ``exp``; when it
is earlier, it wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import jwt
from yarl import URL

from ._errors import (
    ConfigurationError,
    InstanceUrlError,
    InvalidStoredTokenError,
    InvalidTokenResponseError,
)
from ._limits import MAX_TOKEN_CHARS
from ._untrusted import printable
from ._urls import normalize_instance_url

__all__ = ["DEFAULT_SESSION_TIMEOUT", "Token"]

DEFAULT_SESSION_TIMEOUT = timedelta(hours=2)
"""Salesforce's default session timeout, used when the real one is not configured."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_issued_at(value: object) -> datetime | None:
    # Documented as a string of milliseconds since the epoch; named-user JWT responses send a
    # number. Accept both.
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(value)  # noqa: TRY004 - the caller maps every bad value alike
    try:
        # float() overflows on a huge int (10**400); fromtimestamp() on a huge or NaN float.
        return datetime.fromtimestamp(float(value) / 1000, UTC)
    except (OverflowError, OSError) as exc:
        raise ValueError(value) from exc


def _jwt_expiry(access_token: str) -> datetime | None:
    # The signature is not checked: only Salesforce checks it, we only want a lifetime hint.
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, RecursionError):
        # RecursionError: a payload of deeply nested JSON; the token is then simply opaque.
        return None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        try:
            return datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _check_session_timeout(session_timeout: timedelta | None) -> None:
    if session_timeout is not None and session_timeout <= timedelta(0):
        raise ConfigurationError(
            f"session_timeout must be positive (Salesforce allows 15 minutes to 24 hours), "
            f"got {session_timeout}."
        )


@dataclass(frozen=True, slots=True, repr=False)
class Token:
    """An access token and what came with it, as Salesforce's token endpoint returned it.

    Immutable: a refresh makes a new `Token`. ``repr()`` and ``str()`` show where and whose
    the token is, never the token itself.

    Attributes:
        access_token: The bearer token (a session id, or a JWT for JWT-format tokens).
        instance_url: The org's API host; every API call goes there.
        id: The identity URL ``https://<host>/id/<orgId>/<userId>``, if sent.
        token_type: ``"Bearer"``.
        issued_at: When Salesforce issued the token; ``None`` for the JWT bearer flow.
        scope: The granted scopes.
        refresh_token: Present after the authorization-code flow with the ``refresh_token``
            scope, and after a refresh when the org rotates refresh tokens.
        signature: Base64 HMAC-SHA256 of ``id + issued_at`` keyed by the client secret.
        id_token: The OpenID Connect ID token, when ``openid`` was requested.
        raw: The whole JSON response, read-only (it holds secrets: never log it).
        received_at: When this process received the response.
        expires_at: ``received_at`` plus the session timeout (or the token's own ``exp``),
            ``None`` when the lifetime is unknown.
        refresh_token_rotation: What the refresh that issued this token showed: ``True``
            when it returned a new refresh token (the app rotates them: each one may be
            used once), ``False`` when it did not (the app does not rotate), ``None`` for a
            token that did not come from a refresh.

    Example:
        ```python
        token = await flow.fetch_token()
        print(token)  # Token(instance_url='https://acme.my.salesforce.com', org_id=...)
        headers = {"Authorization": f"Bearer {token.access_token}"}
        ```
    """

    access_token: str
    instance_url: str
    id: str | None = None
    token_type: str = "Bearer"
    issued_at: datetime | None = None
    scope: frozenset[str] = frozenset()
    refresh_token: str | None = None
    signature: str | None = None
    id_token: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    received_at: datetime = field(default_factory=_utcnow)
    expires_at: datetime | None = None
    refresh_token_rotation: bool | None = None

    @classmethod
    def from_response(
        cls,
        data: Mapping[str, Any],
        *,
        received_at: datetime | None = None,
        session_timeout: timedelta | None = DEFAULT_SESSION_TIMEOUT,
        url: str | None = None,
    ) -> Token:
        """Build a `Token` from a token-endpoint JSON response.

        Args:
            data: The decoded JSON object.
            received_at: When the response arrived (default: now).
            session_timeout: The org's session timeout; ``None`` leaves ``expires_at`` unset
                unless the token is a JWT with an ``exp``.
            url: The endpoint that answered, for error messages.

        ``instance_url`` is checked (https only, plain http only on loopback; no user info,
        query, fragment or control characters) and normalized; `Flow` then also checks its
        host against `Flow.instance_hosts`.

        Raises:
            InstanceUrlError: ``instance_url`` is unusable.
            InvalidTokenResponseError: A required field is missing or malformed, a token is
                longer than 16 KiB, or ``token_type`` is not ``Bearer`` (RFC 6749 7.1).
            ConfigurationError: ``session_timeout`` is not positive.

        Example:
            ```python
            token = Token.from_response(
                {"access_token": "00D...", "instance_url": "https://acme.my.salesforce.com"}
            )
            ```
        """
        _check_session_timeout(session_timeout)
        received = received_at or _utcnow()

        def bad(what: str) -> InvalidTokenResponseError:
            return InvalidTokenResponseError(
                f"The token response {what}; it is not a Salesforce token response. Check "
                f"that login_url points at a Salesforce login or My Domain URL.",
                status=200,
                url=url,
            )

        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise bad("has no access_token")
        if len(access_token) > MAX_TOKEN_CHARS:
            raise bad(f"has an access_token longer than {MAX_TOKEN_CHARS} characters")
        instance_url = data.get("instance_url")
        if not isinstance(instance_url, str) or not instance_url:
            raise bad("has no instance_url")
        try:
            instance_url = normalize_instance_url(instance_url)
        except ConfigurationError as exc:
            raise InstanceUrlError(
                f"The token response has an unusable instance_url: {exc}",
                instance_url=instance_url,
                status=200,
                url=url,
            ) from None
        try:
            issued_at = _parse_issued_at(data.get("issued_at"))
        except ValueError:
            raise bad("has an issued_at that is not milliseconds since the epoch") from None
        strings = {}
        for name in ("id", "token_type", "refresh_token", "signature", "id_token", "scope"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise bad(f"has a {name} that is not a string")
            strings[name] = value or None
        token_type = strings["token_type"] or "Bearer"
        if token_type.lower() != "bearer":
            # RFC 6749 7.1: a client must not use a token whose type it does not understand.
            raise bad(
                f"has token_type '{printable(token_type)}', and only Bearer tokens can be "
                f"used (RFC 6749 7.1)"
            )
        if len(strings["refresh_token"] or "") > MAX_TOKEN_CHARS:
            raise bad(f"has a refresh_token longer than {MAX_TOKEN_CHARS} characters")
        expires_at = received + session_timeout if session_timeout is not None else None
        if data.get("token_format") == "jwt":
            jwt_exp = _jwt_expiry(access_token)
            if jwt_exp is not None and (expires_at is None or jwt_exp < expires_at):
                expires_at = jwt_exp
        return cls(
            access_token=access_token,
            instance_url=instance_url,
            id=strings["id"],
            token_type=token_type,
            issued_at=issued_at,
            scope=frozenset((strings["scope"] or "").split()),
            refresh_token=strings["refresh_token"],
            signature=strings["signature"],
            id_token=strings["id_token"],
            raw=MappingProxyType(dict(data)),
            received_at=received,
            expires_at=expires_at,
        )

    @property
    def org_id(self) -> str | None:
        """The 18-character org id from the identity URL, e.g. ``00D...``.

        Example:
            ```python
            assert token.org_id.startswith("00D")
            ```
        """
        return self._identity_part(-2)

    @property
    def user_id(self) -> str | None:
        """The user id from the identity URL, e.g. ``005...``.

        Example:
            ```python
            assert token.user_id.startswith("005")
            ```
        """
        return self._identity_part(-1)

    def _identity_part(self, index: int) -> str | None:
        if not self.id:
            return None
        try:
            path = URL(self.id).path
        except ValueError:
            return None
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 3 and parts[-3] == "id":
            return parts[index]
        return None

    @property
    def token_format(self) -> str | None:
        """``"jwt"`` for JWT-format access tokens, else ``None`` (an opaque session id).

        Example:
            ```python
            if token.token_format == "jwt":
                print("expires at", token.expires_at)
            ```
        """
        value = self.raw.get("token_format")
        return value if isinstance(value, str) else None

    def is_expired(self, *, now: datetime | None = None, leeway: timedelta = timedelta(0)) -> bool:
        """Tell whether the token is past ``expires_at - leeway``; unknown expiry is not expired.

        Example:
            ```python
            if token.is_expired(leeway=timedelta(minutes=1)):
                token = await flow.fetch_token()
            ```
        """
        if self.expires_at is None:
            return False
        return (now or _utcnow()) >= self.expires_at - leeway

    def with_session_timeout(self, session_timeout: timedelta | None) -> Token:
        """A copy whose ``expires_at`` is ``received_at + session_timeout``.

        A JWT-format token's own earlier ``exp`` still wins.

        Example:
            ```python
            token = token.with_session_timeout(timedelta(minutes=30))
            ```
        """
        _check_session_timeout(session_timeout)
        expires_at = self.received_at + session_timeout if session_timeout else None
        if self.token_format == "jwt":
            jwt_exp = _jwt_expiry(self.access_token)
            if jwt_exp is not None and (expires_at is None or jwt_exp < expires_at):
                expires_at = jwt_exp
        return replace(self, expires_at=expires_at)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, secrets included: for token stores only.

        Example:
            ```python
            assert Token.from_dict(token.to_dict()) == token
            ```
        """
        return {
            "access_token": self.access_token,
            "instance_url": self.instance_url,
            "id": self.id,
            "token_type": self.token_type,
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
            "scope": sorted(self.scope),
            "refresh_token": self.refresh_token,
            "signature": self.signature,
            "id_token": self.id_token,
            "raw": dict(self.raw),
            "received_at": self.received_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "refresh_token_rotation": self.refresh_token_rotation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Token:
        """Rebuild a `Token` from `to_dict`'s output.

        Every field is checked as `from_response` checks it (``instance_url`` is normalized),
        so a damaged or forged record gives an error, never a broken `Token`.

        Raises:
            InvalidStoredTokenError: The dict is not what `to_dict` writes (a ``ValueError``
                and a `StoreError`); the message names the field, never its value.

        Example:
            ```python
            token = Token.from_dict(json.loads(text))
            ```
        """
        if not isinstance(data, Mapping):
            raise InvalidStoredTokenError("not a stored token: it is not an object")

        def bad(why: str) -> InvalidStoredTokenError:
            return InvalidStoredTokenError(f"not a stored token: {why}")

        def text(name: str) -> str | None:
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise bad(f"{name} is not a string")
            return value

        def when(name: str) -> datetime | None:
            value = text(name)
            if value is None:
                return None
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise bad(f"{name} is not an ISO 8601 time") from None
            if parsed.tzinfo is None:
                raise bad(f"{name} has no time zone")
            return parsed

        access_token = text("access_token")
        if not access_token or len(access_token) > MAX_TOKEN_CHARS:
            raise bad(f"access_token is missing or longer than {MAX_TOKEN_CHARS} characters")
        try:
            instance_url = normalize_instance_url(text("instance_url") or "")
        except ConfigurationError as exc:
            raise bad(str(exc)) from None
        token_type = text("token_type") or "Bearer"
        if token_type.lower() != "bearer":
            raise bad("token_type is not Bearer")
        scope = data.get("scope") or ()
        if not isinstance(scope, list | tuple) or not all(isinstance(s, str) for s in scope):
            raise bad("scope is not a list of strings")
        raw = data.get("raw") or {}
        if not isinstance(raw, Mapping):
            raise bad("raw is not an object")
        received_at = when("received_at")
        if received_at is None:
            raise bad("received_at is missing")
        rotation = data.get("refresh_token_rotation")
        if rotation is not None and not isinstance(rotation, bool):
            raise bad("refresh_token_rotation is not true, false or null")
        return cls(
            access_token=access_token,
            instance_url=instance_url,
            id=text("id"),
            token_type=token_type,
            issued_at=when("issued_at"),
            scope=frozenset(scope),
            refresh_token=text("refresh_token"),
            signature=text("signature"),
            id_token=text("id_token"),
            raw=MappingProxyType(dict(raw)),
            received_at=received_at,
            expires_at=when("expires_at"),
            refresh_token_rotation=rotation,
        )

    def __repr__(self) -> str:
        expires = self.expires_at.isoformat(timespec="seconds") if self.expires_at else None
        return (
            f"Token(instance_url={self.instance_url!r}, org_id={self.org_id!r}, "
            f"user_id={self.user_id!r}, scope={' '.join(sorted(self.scope))!r}, "
            f"expires_at={expires!r}, refresh_token={'<set>' if self.refresh_token else None})"
        )

    __str__ = __repr__
