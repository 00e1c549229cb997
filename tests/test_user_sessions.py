"""UserSessions against the fake org: connect, serve from the store, bounds, logout."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp
import pytest
from yarl import URL

from sfoauth_async import (
    AuthorizationCodeFlow,
    ConfigurationError,
    CredentialForgottenError,
    MemoryTokenStore,
    Token,
    UserSessions,
)
from sfoauth_async.testing import FakeSalesforceOrg, FakeUser

REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture(autouse=True)
def _approving(fake_org: FakeSalesforceOrg) -> None:
    """The org approves logins at once, without its pages."""
    fake_org.auto_approve = True


@pytest.fixture
def org_users(fake_org: FakeSalesforceOrg) -> list[FakeUser]:
    """The default user and three more."""
    return [fake_org.user, *(fake_org.add_user() for _ in range(3))]


def new_flow(org: FakeSalesforceOrg) -> AuthorizationCodeFlow:
    """A flow object of its own: as another worker process would have."""
    flow = org.authorization_code_flow(REDIRECT)
    assert isinstance(flow, AuthorizationCodeFlow)
    return flow


async def login(flow: AuthorizationCodeFlow, user: FakeUser) -> Token:
    """The web-server flow for ``user``, the org approving at once: a fresh token."""
    request = flow.authorization_url(login_hint=user.username)
    async with aiohttp.ClientSession() as http, http.get(request.url, allow_redirects=False) as r:
        code = flow.parse_callback(URL(r.headers["Location"]).query, state=request.state)
    return await flow.exchange(code, code_verifier=request.code_verifier)


async def api_call(users: UserSessions, user_key: str) -> int:
    """One REST call in the user's session; its status."""
    async with users.use(user_key) as sf, sf.get("limits/") as resp:
        return resp.status


async def test_connect_saves_the_token_under_the_users_key(fake_org, org_users):
    """connect() returns '<org>/<user>'; the store holds the token under flow.store_key."""
    flow = new_flow(fake_org)
    store = MemoryTokenStore()
    async with UserSessions(flow, store=store) as users:
        token = await login(flow, org_users[1])
        user_key = await users.connect(token)
        assert user_key == f"{fake_org.org_id}/{org_users[1].user_id}"
        assert users.store_key(user_key) == flow.store_key(token)
        stored = await store.load(flow.store_key(token))
        assert stored is not None
        assert stored.token is not None
        assert stored.token.refresh_token == token.refresh_token
        assert await api_call(users, user_key) == 200


async def test_another_process_serves_the_user_from_the_store(fake_org):
    """A second UserSessions with its own flow object (a worker) serves the user: no login."""
    store = MemoryTokenStore()
    first_flow = new_flow(fake_org)
    async with UserSessions(first_flow, store=store) as first:
        user_key = await first.connect(await login(first_flow, fake_org.user))
    requests_before = fake_org.stats.token_requests_total
    async with UserSessions(new_flow(fake_org), store=store) as second:
        assert await api_call(second, user_key) == 200
    assert fake_org.stats.token_requests_total == requests_before


async def test_least_recently_used_idle_sessions_close_beyond_max(fake_org, org_users):
    """max_sessions=2 and 4 users: the 2 least recently used are closed, tokens kept."""
    flow = new_flow(fake_org)
    store = MemoryTokenStore()
    async with UserSessions(flow, store=store, max_sessions=2) as users:
        keys = [await users.connect(await login(flow, user)) for user in org_users]
        sessions = {key: users.session(key) for key in keys[2:]}  # the two most recent
        assert len(users) == 2
        assert [key in users for key in keys] == [False, False, True, True]
        requests_before = fake_org.stats.token_requests_total
        assert await api_call(users, keys[0]) == 200  # reopened from the store
        assert fake_org.stats.token_requests_total == requests_before
        assert len(users) == 2
        assert keys[2] not in users  # now the least recently used
        assert sessions[keys[2]].closed
        assert not sessions[keys[3]].closed


async def test_a_session_in_use_is_never_closed(fake_org, org_users):
    """max_sessions=1: a held session outlives 3 newer users; it closes once released."""
    flow = new_flow(fake_org)
    async with UserSessions(flow, store=MemoryTokenStore(), max_sessions=1) as users:
        keys = [await users.connect(await login(flow, user)) for user in org_users]
        async with users.use(keys[0]) as held:
            for key in keys[1:]:
                assert await api_call(users, key) == 200
            assert users.in_use(keys[0]) == 1
            assert not held.closed
            assert keys[0] in users
            assert len(users) == 2  # the held one and the newest one
            async with held.get("limits/") as resp:
                assert resp.status == 200
        assert len(users) == 1
        assert keys[0] in users  # released last: now the most recently used


async def test_uses_are_counted(fake_org):
    """Ten concurrent holders of one user: in_use counts 10, then 0."""
    flow = new_flow(fake_org)
    async with UserSessions(flow, store=MemoryTokenStore()) as users:
        key = await users.connect(await login(flow, fake_org.user))
        inside = asyncio.Event()
        release = asyncio.Event()
        holding = 0

        async def hold() -> None:
            nonlocal holding
            async with users.use(key):
                holding += 1
                if holding == 10:
                    inside.set()
                await release.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(10)]
        await inside.wait()
        assert users.in_use(key) == 10
        release.set()
        await asyncio.gather(*tasks)
        assert users.in_use(key) == 0


async def test_idle_sessions_close_after_the_idle_timeout(fake_org, org_users):
    """close_idle() closes sessions idle for idle_timeout, never one in use."""
    flow = new_flow(fake_org)
    async with UserSessions(
        flow, store=MemoryTokenStore(), idle_timeout=timedelta(minutes=15)
    ) as users:
        now = [1000.0]
        users._clock = lambda: now[0]
        keys = [await users.connect(await login(flow, user)) for user in org_users[:3]]
        now[0] += 10 * 60
        users.session(keys[2])  # used 5 minutes before the sweep
        async with users.use(keys[1]):
            now[0] += 5 * 60
            assert await users.close_idle() == 1  # keys[0]; keys[1] is held
            assert [key in users for key in keys] == [False, True, True]
        now[0] += 15 * 60
        assert await users.close_idle() == 2
        assert len(users) == 0


async def test_logout_revokes_forgets_and_closes(fake_org):
    """logout(): refresh token revoked at the org, a tombstone in the store, session closed."""
    flow = new_flow(fake_org)
    store = MemoryTokenStore()
    async with UserSessions(flow, store=store) as users:
        token = await login(flow, fake_org.user)
        key = await users.connect(token)
        session = users.session(key)
        assert await users.logout(key)
        assert session.closed
        assert key not in users
        assert fake_org.stats.revocations == 1
        assert not (await flow.introspect(token.refresh_token or "")).active
        stored = await store.load(users.store_key(key))
        assert stored is not None
        assert stored.forgotten
        with pytest.raises(CredentialForgottenError):
            await users.session(key).get_token()
        # A new login puts the user back, over the tombstone.
        assert await users.connect(await login(flow, fake_org.user)) == key
        assert await api_call(users, key) == 200


async def test_logout_while_in_use_closes_on_release(fake_org):
    """A session held during the logout stays open for its holder and closes on release."""
    flow = new_flow(fake_org)
    async with UserSessions(flow, store=MemoryTokenStore()) as users:
        key = await users.connect(await login(flow, fake_org.user))
        async with users.use(key) as held:
            await users.logout(key)
            assert not held.closed
        await asyncio.wait(list(users._closing))
        assert held.closed


async def test_a_session_closed_by_its_caller_is_replaced(fake_org):
    """Closing the user's session by mistake: the next call opens a new one."""
    flow = new_flow(fake_org)
    async with UserSessions(flow, store=MemoryTokenStore()) as users:
        key = await users.connect(await login(flow, fake_org.user))
        async with users.session(key):
            pass  # AsyncSession.__aexit__ closes it
        assert users.session(key) is not None
        assert not users.session(key).closed
        assert await api_call(users, key) == 200


async def test_leaving_closes_everything(fake_org, org_users):
    """After 'async with users' no session is open and the sweeper is gone."""
    flow = new_flow(fake_org)
    users = UserSessions(flow, store=MemoryTokenStore())
    async with users:
        sessions = [users.session(await users.connect(await login(flow, u))) for u in org_users]
        sweeper = users._sweeper
    assert all(s.closed for s in sessions)
    assert sweeper is not None
    assert sweeper.done()
    assert len(users) == 0
    with pytest.raises(RuntimeError, match="not open"):
        users.session("00D/005")


async def test_connect_without_identity_needs_a_user_key(fake_org):
    """A token that names no user: ConfigurationError unless user_key= is given."""
    flow = new_flow(fake_org)
    async with UserSessions(flow, store=MemoryTokenStore()) as users:
        token = await login(flow, fake_org.user)
        anonymous = Token(
            access_token=token.access_token,
            instance_url=token.instance_url,
            refresh_token=token.refresh_token,
        )
        with pytest.raises(ConfigurationError, match="user_key"):
            await users.connect(anonymous)
        assert await users.connect(anonymous, user_key="team-a") == "team-a"
        assert await api_call(users, "team-a") == 200


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_sessions": 0}, "max_sessions"),
        ({"max_sessions": True}, "max_sessions"),
        ({"idle_timeout": 900}, "idle_timeout"),
        ({"idle_timeout": timedelta(0)}, "idle_timeout"),
        ({"store_key": "x"}, "store_key"),
        ({"token": None}, "token"),
        ({"store": None}, "store"),
    ],
)
def test_bad_options_are_refused(fake_org, options, message):
    """Out-of-range or reserved options: ConfigurationError naming them."""
    kwargs = {"store": MemoryTokenStore(), **options}
    with pytest.raises(ConfigurationError, match=message):
        UserSessions(new_flow(fake_org), **kwargs)


def test_only_the_authorization_code_flow(fake_org):
    """Another grant has no users: ConfigurationError."""
    with pytest.raises(ConfigurationError, match="AuthorizationCodeFlow"):
        UserSessions(fake_org.client_credentials_flow(), store=MemoryTokenStore())  # type: ignore[arg-type]


@pytest.mark.parametrize("user_key", ["", "a b", "x\n", "k" * 256, 42])
async def test_bad_user_keys_are_refused(fake_org, user_key):
    """Empty, spaced, control characters, too long, not text: ConfigurationError."""
    async with UserSessions(new_flow(fake_org), store=MemoryTokenStore()) as users:
        with pytest.raises(ConfigurationError, match="user key"):
            users.session(user_key)


async def test_repr_shows_no_token(fake_org):
    """The repr counts sessions; no access or refresh token appears."""
    flow = new_flow(fake_org)
    async with UserSessions(flow, store=MemoryTokenStore()) as users:
        token = await login(flow, fake_org.user)
        await users.connect(token)
        text = repr(users)
    assert "1 of 1000 sessions" in text
    assert token.access_token not in text
    assert str(token.refresh_token) not in text
