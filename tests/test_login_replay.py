"""The replay record of web logins: each login accepted once, in memory, a file, Redis."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from sfoauth_async import FileTokenStore, MemoryTokenStore, RedisTokenStore, StoreUnavailableError
from sfoauth_async._login_replay import (
    FileReplayRecord,
    MemoryReplayRecord,
    RedisReplayRecord,
    StoreReplayRecord,
    login_digest,
    replay_record_for,
)


def test_digest_hides_the_state():
    """The record's name is a SHA-256 of the state, never the state itself."""
    digest = login_digest("the-state")
    assert "the-state" not in digest
    assert len(digest) == 64
    assert login_digest("\ud800") != digest  # a lone surrogate does not crash it


async def test_memory_record_accepts_once_then_forgets_after_ttl():
    """Second use refused; after the time to live the digest is forgotten (pruned)."""
    record = MemoryReplayRecord()
    now = [100.0]
    record._clock = lambda: now[0]
    assert await record.first_use("a", ttl_s=10)
    assert not await record.first_use("a", ttl_s=10)
    now[0] = 111.0
    assert await record.first_use("b", ttl_s=10)
    assert list(record._seen) == ["b"]
    assert await record.first_use("a", ttl_s=10)


async def test_file_record_two_writers_accept_each_login_once(tmp_path: Path):
    """Two records on one file (two workers), racing over 30 logins: 30 accepted, not 60."""
    path = tmp_path / "tokens.json.logins"
    first, second = FileReplayRecord(path), FileReplayRecord(path)
    digests = [login_digest(f"state-{n}") for n in range(30)]
    results = await asyncio.gather(
        *(record.first_use(d, ttl_s=600) for d in digests for record in (first, second))
    )
    assert sum(results) == 30
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_file_record_prunes_expired_and_survives_a_torn_file(tmp_path: Path):
    """Expired digests are dropped on the next write; an unreadable file counts as empty."""
    path = tmp_path / "logins"
    record = FileReplayRecord(path)
    assert await record.first_use("old", ttl_s=-1)  # expired at once
    assert await record.first_use("new", ttl_s=600)
    assert "old" not in path.read_text()
    path.write_text('{"new": 1e99, "cut sho')
    assert await record.first_use("new", ttl_s=600)


async def test_file_record_refuses_a_symlink(tmp_path: Path):
    """The sidecar is never followed through a symbolic link: StoreUnavailableError."""
    target = tmp_path / "elsewhere"
    target.write_text("{}")
    link = tmp_path / "logins"
    link.symlink_to(target)
    with pytest.raises(StoreUnavailableError):
        await FileReplayRecord(link).first_use("a", ttl_s=600)


@pytest.mark.redis
async def test_redis_record_accepts_once_across_clients(redis_url: str):
    """Two stores (two workers) on one Redis: one acceptance, and Redis expires the key."""
    async with (
        RedisTokenStore.from_url(redis_url, prefix="app:") as first,
        RedisTokenStore.from_url(redis_url, prefix="app:") as second,
    ):
        digests = [login_digest(f"s{n}") for n in range(20)]
        records = (RedisReplayRecord(first), RedisReplayRecord(second))
        results = await asyncio.gather(
            *(record.first_use(d, ttl_s=600) for d in digests for record in records)
        )
        assert sum(results) == 20
        ttl_ms = await first.client.pttl(f"app:login:{digests[0]}")
        assert 0 < ttl_ms <= 600_000


@pytest.mark.redis
async def test_redis_record_down_is_unavailable(redis_server_factory):
    """Redis gone: StoreUnavailableError (the login is refused, not accepted twice)."""
    server = redis_server_factory()
    async with RedisTokenStore.from_url(server.url) as store:
        server.stop()
        with pytest.raises(StoreUnavailableError):
            await RedisReplayRecord(store).first_use("a", ttl_s=600)


async def test_any_other_store_uses_a_tombstone():
    """A store of someone else's: the first forget of the login's key is generation 1."""

    class OtherStore(MemoryTokenStore):
        pass

    store = OtherStore()
    record = replay_record_for(store)
    assert isinstance(record, StoreReplayRecord)
    assert await record.first_use("a", ttl_s=600)
    assert not await record.first_use("a", ttl_s=600)
    stored = await store.load("sfoauth:login:a")
    assert stored is not None
    assert stored.forgotten


def test_each_store_gets_its_record(tmp_path: Path):
    """Redis, file and memory stores get their own kind; the file's sidecar sits next to it."""
    file_record = replay_record_for(FileTokenStore(tmp_path / "tokens.json"))
    assert isinstance(file_record, FileReplayRecord)
    assert file_record._path == tmp_path / "tokens.json.logins"
    assert isinstance(replay_record_for(MemoryTokenStore()), MemoryReplayRecord)
