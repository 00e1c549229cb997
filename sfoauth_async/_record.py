"""How both persistent stores write a token: a JSON record, its secrets optionally sealed.

A record is ``{"generation": n, "token": {...}}`` where the token is `Token.to_dict`. With an
encryption key the secrets (access token, refresh token, ID token and the raw response,
which repeats them) are sealed together with Fernet into one ``sealed`` field; the rest
(instance URL, identity URL, expiry) stays readable so that a store can be inspected.
"""

from __future__ import annotations

import binascii
import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ._errors import ConfigurationError, StoreError
from ._store import StoredToken
from ._token import Token

__all__ = ["Sealer", "stored_from_record"]

_SECRET_FIELDS = ("access_token", "refresh_token", "id_token", "raw")
_MAKE_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class Sealer:
    """Seals and opens the secret fields of a token dict with Fernet (or passes them through).

    Shared by the file and Redis stores so that both write the same record format.
    """

    def __init__(self, key_env: str | None) -> None:
        self.key_env = key_env
        self._fernet: MultiFernet | None = None
        if key_env is None:
            return
        value = os.environ.get(key_env)
        if not value or not value.strip():
            raise ConfigurationError(
                f"The environment variable {key_env} (encryption_key_env) is not set. Put a "
                f"Fernet key in it; make one with: {_MAKE_KEY}"
            )
        # Several comma-separated keys rotate the key: the first seals, all of them open.
        keys = [k.strip() for k in value.split(",") if k.strip()]
        fernets = []
        for position, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, binascii.Error):
                # The message never shows the key itself: the variable may hold a real one.
                raise ConfigurationError(
                    f"Key {position} of the environment variable {key_env} "
                    f"(encryption_key_env) is not a Fernet key (32 url-safe base64-encoded "
                    f"bytes). Make one with: {_MAKE_KEY}"
                ) from None
        self._fernet = MultiFernet(fernets)

    def seal(self, token: Token) -> dict[str, Any]:
        """The stored form of ``token``: its dict, with the secrets sealed if a key is set."""
        data = token.to_dict()
        if self._fernet is None:
            return data
        secrets = {name: data.pop(name) for name in _SECRET_FIELDS}
        data["sealed"] = self._fernet.encrypt(json.dumps(secrets).encode()).decode("ascii")
        return data

    def open(self, data: Mapping[str, Any], *, where: str) -> Token:
        """The `Token` of a stored dict; ``where`` names the record in error messages.

        Raises:
            StoreError: The record is sealed and no key (or another key) is configured, or
                it is not a stored token.
        """
        if "sealed" in data:
            sealed = data["sealed"]
            if self._fernet is None:
                raise StoreError(
                    f"{where} is encrypted, but this store has no key: pass "
                    f"encryption_key_env= naming the environment variable that holds the key "
                    f"it was written with."
                )
            if not isinstance(sealed, str):
                raise StoreError(f"{where} is not a stored token (its sealed part is no string).")
            try:
                secrets = json.loads(self._fernet.decrypt(sealed.encode("ascii")))
            except (InvalidToken, UnicodeEncodeError, ValueError):
                raise StoreError(
                    f"{where} cannot be decrypted with the key in {self.key_env}: it was "
                    f"written with another key, or it was altered. Set {self.key_env} to the "
                    f"key it was written with (comma-separated keys are all tried), or delete "
                    f"the record and log in again."
                ) from None
            if not isinstance(secrets, dict):
                raise StoreError(f"{where} is not a stored token (its sealed part is no object).")
            data = {**{k: v for k, v in data.items() if k != "sealed"}, **secrets}
        # A plaintext record is read even when a key is set: it is how a store moves to
        # encryption (the next write seals it).
        try:
            return Token.from_dict(data)
        except ValueError as exc:
            raise StoreError(f"{where} is not a stored token: {exc}") from None


def stored_from_record(record: object, *, sealer: Sealer, where: str) -> StoredToken:
    """The `StoredToken` of a ``{"generation": n, "token": {...}}`` record.

    Raises:
        StoreError: The record is not one.
    """
    if not isinstance(record, dict):
        raise StoreError(f"{where} is not a stored token record (expected an object).")
    generation = record.get("generation")
    token = record.get("token")
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 1:
        raise StoreError(f"{where} has no valid generation (a whole number from 1).")
    if not isinstance(token, dict):
        raise StoreError(f"{where} has no token object.")
    return StoredToken(sealer.open(token, where=where), generation)
