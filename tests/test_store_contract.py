"""The `TokenStore` contract, run against every store of ours: memory, file and Redis.

The contract itself ships as `sfoauth_async.testing.TokenStoreContract`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sfoauth_async import FileTokenStore, MemoryTokenStore, RedisTokenStore
from sfoauth_async.testing._contract import TokenStoreContract


class TestMemoryTokenStore(TokenStoreContract):
    """The contract, in memory."""

    @pytest.fixture
    async def store(self) -> MemoryTokenStore:
        """An empty memory store."""
        return MemoryTokenStore()


class TestFileTokenStore(TokenStoreContract):
    """The contract, in a JSON file."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> FileTokenStore:
        """An empty file store."""
        return FileTokenStore(tmp_path / "tokens.json")


@pytest.mark.redis
class TestRedisTokenStore(TokenStoreContract):
    """The contract, on a real redis-server."""

    @pytest.fixture
    async def store(self, redis_url: str) -> AsyncIterator[RedisTokenStore]:
        """An empty Redis store."""
        async with RedisTokenStore.from_url(redis_url) as redis_store:
            yield redis_store
