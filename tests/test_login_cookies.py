"""The sealed cookies of a web login: pending login (10 minutes) and user, one key each."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from sfoauth_async import ConfigurationError, PendingLoginError
from sfoauth_async import _login_cookies as cookies_module
from sfoauth_async._login_cookies import LoginCookies, PendingLogin, derive_key

KEY = "k" * 32
OTHER_KEY = "o" * 32
PENDING = PendingLogin(state="state-1", code_verifier="verifier-secret-1", next_path="/a?b=1")


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move the cookies' wall clock ``seconds`` ahead."""
    now = time.time()
    monkeypatch.setattr(cookies_module, "_now", lambda: now + seconds)


def test_pending_login_round_trips():
    """State, verifier and the page to return to come back as they were sealed."""
    codec = LoginCookies(KEY)
    assert codec.open_pending(codec.seal_pending(PENDING)) == PENDING


def test_pending_cookie_hides_state_and_verifier():
    """The cookie is encrypted: neither the verifier nor the state appears in it."""
    value = LoginCookies(KEY).seal_pending(PENDING)
    assert "verifier-secret-1" not in value
    assert "state-1" not in value
    assert "verifier-secret-1" not in repr(PENDING)


@pytest.mark.parametrize(("seconds", "reason"), [(599, None), (601, "expired")])
def test_pending_login_expires_after_10_minutes(
    monkeypatch: pytest.MonkeyPatch, seconds: float, reason: str | None
):
    """A pending login opens for 10 minutes, and is refused as expired after."""
    codec = LoginCookies(KEY)
    value = codec.seal_pending(PENDING)
    later(monkeypatch, seconds)
    if reason is None:
        assert codec.open_pending(value) == PENDING
        return
    with pytest.raises(PendingLoginError) as caught:
        codec.open_pending(value)
    assert caught.value.reason == reason


def test_pending_login_from_the_future_is_tampered(monkeypatch: pytest.MonkeyPatch):
    """A cookie stamped minutes ahead of this clock was not sealed by a worker of ours."""
    codec = LoginCookies(KEY)
    value = codec.seal_pending(PENDING)
    later(monkeypatch, -300)
    with pytest.raises(PendingLoginError) as caught:
        codec.open_pending(value)
    assert caught.value.reason == "tampered"


def _flip(value: str, index: int) -> str:
    replacement = "A" if value[index] != "A" else "B"
    return value[:index] + replacement + value[index + 1 :]


@pytest.mark.parametrize("index", [10, 40, -5])
def test_tampered_pending_cookie_is_refused(index: int):
    """Any changed character (header, ciphertext, signature) makes the cookie 'tampered'."""
    codec = LoginCookies(KEY)
    with pytest.raises(PendingLoginError) as caught:
        codec.open_pending(_flip(codec.seal_pending(PENDING), index))
    assert caught.value.reason == "tampered"


@pytest.mark.parametrize("value", [None, ""])
def test_missing_pending_cookie(value: str | None):
    """No cookie: 'missing', with a message saying to start again."""
    with pytest.raises(PendingLoginError, match="Start the login again") as caught:
        LoginCookies(KEY).open_pending(value)
    assert caught.value.reason == "missing"


@pytest.mark.parametrize("value", ["not-fernet", "é" * 10, "g" * 5000])
def test_garbage_pending_cookie_is_tampered(value: str):
    """Non-Fernet, non-ASCII and oversized values are refused as tampered, never crash."""
    with pytest.raises(PendingLoginError) as caught:
        LoginCookies(KEY).open_pending(value)
    assert caught.value.reason == "tampered"


def test_another_apps_key_cannot_open_it():
    """A cookie sealed with another secret key is refused."""
    value = LoginCookies(OTHER_KEY).seal_pending(PENDING)
    with pytest.raises(PendingLoginError) as caught:
        LoginCookies(KEY).open_pending(value)
    assert caught.value.reason == "tampered"


def test_a_user_cookie_is_no_pending_login_and_back():
    """Each purpose has its own key: neither cookie can be passed off as the other."""
    codec = LoginCookies(KEY)
    with pytest.raises(PendingLoginError):
        codec.open_pending(codec.seal_user("00D/005"))
    assert codec.open_user(codec.seal_pending(PENDING), max_age=timedelta(days=1)) is None
    assert derive_key(KEY, "user") != derive_key(KEY, "pending-login")


def test_user_cookie_round_trips_and_expires(monkeypatch: pytest.MonkeyPatch):
    """The user key comes back until the cookie's maximum age, then None."""
    codec = LoginCookies(KEY)
    value = codec.seal_user("00Dx/005y")
    assert codec.open_user(value, max_age=timedelta(hours=1)) == "00Dx/005y"
    later(monkeypatch, 3601)
    assert codec.open_user(value, max_age=timedelta(hours=1)) is None


def test_forged_user_cookie_is_nobody():
    """A changed user cookie names no user."""
    codec = LoginCookies(KEY)
    forged = _flip(codec.seal_user("00Dx/005y"), 30)
    assert codec.open_user(forged, max_age=timedelta(days=1)) is None
    assert codec.open_user(None, max_age=timedelta(days=1)) is None


def test_keys_rotate():
    """With [new, old], cookies of the old key still open and new ones use the new key."""
    old = LoginCookies(OTHER_KEY)
    rotated = LoginCookies([KEY, OTHER_KEY])
    assert rotated.open_pending(old.seal_pending(PENDING)) == PENDING
    fresh = rotated.seal_user("u")
    assert LoginCookies(KEY).open_user(fresh, max_age=timedelta(days=1)) == "u"
    assert old.open_user(fresh, max_age=timedelta(days=1)) is None


@pytest.mark.parametrize("secret", ["short-secret-key", b"x" * 31, [], ["k" * 32, 42]])
def test_weak_secret_keys_are_refused_without_showing_them(secret: object):
    """Too short, empty or non-text keys: ConfigurationError, the key never in the message."""
    with pytest.raises(ConfigurationError) as caught:
        LoginCookies(secret)  # type: ignore[arg-type]
    assert "short-secret-key" not in str(caught.value)
