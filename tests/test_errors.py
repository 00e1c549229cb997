"""The error tree and `oauth_error_from_response`, against spec §4.1 and §9."""

from __future__ import annotations

import pytest

import sfoauth_async
from sfoauth_async import (
    AuthorizationDeniedError,
    AuthorizationError,
    ConfigurationError,
    InactiveOrgError,
    InactiveUserError,
    InstanceUrlError,
    InvalidCallbackError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidStoredTokenError,
    InvalidTokenError,
    InvalidTokenResponseError,
    LoginRateExceededError,
    OAuthError,
    RedirectUriMismatchError,
    RefreshCooldownError,
    SFOAuthError,
    SignatureMismatchError,
    StaleTokenWriteError,
    StateMismatchError,
    StoreError,
    StoreLockTimeoutError,
    StoreUnavailableError,
    TokenEndpointConnectionError,
    TokenEndpointUnavailableError,
    TokenRequestError,
    UnsupportedGrantTypeError,
    WrongDomainError,
)
from sfoauth_async._errors import oauth_error_from_response

TOKEN_URL = "https://acme.my.salesforce.com/services/oauth2/token"

# Spec §4.1, one row per (error, error_description): the class it must map to, and words the
# message must contain so that it says what to check (case-insensitive).
TABLE_4_1 = [
    ("invalid_grant", "authentication failure", InvalidGrantError, ["username-password"]),
    (
        "invalid_grant",
        "expired access/refresh token",
        InvalidGrantError,
        ["authorization flow again"],
    ),
    (
        "invalid_grant",
        "expired authorization code",
        InvalidGrantError,
        ["single use", "authorization flow again"],
    ),
    (
        "invalid_grant",
        "invalid authorization code",
        InvalidGrantError,
        ["authorization flow again"],
    ),
    (
        "invalid_grant",
        "user hasn't approved this consumer",
        InvalidGrantError,
        ["pre-authorized", "polic"],
    ),
    ("invalid_grant", "invalid assertion", InvalidGrantError, ["certificate", "clock"]),
    ("invalid_grant", "audience is invalid", InvalidGrantError, ["aud", "test.salesforce.com"]),
    ("invalid_grant", "Audience validation failed", InvalidGrantError, ["aud"]),
    (
        "invalid_grant",
        "IP restricted or invalid login hours",
        InvalidGrantError,
        ["ip ranges", "login hours"],
    ),
    (
        "invalid_grant",
        "request not supported on this domain",
        WrongDomainError,
        ["my domain", "login.salesforce.com"],
    ),
    ("invalid_grant", "login rate exceeded", LoginRateExceededError, ["3,600", "cache"]),
    (
        "invalid_grant",
        "invalid username, password, security token; or user locked out.",
        InvalidGrantError,
        ["security token", "locked out"],
    ),
    ("invalid_client_id", "client identifier invalid", InvalidClientError, ["consumer key"]),
    ("invalid_client", "invalid client credentials", InvalidClientError, ["consumer secret"]),
    ("invalid_client_credentials", "client secret invalid", InvalidClientError, ["secret"]),
    ("unsupported_grant_type", "grant type not supported", UnsupportedGrantTypeError, ["enable"]),
    ("invalid_request", "grant type is missing", InvalidRequestError, ["malformed"]),
    ("inactive_user", "user is inactive", InactiveUserError, ["inactive"]),
    (
        "inactive_org",
        "organization is locked, closed, or suspended",
        InactiveOrgError,
        ["locked", "suspended"],
    ),
    ("rate_limit_exceeded", "number of logins exceeded", LoginRateExceededError, ["cache"]),
    ("invalid_scope", "requested scope is not allowed", InvalidScopeError, ["scope"]),
    ("redirect_uri_mismatch", "redirect_uri must match", RedirectUriMismatchError, ["callback"]),
]


@pytest.mark.parametrize(("error", "description", "cls", "hints"), TABLE_4_1)
def test_table_4_1_row_maps_to_its_class(
    error: str, description: str, cls: type[OAuthError], hints: list[str]
):
    """Each spec §4.1 row gives its class, keeps error/description/status and says what to do."""
    exc = oauth_error_from_response(error, description, status=400, url=TOKEN_URL)
    assert type(exc) is cls
    assert exc.error == error
    assert exc.description == description
    assert exc.status == 400
    assert exc.url == TOKEN_URL
    message = str(exc)
    assert error in message
    assert description in message
    assert "HTTP 400" in message
    for hint in hints:
        assert hint in message.lower()


@pytest.mark.parametrize(
    ("error", "description", "transient"),
    [
        # §9.5: never retry invalid_grant, invalid_client*, unsupported_grant_type, inactive_*.
        ("invalid_grant", "authentication failure", False),
        ("invalid_grant", "expired access/refresh token", False),
        ("invalid_grant", "user hasn't approved this consumer", False),
        ("invalid_grant", "request not supported on this domain", False),
        ("invalid_client_id", "client identifier invalid", False),
        ("invalid_client", "invalid client credentials", False),
        ("invalid_client_credentials", "client secret invalid", False),
        ("unsupported_grant_type", "grant type not supported", False),
        ("inactive_user", None, False),
        ("inactive_org", None, False),
        ("invalid_request", "grant type is missing", False),
        # §9.5 exception and §5: login throttling is a (long) back-off, not a dead credential.
        ("invalid_grant", "login rate exceeded", True),
        ("rate_limit_exceeded", "number of logins exceeded", True),
    ],
)
def test_transient_flag_follows_spec_section_9(
    error: str, description: str | None, transient: bool
):
    """Only login throttling among OAuth errors may be retried (spec §9.5)."""
    assert oauth_error_from_response(error, description).transient is transient


def test_login_rate_exceeded_is_not_an_invalid_grant():
    """A throttled login is not a dead credential, so code deleting dead grants skips it."""
    exc = oauth_error_from_response("invalid_grant", "login rate exceeded", status=400)
    assert isinstance(exc, LoginRateExceededError)
    assert not isinstance(exc, InvalidGrantError)
    # Spec §5/§9.5: back off minutes up to an hour, never retry within a refresh.
    assert 60 <= exc.retry_after_s <= 3600


def test_wrong_domain_is_an_invalid_grant():
    """'request not supported on this domain' is still an invalid_grant for generic handlers."""
    exc = oauth_error_from_response("invalid_grant", "request not supported on this domain")
    assert isinstance(exc, WrongDomainError)
    assert isinstance(exc, InvalidGrantError)


def test_description_matching_is_case_insensitive():
    """Salesforce's free-text descriptions are matched regardless of case."""
    exc = oauth_error_from_response("invalid_grant", "Login Rate Exceeded")
    assert isinstance(exc, LoginRateExceededError)
    exc = oauth_error_from_response("invalid_grant", "REQUEST NOT SUPPORTED ON THIS DOMAIN")
    assert isinstance(exc, WrongDomainError)


def test_description_does_not_change_a_non_invalid_grant_code():
    """The class follows the error code; a description only narrows invalid_grant (§4.1)."""
    exc = oauth_error_from_response("invalid_client", "login rate exceeded")
    assert type(exc) is InvalidClientError
    assert not exc.transient


def test_invalid_grant_without_description_is_invalid_grant():
    """invalid_grant with no description is a plain InvalidGrantError with generic advice."""
    exc = oauth_error_from_response("invalid_grant", None, status=400, url=TOKEN_URL)
    assert type(exc) is InvalidGrantError
    assert exc.description is None
    assert str(exc).startswith("Salesforce refused the request with invalid_grant (HTTP 400")


@pytest.mark.parametrize("error", ["authorization_pending", "something_new", "server_error"])
def test_unknown_code_is_a_plain_oauth_error(error: str):
    """A code without a class of its own is an OAuthError that keeps the code."""
    exc = oauth_error_from_response(error, "whatever it says")
    assert type(exc) is OAuthError
    assert exc.error == error
    assert not exc.transient
    assert "OAuth 2.0 Flow Errors" in str(exc)


@pytest.mark.parametrize("error", ["invalid_token", "unsupported_token_type"])
def test_revoke_and_introspect_codes_are_invalid_token_errors(error: str):
    """Spec §6: revoke answers invalid_token / unsupported_token_type."""
    assert type(oauth_error_from_response(error, None)) is InvalidTokenError


def test_message_without_status_or_url_has_no_location():
    """The '(HTTP ... from ...)' part appears only when both are known."""
    assert "HTTP" not in str(oauth_error_from_response("invalid_grant", "x", status=400))
    assert "HTTP" not in str(oauth_error_from_response("invalid_grant", "x", url=TOKEN_URL))


def _exported_error_classes() -> list[type[BaseException]]:
    names = sfoauth_async.__all__
    objects = [getattr(sfoauth_async, name) for name in names]
    return [o for o in objects if isinstance(o, type) and issubclass(o, BaseException)]


def test_every_exported_error_is_an_sfoauth_error():
    """One `except SFOAuthError` catches every error the library raises."""
    classes = _exported_error_classes()
    assert SFOAuthError in classes
    for cls in classes:
        assert issubclass(cls, SFOAuthError), cls


def test_configuration_error_is_a_value_error():
    """ConfigurationError is also a ValueError, as bad arguments conventionally are."""
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(ConfigurationError, SFOAuthError)


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (ConfigurationError, SFOAuthError),
        (AuthorizationError, SFOAuthError),
        (AuthorizationDeniedError, AuthorizationError),
        (StateMismatchError, AuthorizationError),
        (InvalidCallbackError, AuthorizationError),
        (TokenRequestError, SFOAuthError),
        (OAuthError, TokenRequestError),
        (InvalidGrantError, OAuthError),
        (WrongDomainError, InvalidGrantError),
        (LoginRateExceededError, OAuthError),
        (InvalidClientError, OAuthError),
        (UnsupportedGrantTypeError, OAuthError),
        (InvalidRequestError, OAuthError),
        (InvalidScopeError, OAuthError),
        (RedirectUriMismatchError, OAuthError),
        (InactiveUserError, OAuthError),
        (InactiveOrgError, OAuthError),
        (InvalidTokenError, OAuthError),
        (TokenEndpointUnavailableError, TokenRequestError),
        (TokenEndpointConnectionError, TokenRequestError),
        (InvalidTokenResponseError, TokenRequestError),
        (InstanceUrlError, InvalidTokenResponseError),
        (SignatureMismatchError, SFOAuthError),
        (RefreshCooldownError, SFOAuthError),
        (StoreError, SFOAuthError),
        (StoreUnavailableError, StoreError),
        (StaleTokenWriteError, StoreError),
        (StoreLockTimeoutError, StoreError),
        (InvalidStoredTokenError, StoreError),
    ],
)
def test_tree_shape(cls: type[SFOAuthError], parent: type[SFOAuthError]):
    """Each error sits under the parent the documented tree gives it."""
    assert cls.__bases__[0] is parent


@pytest.mark.parametrize(
    ("cls", "transient"),
    [
        # Spec §9.5: network errors and 5xx/502/503 are retried; §5: login throttling backs off.
        (TokenEndpointUnavailableError, True),
        (TokenEndpointConnectionError, True),
        (LoginRateExceededError, True),
        # Spec §9.5: permanent OAuth errors are never retried.
        (OAuthError, False),
        (InvalidGrantError, False),
        (WrongDomainError, False),
        (InvalidClientError, False),
        (UnsupportedGrantTypeError, False),
        (InvalidRequestError, False),
        (InvalidScopeError, False),
        (RedirectUriMismatchError, False),
        (InactiveUserError, False),
        (InactiveOrgError, False),
        (InvalidTokenError, False),
        # Needs a change of code or configuration: retrying cannot help.
        (SFOAuthError, False),
        (ConfigurationError, False),
        (AuthorizationError, False),
        (AuthorizationDeniedError, False),
        (StateMismatchError, False),
        (InvalidCallbackError, False),
        (TokenRequestError, False),
        (InvalidTokenResponseError, False),
        (InstanceUrlError, False),
        (InvalidStoredTokenError, False),
        (SignatureMismatchError, False),
        # A cooldown and store outages end by themselves.
        (RefreshCooldownError, True),
        (StoreError, False),
        (StoreUnavailableError, True),
        (StaleTokenWriteError, True),
        (StoreLockTimeoutError, True),
    ],
)
def test_transient_flag_per_class(cls: type[SFOAuthError], transient: bool):
    """The class-level transient flag says whether the same request may later succeed."""
    assert cls.transient is transient


def test_token_request_error_attributes():
    """TokenRequestError carries the HTTP status and endpoint URL."""
    exc = TokenEndpointUnavailableError("down", status=503, url=TOKEN_URL)
    assert (exc.status, exc.url, str(exc)) == (503, TOKEN_URL, "down")
    assert TokenEndpointConnectionError("no answer").status is None


def test_authorization_error_attributes():
    """AuthorizationError keeps the callback's error and description."""
    exc = AuthorizationDeniedError("denied", error="access_denied", description="end-user denied")
    assert (exc.error, exc.description) == ("access_denied", "end-user denied")
    assert AuthorizationError("no code").error is None


def test_refresh_cooldown_error_keeps_retry_time():
    """RefreshCooldownError says when a new refresh may start."""
    assert RefreshCooldownError("wait", retry_at_monotonic=12.5).retry_at_monotonic == 12.5


def test_invalid_stored_token_error_is_a_value_error():
    """InvalidStoredTokenError is a ValueError, as Token.from_dict has always documented."""
    assert issubclass(InvalidStoredTokenError, ValueError)


def test_instance_url_error_keeps_the_refused_value():
    """InstanceUrlError carries the refused instance_url verbatim, besides status and url."""
    exc = InstanceUrlError(
        "refused", instance_url="https://evil.example", status=200, url=TOKEN_URL
    )
    assert (exc.instance_url, exc.status, exc.url) == ("https://evil.example", 200, TOKEN_URL)


HOSTILE = "bad\r\n2026-01-01 INFO forged \x1b[31mred\x1b[0m \u202eevil\u2028" + "z" * 10_000


@pytest.mark.parametrize(("error", "description"), [("invalid_grant", HOSTILE), (HOSTILE, None)])
def test_salesforce_text_is_escaped_and_cut_in_messages(error: str, description: str | None):
    """CR/LF, ANSI escapes, bidi and line separators are escaped; 10,000 characters are cut."""
    exc = oauth_error_from_response(error, description, status=400, url=TOKEN_URL)
    message = str(exc)
    for raw in ("\r", "\n", "\x1b", "\u202e", "\u2028"):
        assert raw not in message
    assert "bad\\r\\n2026-01-01 INFO forged \\x1b[31mred" in message
    assert "more characters" in message
    assert len(message) < 1000
    assert (exc.error, exc.description) == (error, description)


def test_ordinary_salesforce_text_is_shown_unchanged():
    """Printable descriptions read exactly as Salesforce wrote them."""
    exc = oauth_error_from_response("invalid_grant", "expired access/refresh token")
    assert "invalid_grant: expired access/refresh token" in str(exc)
