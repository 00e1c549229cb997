"""How both persistent stores write a key's record: JSON, sealed whole when a key is set.

Version 2 records::

    {"version": 2, "generation": 3, "token": {...}}           a token, in clear
    {"version": 2, "generation": 3, "sealed": "gAAAA..."}      a token, sealed
    {"version": 2, "generation": 4, "forgotten": true}         a tombstone (`TokenStore.forget`)

and, beside them, a pending-refresh marker ``{"owner": ..., "generation": 3, "since": ...}``.

With an encryption key, the sealed part is a Fernet token (AES-CBC with HMAC-SHA256) of
``{"key": <store key>, "generation": 3, "token": {...}}``: the whole token (instance URL,
identity URL and expiry included, not only the secrets) is encrypted and authenticated, and
bound to its key and generation, so a record cannot be altered, nor moved to another key or
generation, without the key. Once a key is set, records in clear are refused: anyone who can
write to the store could otherwise plant one that sends the bearer elsewhere.
"""

from __future__ import annotations

import binascii
import json
import os
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ._errors import ConfigurationError, StoreError
from ._store import PendingRefresh, StoredToken
from ._token import Token

__all__ = ["VERSION", "RecordCodec"]

VERSION = 2
_MAKE_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


def _load_fernet(key_env: str) -> MultiFernet:
    value = os.environ.get(key_env)
    if not value or not value.strip():
        raise ConfigurationError(
            f"The environment variable {key_env} (encryption_key_env) is not set. Put a "
            f"Fernet key in it; make one with: {_MAKE_KEY}"
        )
    # Several comma-separated keys rotate the key: the first seals, all of them open.
    fernets = []
    for position, key in enumerate((k.strip() for k in value.split(",") if k.strip()), 1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, binascii.Error):
            # The message never shows the key itself: the variable may hold a real one.
            raise ConfigurationError(
                f"Key {position} of the environment variable {key_env} "
                f"(encryption_key_env) is not a Fernet key (32 url-safe base64-encoded "
                f"bytes). Make one with: {_MAKE_KEY}"
            ) from None
    return MultiFernet(fernets)


class RecordCodec:
    """Turns `StoredToken` into record dicts and back, sealing them when a key is set.

    Shared by `FileTokenStore` and `RedisTokenStore` so that both write the same format.

    Args:
        key_env: The environment variable holding the Fernet key(s), or ``None``.
        accept_unsealed: With a key, also read records written in clear (to move a store
            to encryption; each is sealed when next written).
    """

    def __init__(self, key_env: str | None, *, accept_unsealed: bool = False) -> None:
        self.key_env = key_env
        self._fernet = _load_fernet(key_env) if key_env is not None else None
        self._accept_unsealed = accept_unsealed

    def token_record(self, key: str, token: Token, generation: int) -> dict[str, Any]:
        """The record of ``token`` as ``generation`` of ``key``."""
        data = token.to_dict()
        if self._fernet is None:
            return {"version": VERSION, "generation": generation, "token": data}
        payload = json.dumps({"key": key, "generation": generation, "token": data})
        sealed = self._fernet.encrypt(payload.encode()).decode("ascii")
        return {"version": VERSION, "generation": generation, "sealed": sealed}

    @staticmethod
    def tombstone(generation: int) -> dict[str, Any]:
        """The record `TokenStore.forget` leaves."""
        return {"version": VERSION, "generation": generation, "forgotten": True}

    def stored(
        self, key: str, record: object, pending: object = None, *, where: str
    ) -> StoredToken | None:
        """The `StoredToken` of a record (``None``: none) and a marker, or a `StoreError`.

        A marker counts only while it names the stored generation: one left over from an
        older generation says nothing about the current refresh token.
        """
        marker = _pending(pending, where=where)
        if record is None:
            if marker is None or marker.generation != 0:
                return None
            return StoredToken(None, 0, marker)
        if not isinstance(record, dict):
            raise StoreError(f"{where} is not a stored token record (expected an object).")
        if record.get("version") != VERSION:
            raise StoreError(
                f"{where} is a record of version {record.get('version')!r}; this sfoauth_async "
                f"reads version {VERSION}. Delete it (the credential logs in again) or use the "
                f"sfoauth_async that wrote it."
            )
        generation = record.get("generation")
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 1:
            raise StoreError(f"{where} has no valid generation (a whole number from 1).")
        if marker is not None and marker.generation != generation:
            marker = None
        if record.get("forgotten") is True:
            return StoredToken(None, generation, marker)
        return StoredToken(self._token(key, generation, record, where=where), generation, marker)

    def _token(self, key: str, generation: int, record: dict[str, Any], *, where: str) -> Token:
        data: object
        if "sealed" in record:
            data = self._open(key, generation, record["sealed"], where=where)
        elif self._fernet is not None and not self._accept_unsealed:
            raise StoreError(
                f"{where} is not encrypted, and this store has an encryption key: a record in "
                f"clear could have been planted by anyone who can write to the store. Delete "
                f"it (the credential logs in again), or, to move an existing store to "
                f"encryption, pass accept_unsealed=True until every record has been written "
                f"again."
            )
        else:
            data = record.get("token")
        if not isinstance(data, dict):
            raise StoreError(f"{where} has no token object.")
        try:
            return Token.from_dict(data)
        except ValueError as exc:
            raise StoreError(f"{where} is not a stored token: {exc}") from None

    def _open(self, key: str, generation: int, sealed: object, *, where: str) -> dict[str, Any]:
        if self._fernet is None:
            raise StoreError(
                f"{where} is encrypted, but this store has no key: pass "
                f"encryption_key_env= naming the environment variable that holds the key it "
                f"was written with."
            )
        if not isinstance(sealed, str):
            raise StoreError(f"{where} is not a stored token (its sealed part is no string).")
        try:
            payload = json.loads(self._fernet.decrypt(sealed.encode("ascii")))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            raise StoreError(
                f"{where} cannot be decrypted with the key in {self.key_env}: it was written "
                f"with another key, or it was altered. Set {self.key_env} to the key it was "
                f"written with (comma-separated keys are all tried), or delete the record and "
                f"log in again."
            ) from None
        if (
            not isinstance(payload, dict)
            or payload.get("key") != key
            or payload.get("generation") != generation
        ):
            raise StoreError(
                f"{where} holds a sealed token of another key or generation: it was copied "
                f"there. Delete the record and log in again."
            )
        token = payload.get("token")
        if not isinstance(token, dict):
            raise StoreError(f"{where} is not a stored token (its sealed part has no token).")
        return token

    @staticmethod
    def pending_record(pending: PendingRefresh) -> dict[str, Any]:
        """The stored form of a pending-refresh marker."""
        return {
            "owner": pending.owner,
            "generation": pending.generation,
            "since": pending.since.isoformat(),
        }


def _pending(value: object, *, where: str) -> PendingRefresh | None:
    if value is None:
        return None
    malformed = StoreError(
        f"The pending-refresh marker of {where} is malformed. Delete it only if no process is "
        f"refreshing this credential."
    )
    if not isinstance(value, dict):
        raise malformed
    owner, generation, since = value.get("owner"), value.get("generation"), value.get("since")
    if not isinstance(owner, str) or not isinstance(generation, int) or not isinstance(since, str):
        raise malformed
    try:
        when = datetime.fromisoformat(since)
    except ValueError:
        raise malformed from None
    if when.tzinfo is None:
        raise malformed
    return PendingRefresh(owner, generation, when)
