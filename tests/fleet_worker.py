"""A worker process for the multi-process store tests; the tests start it, never pytest.

Run as ``python tests/fleet_worker.py <command> '<json config>'``. Each command prints one
JSON line ``{"event": "ready", ...}`` once set up, waits for a line ``go`` on stdin (so that
every worker starts at once, whatever its start-up time), does its work and prints one JSON
line ``{"event": "result", ...}``.

Commands:
    fleet: ``bursts`` bursts of ``concurrency`` concurrent API requests, one every
        ``interval_s`` (or back to back when a burst takes longer), through one
        `AsyncSession` on a shared store; reports successes, errors and the times of its
        token requests. With ``pause_after_first_burst`` it waits for a second ``go``
        after the first burst.
    hammer: ``writes`` successful compare-and-set saves of generation + 1 on a
        `FileTokenStore`, retrying the ones that lose; reports wins and losses.
    hold-lock: takes a `FileTokenStore` key lock, says so, and holds it until killed.
    refresh-once: one `Refresher` on the configured store and flow; on ``go`` it gets a
        token (refreshing through the store) and reports it, or the error's type and text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sfoauth_async import (
    AsyncSession,
    ClientCredentialsFlow,
    FileTokenStore,
    Flow,
    JWTBearerFlow,
    RedisTokenStore,
    Refresher,
    RefreshTokenFlow,
    RetryPolicy,
    StaleTokenWriteError,
    Token,
    TokenStore,
)


def say(event: str, **fields: Any) -> None:
    """Print one JSON line for the test to read."""
    sys.stdout.write(json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\n")
    sys.stdout.flush()


async def wait_for_go() -> None:
    """Block until the test writes ``go`` on stdin."""
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"expected 'go' on stdin, got {line!r}")


def make_store(config: dict[str, Any]) -> TokenStore:
    """The store the config names."""
    # Short checks: a fleet whose store starts empty waits two of them before trusting the
    # refresh token it was configured with (see Fleet._wait_for_write_back).
    interval = config.get("check_interval_s", 0.2)
    if config["kind"] == "redis":
        return RedisTokenStore.from_url(
            config["url"], socket_connect_timeout=1.0, check_interval_s=interval
        )
    return FileTokenStore(
        config["path"],
        encryption_key_env=config.get("encryption_key_env"),
        check_interval_s=interval,
    )


def make_flow(config: dict[str, Any]) -> Flow:
    """The flow the config names."""
    kind = config["kind"]
    if kind == "client_credentials":
        return ClientCredentialsFlow(
            client_id=config["client_id"],
            client_secret=config["client_secret"],
            login_url=config["login_url"],
        )
    if kind == "jwt_bearer":
        with open(config["private_key_path"], "rb") as f:
            key = f.read()
        return JWTBearerFlow(
            client_id=config["client_id"],
            username=config["username"],
            private_key=key,
            login_url=config["login_url"],
        )
    return RefreshTokenFlow(
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        refresh_token=config["refresh_token"],
        login_url=config["login_url"],
    )


class _Fallbacks(logging.Handler):
    """Counts the refresher's 'in this process only' fallback warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "in this process only" in record.getMessage():
            self.count += 1


async def fleet(config: dict[str, Any]) -> None:
    """Bursts of concurrent API requests through one session on a shared store."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {os.getpid()} %(levelname)s %(message)s",
    )
    fallbacks = _Fallbacks()
    logging.getLogger("sfoauth_async").addHandler(fallbacks)
    store = make_store(config["store"])
    flow = make_flow(config["flow"])
    fetch_times: list[float] = []
    fetch = flow.fetch_token

    async def timed_fetch(*args: Any, **kwargs: Any) -> Token:
        fetch_times.append(time.time())
        return await fetch(*args, **kwargs)

    flow.fetch_token = timed_fetch  # type: ignore[method-assign]
    ok = 0
    errors: Counter[str] = Counter()
    samples: dict[str, str] = {}
    first_ok_at: float | None = None
    last_error_at: float | None = None
    session = AsyncSession(
        flow,
        store=store,
        session_timeout=timedelta(seconds=config["session_timeout_s"]),
        retry=RetryPolicy(**config.get("retry", {})),
    )

    async def one() -> None:
        nonlocal ok, first_ok_at, last_error_at
        try:
            async with session.get(config["path"]) as resp:
                await resp.read()
                if resp.status == 200:
                    ok += 1
                    if first_ok_at is None:
                        first_ok_at = time.time()
                    return
                kind = f"HTTP {resp.status}"
                message = (await resp.text())[:300]
        except Exception as exc:
            kind = type(exc).__name__
            cause = exc.__cause__
            if cause is not None:
                kind += f" from {type(cause).__name__}"
            message = str(exc)[:600]
        errors[kind] += 1
        samples.setdefault(kind, message)
        last_error_at = time.time()

    say("ready", store_key=flow.store_key())
    await wait_for_go()
    started, go_at = time.monotonic(), time.time()
    burst_errors: list[int] = []
    async with session:
        for burst in range(config["bursts"]):
            # Burst i starts i * interval_s after go, or when burst i - 1 ends if later:
            # pacing of the workload, not a wait for anything to settle.
            await asyncio.sleep(max(0.0, started + burst * config["interval_s"] - time.monotonic()))
            ok_before, errors_before = ok, errors.total()
            await asyncio.gather(*(one() for _ in range(config["concurrency"])))
            burst_errors.append(errors.total() - errors_before)
            say(
                "burst",
                index=burst,
                ok=ok - ok_before,
                errors=errors.total() - errors_before,
                at=time.time(),
            )
            if burst == 0 and config.get("pause_after_first_burst"):
                await wait_for_go()
                started = time.monotonic() - config["interval_s"]
        # Let a refresh still in flight land before closing: closing cancels it, which would
        # waste a token request already sent (see the report on Refresher.aclose).
        flight = session.refresher._flight
        if flight is not None:
            await asyncio.wait([flight])
        stats = session.stats
    if isinstance(store, RedisTokenStore):
        await store.aclose()
    say(
        "result",
        ok=ok,
        bursts=len(burst_errors),
        errors=dict(errors),
        burst_errors=burst_errors,
        samples=samples,
        fetch_times=fetch_times,
        go_at=go_at,
        first_ok_at=first_ok_at,
        last_error_at=last_error_at,
        token_requests=stats.token_requests,
        refreshes=stats.refreshes,
        adopted=stats.adopted,
        failures=stats.failures,
        unauthorized=stats.unauthorized,
        fallbacks=fallbacks.count,
    )


def sample_token(n: int) -> Token:
    """A token with secrets, numbered."""
    now = datetime.now(UTC)
    return Token(
        access_token=f"00Dxx!hammer-{n}-" + "x" * 100,
        instance_url="https://acme.my.salesforce.com",
        refresh_token=f"5Aep861-hammer-{n}",
        raw={"access_token": f"00Dxx!hammer-{n}", "padding": "y" * 2000},
        received_at=now,
        expires_at=now + timedelta(hours=2),
    )


async def hammer(config: dict[str, Any]) -> None:
    """Compare-and-set saves of the next generation, as fast as possible."""
    store = FileTokenStore(config["path"])
    key = config["key"]
    wins = losses = 0
    say("ready")
    await wait_for_go()
    while wins < config["writes"]:
        stored = await store.load(key)
        generation = stored.generation + 1 if stored is not None else 1
        try:
            await store.save(key, sample_token(generation), generation=generation)
        except StaleTokenWriteError:
            losses += 1
        else:
            wins += 1
    say("result", wins=wins, losses=losses)


async def hold_lock(config: dict[str, Any]) -> None:
    """Take a key lock of a FileTokenStore and keep it until the process is killed."""
    lock = FileTokenStore(config["path"]).lock(config["key"], lease_s=1.0)
    say("ready", locked=await lock.acquire())
    await asyncio.to_thread(sys.stdin.readline)  # until the test kills us (or closes stdin)


async def refresh_once(config: dict[str, Any]) -> None:
    """Get one token through the store, and report it (or the error)."""
    store = make_store(config["store"])
    refresher = Refresher(
        make_flow(config["flow"]), store=store, retry=RetryPolicy(**config["retry"])
    )
    say("ready", store_key=refresher.flow.store_key())
    await wait_for_go()
    try:
        async with refresher:
            token = await refresher.get_token()
    except Exception as exc:
        say("result", error=type(exc).__name__, message=str(exc)[:600])
    else:
        say("result", access_token=token.access_token, refresh_token=token.refresh_token)
    finally:
        if isinstance(store, RedisTokenStore):
            await store.aclose()


def main() -> None:
    """Run the command named on the command line."""
    command, config = sys.argv[1], json.loads(sys.argv[2])
    commands = {
        "fleet": fleet,
        "hammer": hammer,
        "hold-lock": hold_lock,
        "refresh-once": refresh_once,
    }
    asyncio.run(commands[command](config))


if __name__ == "__main__":
    main()
