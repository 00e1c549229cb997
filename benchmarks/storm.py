"""Scenarios 2 and 3: a storm of calls right after the session ended, counted by the org.

For each client: a fresh client logs in and makes one call; then the org ends every session
(``expire_all_sessions``), so each call of the storm first meets a 401. `Settings.storm_calls`
calls start at once (the threaded client queues them on its 50 threads). The org counts the
token requests it received during the storm; a call is lost when it raised or did not end
in a 200.

Scenario 2 runs with a fast token endpoint and with a slow one (`Settings.slow_token_s`).
Scenario 3 runs with a fast endpoint that answers 400 ``invalid_grant``: once (the first
token request of the storm), and then for every token request of the storm (a credential
revoked for good).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from . import Settings
from ._clients import STORM, THREADS, Client
from ._measure import storm, threaded_storm
from ._org import OrgProcess
from ._report import Section


async def one_storm(
    org: OrgProcess, client: Client, calls: int, *, delay_s: float, refusals: int
) -> dict[str, float]:
    """Warm the client, end the sessions, run the storm; the org's counts and ours."""
    org.reset()
    await client.warm()
    org.set_token_delay(delay_s)
    if refusals:
        org.push_token_error("invalid_grant", "no client credentials user enabled", refusals)
    org.expire_all_sessions()
    before = org.stats()
    if client.threaded:
        result = threaded_storm(client.call_sync, calls, THREADS)
    else:
        result = await storm(client.call, calls)
    after = org.stats()
    org.reset()
    return {
        "token_requests": after["token_requests"] - before["token_requests"],
        "lost": result.failed,
        "unauthorized": after["unauthorized"] - before["unauthorized"],
        "api_requests": after["api_requests"] - before["api_requests"],
        "max_concurrent_token_requests": after["max_concurrent_token_requests"],
        "wall_s": result.wall_s,
    }


async def _measure(
    org: OrgProcess, cls: type[Client], calls: int, *, delay_s: float, refusals: int = 0
) -> dict[str, float]:
    assert org.info is not None
    client = cls(org.info)
    await client.open()
    try:
        return await one_storm(org, client, calls, delay_s=delay_s, refusals=refusals)
    finally:
        await client.close()


def _skip(cls: type[Client]) -> str | None:
    missing = cls.missing()
    if missing is not None:
        return f"skipped ({missing} not installed)"
    if not cls.refreshes:
        return "n/a: never refreshes (hand-set header)"
    return None


async def _pairs(
    section: Section,
    names: tuple[str, str],
    run: Callable[[type[Client]], Awaitable[tuple[dict[str, float], dict[str, float]]]],
) -> None:
    """One row per storm client: two variants of the storm side by side ("a / b")."""
    for cls in STORM:
        reason = _skip(cls)
        if reason is not None:
            section.add([cls.name, reason, "", "", ""], client=cls.name, skipped=reason)
            continue
        try:
            a, b = await run(cls)
        except Exception as exc:  # a broken peer is reported, not fatal
            section.add([cls.name, f"error: {exc!r}"[:120], "", "", ""], client=cls.name)
            continue
        counts = [f"{a[k]} / {b[k]}" for k in ("token_requests", "lost", "unauthorized")]
        section.add(
            [cls.label(), *counts, f"{a['wall_s']:.2f} / {b['wall_s']:.2f}"],
            client=cls.name,
            version=cls.label(),
            **{names[0]: a, names[1]: b},
        )


async def run_storm(org: OrgProcess, settings: Settings) -> Section:
    """Scenario 2: token requests and lost calls, fast and slow token endpoint."""
    slow = f"{settings.slow_token_s:g} s"
    section = Section(
        name="storm",
        title=(
            f"2. Storm: {settings.storm_calls} concurrent calls right after the session "
            f"ended (token endpoint fast / {slow})"
        ),
        columns=[
            "client",
            "token POSTs (fast / slow)",
            "calls lost (fast / slow)",
            "401s served (fast / slow)",
            "storm wall s (fast / slow)",
        ],
    )

    async def fast_and_slow(cls: type[Client]) -> tuple[dict[str, float], dict[str, float]]:
        fast = await _measure(org, cls, settings.storm_calls, delay_s=0)
        return fast, await _measure(org, cls, settings.storm_calls, delay_s=settings.slow_token_s)

    await _pairs(section, ("fast", "slow"), fast_and_slow)
    section.notes.append(
        "token POSTs: token-endpoint requests the org received during the storm (1 is "
        "ideal). 401s served: API calls the org rejected (each costs a round trip, and on "
        "Salesforce counts against the API limit)."
    )
    section.notes.append(
        "'expiry known client-side' starts from a token whose expires_at is past: it "
        "refreshes before sending anything, so it should see no 401."
    )
    return section


async def run_invalid_grant(org: OrgProcess, settings: Settings) -> Section:
    """Scenario 3: ``invalid_grant`` once, then on every token request, during a storm."""
    calls = settings.storm_calls
    section = Section(
        name="invalid_grant",
        title=(
            f"3. invalid_grant during a storm of {calls} calls (fast token endpoint): "
            "once / on every token request"
        ),
        columns=[
            "client",
            "token POSTs (once / every)",
            "calls lost (once / every)",
            "401s served (once / every)",
            "storm wall s (once / every)",
        ],
    )

    async def once_and_every(cls: type[Client]) -> tuple[dict[str, float], dict[str, float]]:
        once = await _measure(org, cls, calls, delay_s=0, refusals=1)
        # More refusals than any client can ask for: each call refreshes at most once.
        return once, await _measure(org, cls, calls, delay_s=0, refusals=2 * calls)

    await _pairs(section, ("once", "every"), once_and_every)
    section.notes.append(
        "once: only the storm's first token request is refused, so a client that asks again "
        "gets a token. every: the credential stays refused, as after a revocation; each "
        "extra token POST is then a failed login spent for nothing."
    )
    section.notes.append(
        "sfoauth_async treats invalid_grant (except 'login rate exceeded') as permanent: one "
        "token POST, every waiting call fails with that one error, later calls fail fast "
        "until `Refresher.reset()`. So it loses the whole storm in the 'once' case, by design."
    )
    return section
