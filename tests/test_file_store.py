"""`FileTokenStore`: the file on disk, several processes, encryption at rest, broken files.

The protocol contract (round trip, compare-and-set, locks) is in test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from sfoauth_async import (
    ConfigurationError,
    FileTokenStore,
    StoredToken,
    StoreError,
    StoreUnavailableError,
    Token,
    _file_store,
)

KEY = "sfoauth:refresh_token:login.salesforce.com:3MVG9example:rt-0123456789abcdef"
ACCESS = "00Dxx0000001gPL!AQ-secret-access-token"
REFRESH = "5Aep861-secret-refresh-token"
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.secret-id-token"
ENV = "SFOAUTH_TEST_FILE_KEY"


# One instant for every token of a run: two calls a second apart must still compare equal.
RECEIVED = datetime.now(UTC).replace(microsecond=0)


def make_token(n: int = 1) -> Token:
    """A token whose three secrets are easy to look for in the file bytes."""
    received = RECEIVED
    return Token(
        access_token=f"{ACCESS}-{n}",
        instance_url="https://acme.my.salesforce.com",
        id="https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001X8UzAAK",
        refresh_token=REFRESH,
        id_token=ID_TOKEN,
        raw={"access_token": f"{ACCESS}-{n}", "refresh_token": REFRESH, "id_token": ID_TOKEN},
        received_at=received,
        expires_at=received + timedelta(hours=2),
    )


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def names(directory: Path, pattern: str = "*") -> list[str]:
    """The sorted names in ``directory`` that match ``pattern``."""
    return sorted(p.name for p in directory.glob(pattern))


async def test_file_is_created_with_mode_0600_whatever_the_umask(tmp_path: Path) -> None:
    """The token file and its lock files are 0600 even under umask 000."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    old = os.umask(0)
    try:
        await store.save(KEY, make_token(), generation=1)
        lock = store.lock(KEY, lease_s=1.0)
        assert await lock.acquire()
        await lock.release()
    finally:
        os.umask(old)
    assert mode(path) == 0o600
    lock_files = names(tmp_path, "tokens.json*.lock")
    assert len(lock_files) == 2
    assert {mode(tmp_path / name) for name in lock_files} == {0o600}


async def test_temporary_file_is_private_and_complete_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What os.replace moves into place is already 0600 and whole: no readable window."""
    path = tmp_path / "tokens.json"
    seen: list[tuple[int, dict[str, Any]]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append((mode(Path(src)), json.loads(Path(src).read_bytes())))
        real_replace(src, dst)

    monkeypatch.setattr(_file_store.os, "replace", spy)
    old = os.umask(0)
    try:
        await FileTokenStore(path).save(KEY, make_token(), generation=1)
    finally:
        os.umask(old)
    [(temporary_mode, content)] = seen
    assert temporary_mode == 0o600
    assert content["records"][KEY]["generation"] == 1


async def test_missing_directory_is_created_private(tmp_path: Path) -> None:
    """A missing parent directory is created with mode 0700."""
    path = tmp_path / "cache" / "sfoauth" / "tokens.json"
    await FileTokenStore(path).save(KEY, make_token(), generation=1)
    assert mode(path.parent) == 0o700
    assert mode(path) == 0o600


async def test_file_layout_is_the_documented_json(tmp_path: Path) -> None:
    """The file is {"version": 2, "records": {key: {...}}, "pending": {key: {...}}}."""
    path = tmp_path / "tokens.json"
    token = make_token()
    store = FileTokenStore(path)
    await store.save(KEY, token, generation=4)
    lock = store.lock(KEY, lease_s=1.0)
    assert await lock.acquire()
    assert await lock.mark(4)
    data = json.loads(path.read_bytes())
    pending = data["pending"].pop(KEY)
    assert data == {
        "version": 2,
        "records": {KEY: {"version": 2, "generation": 4, "token": token.to_dict()}},
        "pending": {},
    }
    assert (pending["owner"], pending["generation"]) == (lock.owner, 4)
    await lock.release()


async def test_save_replaces_the_file_rather_than_writing_into_it(tmp_path: Path) -> None:
    """Each save renames a new file over the old one (a new inode), leaving no temp file."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    await store.save(KEY, make_token(1), generation=1)
    before = path.stat().st_ino
    await store.save(KEY, make_token(2), generation=2)
    assert path.stat().st_ino != before
    assert names(tmp_path) == ["tokens.json", "tokens.json.lock"]


async def test_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails before the rename keeps the previous file whole and cleans up."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    await store.save(KEY, make_token(1), generation=1)
    before = path.read_bytes()

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_file_store.os, "fsync", disk_full)
    with pytest.raises(StoreUnavailableError, match="No space left on device") as caught:
        await store.save(KEY, make_token(2), generation=2)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before
    assert names(tmp_path) == ["tokens.json", "tokens.json.lock"]


async def test_concurrent_writer_processes_never_corrupt_the_file(
    tmp_path: Path, start_worker: Any
) -> None:
    """4 processes x 40 CAS saves: every read parses, final generation == successful saves."""
    path = tmp_path / "tokens.json"
    workers = [
        await start_worker("hammer", {"path": str(path), "key": KEY, "writes": 40})
        for _ in range(4)
    ]
    for worker in workers:
        await worker.ready()
    store = FileTokenStore(path)
    reads = 0
    generations_seen: list[int] = []

    async def read_while_writing() -> None:
        nonlocal reads
        while any(w.process.returncode is None for w in workers):
            if path.exists():
                # Parses whole every time: the raw bytes, and through the store.
                json.loads(await asyncio.to_thread(path.read_bytes))
                stored = await store.load(KEY)
                if stored is not None:
                    generations_seen.append(stored.generation)
                reads += 1
            await asyncio.sleep(0)

    reader = asyncio.create_task(read_while_writing())
    for worker in workers:
        worker.go()
    results = [await worker.result() for worker in workers]
    await reader
    wins = sum(r["wins"] for r in results)
    assert wins == 160
    stored = await store.load(KEY)
    assert stored is not None
    assert stored.generation == wins
    assert stored.token.access_token.startswith(f"00Dxx!hammer-{wins}-")
    assert generations_seen == sorted(generations_seen)  # never went back
    assert reads > 0
    assert names(tmp_path, "*.tmp") == []
    assert mode(path) == 0o600


async def test_key_lock_held_by_a_process_is_freed_when_it_is_killed(
    tmp_path: Path, start_worker: Any
) -> None:
    """Another process's flock excludes us, and the kernel frees it on kill -9: no lease."""
    path = tmp_path / "tokens.json"
    holder = await start_worker("hold-lock", {"path": str(path), "key": KEY})
    assert (await holder.ready())["locked"] is True
    store = FileTokenStore(path)
    assert not await store.lock(KEY, lease_s=600.0).acquire()
    holder.kill()
    await holder.process.wait()
    lock = store.lock(KEY, lease_s=600.0)
    assert await lock.acquire()
    await lock.release()


# -- encryption at rest ------------------------------------------------------------------


@pytest.fixture
def fernet_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh Fernet key in the environment variable ENV."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(ENV, key)
    return key


async def test_encryption_keeps_secrets_out_of_the_file(tmp_path: Path, fernet_key: str) -> None:
    """With a key, no secret appears in the file bytes, and the token loads back equal."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path, encryption_key_env=ENV)
    token = make_token()
    await store.save(KEY, token, generation=1)
    content = path.read_bytes()
    for secret in (ACCESS, REFRESH, ID_TOKEN, fernet_key):
        assert secret.encode() not in content
    # Sealed whole: where the bearer goes cannot be altered either.
    assert b"acme.my.salesforce.com" not in content
    stored = await store.load(KEY)
    assert stored == StoredToken(token, 1)
    assert stored is not None
    assert dict(stored.token.raw) == dict(token.raw)


async def test_without_encryption_secrets_are_protected_by_the_mode_only(tmp_path: Path) -> None:
    """Without a key the secrets are in clear in the (0600) file."""
    path = tmp_path / "tokens.json"
    await FileTokenStore(path).save(KEY, make_token(), generation=1)
    content = path.read_bytes()
    assert REFRESH.encode() in content
    assert mode(path) == 0o600


@pytest.mark.usefixtures("fernet_key")
async def test_clear_records_are_refused_once_a_key_is_set(tmp_path: Path) -> None:
    """With a key, a record in clear (planted, or older) is a StoreError naming the way out."""
    path = tmp_path / "tokens.json"
    await FileTokenStore(path).save(KEY, make_token(1), generation=1)
    with pytest.raises(StoreError, match="accept_unsealed=True") as caught:
        await FileTokenStore(path, encryption_key_env=ENV).load(KEY)
    assert str(path) in str(caught.value)


@pytest.mark.usefixtures("fernet_key")
async def test_accept_unsealed_migrates_a_clear_file_to_encryption(tmp_path: Path) -> None:
    """accept_unsealed=True reads the old clear records and seals the next write."""
    path = tmp_path / "tokens.json"
    await FileTokenStore(path).save(KEY, make_token(1), generation=1)
    store = FileTokenStore(path, encryption_key_env=ENV, accept_unsealed=True)
    assert await store.load(KEY) == StoredToken(make_token(1), 1)
    await store.save(KEY, make_token(2), generation=2)
    assert REFRESH.encode() not in path.read_bytes()
    assert await FileTokenStore(path, encryption_key_env=ENV).load(KEY) == StoredToken(
        make_token(2), 2
    )


@pytest.mark.usefixtures("fernet_key")
async def test_a_sealed_record_moved_to_another_key_is_refused(tmp_path: Path) -> None:
    """Sealed records are bound to their key: copying user A's record to user B fails."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path, encryption_key_env=ENV)
    await store.save(KEY, make_token(1), generation=1)
    other = KEY + "-another-user"
    document = json.loads(path.read_bytes())
    document["records"][other] = document["records"][KEY]
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    with pytest.raises(StoreError, match="another key or generation"):
        await store.load(other)


@pytest.mark.usefixtures("fernet_key")
async def test_a_sealed_record_given_another_generation_is_refused(tmp_path: Path) -> None:
    """The generation is sealed too: raising it by hand to win compare-and-sets fails."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path, encryption_key_env=ENV)
    await store.save(KEY, make_token(1), generation=1)
    document = json.loads(path.read_bytes())
    document["records"][KEY]["generation"] = 9
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    with pytest.raises(StoreError, match="another key or generation"):
        await store.load(KEY)


async def test_key_rotation_reads_with_old_keys_and_writes_with_the_first(
    tmp_path: Path, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENV="new,old" opens records sealed with the old key."""
    path = tmp_path / "tokens.json"
    await FileTokenStore(path, encryption_key_env=ENV).save(KEY, make_token(), generation=1)
    monkeypatch.setenv(ENV, f"{Fernet.generate_key().decode()},{fernet_key}")
    assert await FileTokenStore(path, encryption_key_env=ENV).load(KEY) is not None


@pytest.mark.usefixtures("fernet_key")
async def test_file_encrypted_with_another_key_is_a_clear_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another key gives a StoreError naming the variable and the file, not InvalidToken."""
    path = tmp_path / "tokens.json"
    await FileTokenStore(path, encryption_key_env=ENV).save(KEY, make_token(), generation=1)
    monkeypatch.setenv(ENV, Fernet.generate_key().decode())
    with pytest.raises(StoreError, match="written with another key") as caught:
        await FileTokenStore(path, encryption_key_env=ENV).load(KEY)
    assert type(caught.value) is StoreError
    assert ENV in str(caught.value)
    assert str(path) in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.usefixtures("fernet_key")
async def test_encrypted_file_without_a_key_says_to_configure_one(tmp_path: Path) -> None:
    """Loading a sealed record with no key configured names encryption_key_env."""
    path = tmp_path / "tokens.json"
    await FileTokenStore(path, encryption_key_env=ENV).save(KEY, make_token(), generation=1)
    with pytest.raises(StoreError, match="encryption_key_env"):
        await FileTokenStore(path).load(KEY)


def test_missing_key_variable_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset variable is a ConfigurationError that names it and says how to make a key."""
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ConfigurationError, match=ENV) as caught:
        FileTokenStore("tokens.json", encryption_key_env=ENV)
    assert "Fernet.generate_key()" in str(caught.value)


def test_invalid_key_is_a_configuration_error_that_never_shows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A value that is no Fernet key is refused, named by its variable, never printed."""
    bad = "not-a-fernet-key-but-maybe-a-password"
    monkeypatch.setenv(ENV, bad)
    with pytest.raises(ConfigurationError, match=ENV) as caught:
        FileTokenStore("tokens.json", encryption_key_env=ENV)
    assert bad not in str(caught.value)
    assert caught.value.__cause__ is None
    assert "Fernet.generate_key()" in str(caught.value)


# -- broken files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 2, "records": {"sfoauth:x": {"generation": 1, "tok',
        b"\x00\x01\x02 not json",
        b"[1, 2, 3]",
        b'{"version": 2}',
        b"",
        b"\n  \n",
    ],
    ids=["truncated", "binary", "array", "no-records", "empty", "blank"],
)
async def test_corrupt_file_is_a_store_error_naming_it_and_is_never_overwritten(
    tmp_path: Path, content: bytes
) -> None:
    """Loading and saving raise StoreError naming the file (no JSONDecodeError); bytes unchanged."""
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    path.chmod(0o600)
    store = FileTokenStore(path)
    with pytest.raises(StoreError, match="empty, truncated") as caught:
        await store.load(KEY)
    assert type(caught.value) is StoreError
    assert str(path) in str(caught.value)
    assert caught.value.__cause__ is None
    with pytest.raises(StoreError, match="empty, truncated"):
        await store.save(KEY, make_token(), generation=1)
    with pytest.raises(StoreError, match="empty, truncated"):
        await store.forget(KEY)
    assert path.read_bytes() == content


async def test_file_of_another_version_is_refused(tmp_path: Path) -> None:
    """A file from a future format version is a StoreError that says so."""
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"version": 1, "tokens": {}}))
    path.chmod(0o600)
    with pytest.raises(StoreError, match="version 1; this sfoauth_async reads version 2"):
        await FileTokenStore(path).load(KEY)


@pytest.mark.parametrize(
    "record",
    [
        {"generation": "1", "token": {}},
        {"generation": 1, "token": "x"},
        {"generation": 1, "token": {"access_token": "00D!x"}},
    ],
    ids=["generation", "token-type", "token-fields"],
)
async def test_malformed_record_is_a_store_error_naming_the_key(
    tmp_path: Path, record: dict[str, Any]
) -> None:
    """A record that is not a stored token raises StoreError naming its key and the file."""
    path = tmp_path / "tokens.json"
    document = {"version": 2, "records": {KEY: {"version": 2, **record}}, "pending": {}}
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    with pytest.raises(StoreError) as caught:
        await FileTokenStore(path).load(KEY)
    assert KEY in str(caught.value)
    assert str(path) in str(caught.value)


async def test_a_directory_at_the_path_is_refused(tmp_path: Path) -> None:
    """A path that is not a regular file raises StoreError naming it."""
    path = tmp_path / "tokens.json"
    path.mkdir()
    with pytest.raises(StoreError, match="not a regular file") as caught:
        await FileTokenStore(path).load(KEY)
    assert str(path) in str(caught.value)


async def test_a_symbolic_link_is_never_followed(tmp_path: Path) -> None:
    """A token file that is a symlink (to a file an attacker reads) is refused, not followed."""
    target = tmp_path / "elsewhere.json"
    await FileTokenStore(target).save(KEY, make_token(), generation=1)
    path = tmp_path / "tokens.json"
    path.symlink_to(target)
    store = FileTokenStore(path)
    with pytest.raises(StoreError, match="symbolic link"):
        await store.load(KEY)
    with pytest.raises(StoreError, match="symbolic link"):
        await store.save(KEY, make_token(2), generation=2)
    assert (await FileTokenStore(target).load(KEY)) == StoredToken(make_token(), 1)


async def test_a_symbolic_link_as_lock_file_is_refused(tmp_path: Path) -> None:
    """A lock file replaced by a symlink (to clobber another file) is not opened through."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    lock_file = _file_store._lock_file_name(path, KEY)
    lock_file.symlink_to(victim)
    with pytest.raises(StoreUnavailableError, match="lock file"):
        await store.lock(KEY, lease_s=1.0).acquire()
    assert victim.read_text() == "keep"


@pytest.mark.parametrize("bits", [0o644, 0o640, 0o606, 0o620])
async def test_a_file_others_may_read_or_write_is_refused(tmp_path: Path, bits: int) -> None:
    """Group or other permissions on the file are refused, with chmod advice."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    await store.save(KEY, make_token(), generation=1)
    path.chmod(bits)
    with pytest.raises(StoreError, match="chmod 600") as caught:
        await store.load(KEY)
    assert f"{bits:04o}" in str(caught.value)


async def test_a_file_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file owned by another user is refused: they could plant tokens in it."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    await store.save(KEY, make_token(), generation=1)
    other_uid = os.geteuid() + 1
    monkeypatch.setattr(_file_store.os, "geteuid", lambda: other_uid)
    with pytest.raises(StoreError, match="belongs to user id"):
        await store.load(KEY)


async def test_a_deleted_lock_file_does_not_let_a_second_holder_in(tmp_path: Path) -> None:
    """A cleaner deleting a held lock file: the holder knows it lost it; one holder at most."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    first = store.lock(KEY, lease_s=1.0)
    assert await first.acquire()
    _file_store._lock_file_name(path, KEY).unlink()
    # The first holder's lock no longer excludes anyone: it must know, and say so.
    assert not await first.renew()
    assert not await first.mark(0)
    second = store.lock(KEY, lease_s=1.0)
    assert await second.acquire()
    assert await second.renew()
    await first.release()
    await second.release()


async def test_a_lock_file_swapped_between_open_and_flock_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the lock file is deleted after our open, our flock on the orphan does not count."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    lock_file = _file_store._lock_file_name(path, KEY)
    real_open = _file_store._open_lock_file

    def open_then_lose_it(where: Path) -> int:
        fd = real_open(where)
        if where == lock_file:
            where.unlink()
        return fd

    monkeypatch.setattr(_file_store, "_open_lock_file", open_then_lose_it)
    assert not await store.lock(KEY, lease_s=1.0).acquire()


def test_the_package_imports_without_fcntl_and_the_file_store_says_why() -> None:
    """Without fcntl (Windows), import works and FileTokenStore raises a clear error."""
    code = (
        "import sys; sys.modules['fcntl'] = None\n"
        "import sfoauth_async\n"
        "try:\n"
        "    sfoauth_async.FileTokenStore('t.json')\n"
        "except sfoauth_async.ConfigurationError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "refused: FileTokenStore needs POSIX file locks" in done.stdout
    assert "RedisTokenStore" in done.stdout


def test_repr_names_the_file_and_the_variable_not_the_key(tmp_path: Path, fernet_key: str) -> None:
    """The repr shows the path and the variable's name, never the key."""
    text = repr(FileTokenStore(tmp_path / "t.json", encryption_key_env=ENV))
    assert str(tmp_path / "t.json") in text
    assert ENV in text
    assert fernet_key not in text
