"""The two cookies of a web login, sealed with keys derived from the app's one secret key.

- **The pending login** (``sfoauth_login``): the ``state`` and the PKCE verifier between the
  redirect to Salesforce and the callback, and the page to return to. Encrypted and signed
  (Fernet: AES-128-CBC and HMAC-SHA256), so the browser can neither read the verifier nor
  forge a state; it carries its creation time and is refused 10 minutes later. Any worker
  process with the same secret key can finish a login another one started.
- **The user** (``sfoauth_user``): which user this browser is, set at the callback.
  Encrypted and signed the same way, and refused after its maximum age.

Each purpose has its own key, derived from the secret key with HKDF-SHA256 and a label
naming the purpose, so that one cookie can never be passed off as the other and no key
serves two purposes. Several secret keys rotate: the first seals, all open.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._errors import ConfigurationError, PendingLoginError

__all__ = [
    "PENDING_LOGIN_LIFETIME",
    "LoginCookies",
    "PendingLogin",
    "SecretKey",
    "derive_key",
]

PENDING_LOGIN_LIFETIME = timedelta(minutes=10)
"""How long a login may take between the redirect to Salesforce and the callback."""

SecretKey = str | bytes | Sequence[str | bytes]
"""The app's secret key, or several (the first seals new cookies, every one opens)."""

_MIN_SECRET_BYTES = 32
_CLOCK_SKEW_S = 60.0  # a cookie sealed by a worker whose clock runs a little ahead
_MAX_COOKIE_CHARS = 4096  # browsers keep no more; anything longer is not ours
_PURPOSE_PENDING = "pending-login"
_PURPOSE_USER = "user"
_now = time.time  # the wall clock: Fernet stamps cookies with it (tests move it)


def derive_key(secret_key: str | bytes, purpose: str) -> bytes:
    """A Fernet key for one purpose: HKDF-SHA256 of the secret key, labelled by the purpose.

    Example:
        ```python
        assert derive_key(secret, "user") != derive_key(secret, "pending-login")
        ```
    """
    material = secret_key.encode() if isinstance(secret_key, str) else secret_key
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"sfoauth-async web login v1: " + purpose.encode(),
    ).derive(material)
    return base64.urlsafe_b64encode(okm)


def _secret_keys(secret_key: SecretKey) -> list[str | bytes]:
    keys: list[str | bytes] = (
        [secret_key] if isinstance(secret_key, str | bytes) else list(secret_key)
    )
    if not keys:
        raise ConfigurationError("secret_key must be a key, or a non-empty list of keys.")
    for key in keys:
        if not isinstance(key, str | bytes):
            raise ConfigurationError(
                f"secret_key must be str or bytes (or a list of them), got {type(key).__name__}."
            )
        size = len(key.encode() if isinstance(key, str) else key)
        if size < _MIN_SECRET_BYTES:
            # The key is never shown: only its length.
            raise ConfigurationError(
                f"secret_key must be at least {_MIN_SECRET_BYTES} bytes of random data, got "
                f"{size}. Make one with: python -c 'import secrets; "
                f"print(secrets.token_urlsafe(32))', and keep it in your secret store."
            )
    return keys


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A login between the redirect to Salesforce and the callback.

    Attributes:
        state: The ``state`` sent to Salesforce, which the callback must echo.
        code_verifier: The PKCE verifier of the code exchange (a secret).
        next_path: Where to send the browser after the login, a path of this site.

    Example:
        ```python
        pending = PendingLogin(state=request.state, code_verifier=request.code_verifier)
        ```
    """

    state: str
    code_verifier: str = field(repr=False)
    next_path: str | None = None


class _Sealer:
    """Fernet with keys of one purpose: the first key seals, every key opens."""

    def __init__(self, secret_keys: list[str | bytes], purpose: str) -> None:
        self._fernet = MultiFernet([Fernet(derive_key(k, purpose)) for k in secret_keys])

    def seal(self, payload: dict[str, Any]) -> str:
        data = json.dumps(payload, separators=(",", ":")).encode()
        return self._fernet.encrypt(data).decode("ascii")

    def open(self, value: str, *, max_age_s: float) -> dict[str, Any] | str:
        """The payload, or why not: ``"tampered"`` or ``"expired"``."""
        if len(value) > _MAX_COOKIE_CHARS or not value.isascii():
            return "tampered"
        token = value.encode("ascii")
        try:
            data = self._fernet.decrypt(token)
            sealed_at = self._fernet.extract_timestamp(token)
        except InvalidToken:
            return "tampered"
        age = _now() - sealed_at
        if age < -_CLOCK_SKEW_S:
            return "tampered"  # sealed in the future: not by a worker of ours
        if age > max_age_s:
            return "expired"
        try:
            payload = json.loads(data)
        except ValueError:
            return "tampered"
        return payload if isinstance(payload, dict) else "tampered"


class LoginCookies:
    """Seals and opens the pending-login and user cookies with the app's secret key.

    Args:
        secret_key: At least 32 bytes of random data, or a list of such keys to rotate
            (the first seals, every one opens).

    Raises:
        ConfigurationError: A key is missing, too short or not text or bytes.

    Example:
        ```python
        cookies = LoginCookies(os.environ["APP_SECRET_KEY"])
        value = cookies.seal_user("00D.../005...")
        assert cookies.open_user(value, max_age=timedelta(days=30)) == "00D.../005..."
        ```
    """

    def __init__(self, secret_key: SecretKey) -> None:
        keys = _secret_keys(secret_key)
        self._pending = _Sealer(keys, _PURPOSE_PENDING)
        self._user = _Sealer(keys, _PURPOSE_USER)

    def seal_pending(self, pending: PendingLogin) -> str:
        """The pending-login cookie's value.

        Example:
            ```python
            value = cookies.seal_pending(PendingLogin(state="s", code_verifier="v"))
            ```
        """
        payload = {"s": pending.state, "v": pending.code_verifier}
        if pending.next_path is not None:
            payload["n"] = pending.next_path
        return self._pending.seal(payload)

    def open_pending(self, value: str | None) -> PendingLogin:
        """The pending login in a cookie value, if it is ours and younger than 10 minutes.

        Raises:
            PendingLoginError: ``reason`` ``"missing"``, ``"expired"`` or ``"tampered"``.

        Example:
            ```python
            pending = cookies.open_pending(request.cookies.get("sfoauth_login"))
            ```
        """
        if not value:
            raise PendingLoginError(
                "No login is in progress in this browser: it was finished already, started "
                "in another browser, or the browser does not keep cookies. Start the login "
                "again.",
                reason="missing",
            )
        opened = self._pending.open(value, max_age_s=PENDING_LOGIN_LIFETIME.total_seconds())
        if opened == "expired":
            raise PendingLoginError(
                "This login took more than 10 minutes: start it again.", reason="expired"
            )
        payload = opened if isinstance(opened, dict) else {}
        state, verifier, next_path = payload.get("s"), payload.get("v"), payload.get("n")
        if (
            not isinstance(state, str)
            or not isinstance(verifier, str)
            or not isinstance(next_path, str | None)
        ):
            raise PendingLoginError(
                "The login's state cookie was not made by this app (it may have been "
                "tampered with, or the app's secret key changed): start the login again.",
                reason="tampered",
            )
        return PendingLogin(state=state, code_verifier=verifier, next_path=next_path)

    def seal_user(self, user_key: str) -> str:
        """The user cookie's value for ``user_key``.

        Example:
            ```python
            value = cookies.seal_user(user_key)
            ```
        """
        return self._user.seal({"u": user_key})

    def open_user(self, value: str | None, *, max_age: timedelta) -> str | None:
        """The user key in a user cookie, or ``None`` if it is missing, forged or too old.

        Example:
            ```python
            user_key = cookies.open_user(request.cookies.get("sfoauth_user"), max_age=age)
            ```
        """
        if not value:
            return None
        opened = self._user.open(value, max_age_s=max_age.total_seconds())
        user_key = opened.get("u") if isinstance(opened, dict) else None
        return user_key if isinstance(user_key, str) and user_key else None
