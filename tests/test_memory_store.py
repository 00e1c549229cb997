"""`MemoryTokenStore`: what differs from the shared stores.

The protocol contract (round trip, compare-and-set, locks) is in test_store_contract.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sfoauth_async import MemoryTokenStore, StoredToken, Token, TokenStore

KEY = "sfoauth:client_credentials:acme.my.salesforce.com:3MVG9example:run-as"


def make_token() -> Token:
    """A token expiring in two hours."""
    now = datetime.now(UTC)
    return Token(
        access_token="00D!memory",
        instance_url="https://acme.my.salesforce.com",
        received_at=now,
        expires_at=now + timedelta(hours=2),
    )


def test_memory_store_is_a_token_store() -> None:
    """MemoryTokenStore satisfies the runtime-checkable TokenStore protocol."""
    assert isinstance(MemoryTokenStore(), TokenStore)


async def test_instances_do_not_share_tokens_or_locks() -> None:
    """Two MemoryTokenStore objects are two separate stores."""
    first, second = MemoryTokenStore(), MemoryTokenStore()
    await first.save(KEY, make_token(), generation=1)
    assert await second.load(KEY) is None
    assert await first.lock(KEY, lease_s=1.0).acquire()
    assert await second.lock(KEY, lease_s=1.0).acquire()


async def test_lock_has_no_lease() -> None:
    """In one process a lock needs no lease: even lease_s=0 holds until released."""
    store = MemoryTokenStore()
    held = store.lock(KEY, lease_s=0.0)
    assert await held.acquire()
    assert not await store.lock(KEY, lease_s=0.0).acquire()
    await held.release()
    assert await store.lock(KEY, lease_s=0.0).acquire()


async def test_stored_token_is_the_same_object() -> None:
    """No serialisation in memory: load returns the token that was saved."""
    store = MemoryTokenStore()
    token = make_token()
    await store.save(KEY, token, generation=1)
    stored = await store.load(KEY)
    assert stored == StoredToken(token, 1)
    assert stored is not None
    assert stored.token is token
