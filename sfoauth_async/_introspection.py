"""`Introspection`: the parsed answer of ``/services/oauth2/introspect`` (RFC 7662)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

__all__ = ["Introspection"]


def _epoch(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        if not math.isfinite(value):
            return None
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        # 1e20 or 10**400 seconds: past year 9999, or more than a float holds.
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class Introspection:
    """What Salesforce says about a token: whether it is active, whose, and until when.

    Field names follow RFC 7662. ``exp`` is the real end of the session at the time of the
    call; Salesforce sessions slide with activity, so it may move later.

    Attributes:
        active: Whether the token is valid now. Inactive tokens carry no other field.
        scope: The token's scopes.
        client_id: The consumer key of the app the token was issued to.
        username: The user's username.
        sub: The user's identity URL.
        token_type: ``"access_token"`` or ``"refresh_token"``.
        exp: When the token expires.
        iat: When it was issued.
        nbf: Not valid before.
        raw: The whole JSON answer.

    Example:
        ```python
        info = await flow.introspect(token)
        if info.active:
            print("valid until", info.exp)
        ```
    """

    active: bool
    scope: frozenset[str] = frozenset()
    client_id: str | None = None
    username: str | None = None
    sub: str | None = None
    token_type: str | None = None
    exp: datetime | None = None
    iat: datetime | None = None
    nbf: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_response(cls, data: Mapping[str, Any]) -> Introspection:
        """Parse an introspection answer; unknown or malformed fields become ``None``.

        Times out of ``datetime``'s range (an ``exp`` of ``1e20``) are malformed too: the
        expiry is then unknown, never an ``OverflowError``.

        Example:
            ```python
            info = Introspection.from_response({"active": True, "exp": 1900000000})
            ```
        """
        scope = data.get("scope")
        return cls(
            active=data.get("active") is True,
            scope=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
            client_id=_text(data.get("client_id")),
            username=_text(data.get("username")),
            sub=_text(data.get("sub")),
            token_type=_text(data.get("token_type")),
            exp=_epoch(data.get("exp")),
            iat=_epoch(data.get("iat")),
            nbf=_epoch(data.get("nbf")),
            raw=MappingProxyType(dict(data)),
        )
