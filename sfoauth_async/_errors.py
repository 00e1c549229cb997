"""Every error sfoauth_async raises, in one tree.

```text
SFOAuthError
├── ConfigurationError (ValueError)      a setting is wrong; fix the code or the config
├── AuthorizationError                   the browser step of the authorization-code flow failed
│   ├── AuthorizationDeniedError         the user clicked Deny (error=access_denied)
│   ├── StateMismatchError               the callback's state is not the one we sent
│   ├── InvalidCallbackError             a repeated parameter, another redirect URI or issuer
│   └── PendingLoginError                a web login's state is missing, expired, forged or reused
├── TokenRequestError                    a call to /services/oauth2/* did not give a token
│   ├── OAuthError                       Salesforce answered {"error": ..., ...}
│   │   ├── InvalidGrantError            invalid_grant: credentials, refresh token, code, JWT, user
│   │   │   └── WrongDomainError         client credentials sent to login/test, not My Domain
│   │   ├── LoginRateExceededError       more than 3,600 logins per user per hour (transient)
│   │   ├── InvalidClientError           invalid_client, invalid_client_id, ..._credentials
│   │   ├── UnsupportedGrantTypeError    the grant is disabled for the app, or wrong host/http
│   │   ├── InvalidRequestError          a malformed request (PKCE mismatch, missing field)
│   │   ├── InvalidScopeError            a scope the app may not request
│   │   ├── RedirectUriMismatchError     the callback URL differs from the app's
│   │   ├── InactiveUserError            the user is deactivated or frozen
│   │   ├── InactiveOrgError             the org is locked, closed or suspended
│   │   └── InvalidTokenError            revoke/introspect: the token is unknown or revoked
│   ├── TokenEndpointUnavailableError    5xx, 408, 425, 429, server_error, maintenance page
│   ├── TokenEndpointConnectionError     no answer: DNS, TCP, TLS, reset, timeout (transient)
│   ├── InvalidTokenResponseError        neither a usable answer nor an OAuth error body
│   │   └── InstanceUrlError             instance_url is not https, not allowed, or malformed
│   └── RefreshOutcomeUnknownError       a refresh token may be spent: sent, never answered
├── SignatureMismatchError               the response signature does not match id + issued_at
├── RefreshCooldownError                 a refresh just failed; not retried until the cooldown ends
├── SessionClosedError                   the last session closed while this call waited
├── InstanceChangedError                 a URL names the instance the org moved away from
├── CredentialForgottenError             the credential was forgotten (logged out) fleet-wide
├── StoreError                           a token store could not load, save or lock
│   ├── StoreUnavailableError            the store's backend is down, full or read-only
│   ├── StaleTokenWriteError             a compare-and-set lost to a newer generation
│   ├── StoreLockTimeoutError            another process held the refresh lock too long
│   └── InvalidStoredTokenError (ValueError)  a stored token record cannot be rebuilt
├── APIError                             a REST answer with an error status (``_api_errors``)
└── APIUsageLimitError                   api_usage_limit reached; nothing sent (``_api_errors``)
```

Every error has ``transient``: ``True`` when the same request may succeed if it is sent
again later (network trouble, Salesforce maintenance, login throttling), ``False`` when only
a change of code, configuration or credentials can fix it. The refresher retries transient
errors (``LoginRateExceededError`` only after a long cooldown) and never retries permanent
ones. Messages say what went wrong and what to check; they never contain a token, a secret,
a password or a private key. Text chosen by the other side (Salesforce's ``error_description``,
a callback's ``error``) appears in messages only through `printable`: control characters
escaped, cut at 200 characters; the attributes keep it verbatim.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from ._untrusted import printable

__all__ = [
    "AuthorizationDeniedError",
    "AuthorizationError",
    "ConfigurationError",
    "CredentialForgottenError",
    "InactiveOrgError",
    "InactiveUserError",
    "InstanceChangedError",
    "InstanceUrlError",
    "InvalidCallbackError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidStoredTokenError",
    "InvalidTokenError",
    "InvalidTokenResponseError",
    "LoginRateExceededError",
    "OAuthError",
    "PendingLoginError",
    "RedirectUriMismatchError",
    "RefreshCooldownError",
    "RefreshOutcomeUnknownError",
    "SFOAuthError",
    "SessionClosedError",
    "SignatureMismatchError",
    "StaleTokenWriteError",
    "StateMismatchError",
    "StoreError",
    "StoreLockTimeoutError",
    "StoreUnavailableError",
    "TokenEndpointConnectionError",
    "TokenEndpointUnavailableError",
    "TokenRequestError",
    "UnsupportedGrantTypeError",
    "WrongDomainError",
    "oauth_error_from_response",
]


class SFOAuthError(Exception):
    """Base of every error sfoauth_async raises.

    Catch this to handle any failure of the library in one place.

    Example:
        ```python
        try:
            token = await flow.fetch_token()
        except SFOAuthError as exc:
            log.error("Salesforce login failed: %s (retry later: %s)", exc, exc.transient)
        ```
    """

    transient: ClassVar[bool] = False
    """Whether sending the same request again later may succeed."""


class ConfigurationError(SFOAuthError, ValueError):
    """A setting is wrong: fix the code or the configuration, retrying cannot help.

    Example:
        ```python
        ClientCredentialsFlow(
            client_id="...", client_secret="...", login_url="https://login.salesforce.com"
        )
        # ConfigurationError: the client credentials flow needs your My Domain URL ...
        ```
    """


class AuthorizationError(SFOAuthError):
    """The browser step of the authorization-code flow failed.

    Attributes:
        error: The ``error`` query parameter of the callback, if any.
        description: The ``error_description`` query parameter, if any.

    Example:
        ```python
        try:
            code = flow.parse_callback(query_string, state=request.state)
        except AuthorizationError as exc:
            return web.Response(status=400, text=str(exc))
        ```
    """

    def __init__(
        self, message: str, *, error: str | None = None, description: str | None = None
    ) -> None:
        super().__init__(message)
        self.error = error
        self.description = description


class AuthorizationDeniedError(AuthorizationError):
    """The user refused access on Salesforce's approval page (``error=access_denied``).

    Example:
        ```python
        except AuthorizationDeniedError:
            return web.Response(text="You declined; nothing was connected.")
        ```
    """


class StateMismatchError(AuthorizationError):
    """The callback's ``state`` is missing or differs from the one sent: a possible CSRF.

    Example:
        ```python
        except StateMismatchError:
            return web.Response(status=400, text="Start the login again.")
        ```
    """


class InvalidCallbackError(AuthorizationError):
    """The callback cannot be trusted: a repeated parameter, another URL or another issuer.

    A parameter (``code``, ``state``, ``error``, ``error_description``, ``iss``) appears
    twice, a full callback URL differs from ``redirect_uri`` in scheme, host, port or path, or
    its ``iss`` names another authorization server (RFC 9207). Each is a sign of a forged or
    mixed-up callback; no code is returned.

    Example:
        ```python
        except InvalidCallbackError:
            return web.Response(status=400, text="Start the login again.")
        ```
    """


class PendingLoginError(AuthorizationError):
    """A web login's pending state cannot be used: missing, expired, forged or used already.

    Between the redirect to Salesforce and the callback, the web integrations
    (``sfoauth_async.starlette``, ``sfoauth_async.aiohttp_web``) keep the login's ``state``
    and PKCE verifier in an encrypted, signed cookie that lives 10 minutes; a login is
    accepted once. ``reason`` says which check failed.

    Attributes:
        reason: ``"missing"`` (no pending login in this browser: another browser, cookies
            off, or finished already), ``"expired"`` (older than 10 minutes),
            ``"tampered"`` (the cookie is not one this app sealed with its secret key) or
            ``"replayed"`` (this login was accepted before).

    Example:
        ```python
        except PendingLoginError as exc:
            return web.Response(status=400, text=f"Start the login again ({exc.reason}).")
        ```
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class TokenRequestError(SFOAuthError):
    """A call to a ``/services/oauth2/*`` endpoint did not give what was asked.

    Attributes:
        status: The HTTP status, or ``None`` when no response arrived.
        url: The endpoint URL (never with a secret: secrets go in the body).

    Example:
        ```python
        except TokenRequestError as exc:
            print(exc.status, exc.url, exc.transient)
        ```
    """

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class OAuthError(TokenRequestError):
    """Salesforce answered with an OAuth error body: ``{"error": ..., "error_description": ...}``.

    The subclass says what the error means; ``error`` keeps Salesforce's code and
    ``description`` its free text, which is a hint and not a contract.

    Attributes:
        error: Salesforce's code, e.g. ``"invalid_grant"``.
        description: Salesforce's ``error_description``, e.g. ``"authentication failure"``.

    Example:
        ```python
        except OAuthError as exc:
            if exc.error == "invalid_grant":
                ask_the_user_to_log_in_again()
        ```
    """

    def __init__(
        self,
        message: str,
        *,
        error: str,
        description: str | None = None,
        status: int | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, status=status, url=url)
        self.error = error
        self.description = description


class InvalidGrantError(OAuthError):
    """``invalid_grant``: the credentials, refresh token, code or JWT assertion were refused.

    Permanent: the same grant will be refused again. The message says what to check for the
    description Salesforce gave.

    Example:
        ```python
        except InvalidGrantError:
            await store.delete(key)  # the refresh token is dead: ask for a new login
        ```
    """


class LoginRateExceededError(OAuthError):
    """``login rate exceeded``: the user logged in more than 3,600 times in an hour.

    Salesforce sends it as ``invalid_grant`` (or the legacy ``rate_limit_exceeded``), but it
    is not a dead credential, so it is not an `InvalidGrantError`.

    Transient, but only after a long wait: the refresher does not retry it within a refresh
    and waits ``retry_after_s`` before the next attempt.

    Example:
        ```python
        except LoginRateExceededError as exc:
            await asyncio.sleep(exc.retry_after_s)
        ```
    """

    transient = True
    retry_after_s: ClassVar[float] = 300.0
    """How long to wait before logging in again; the limit is a rolling hour."""


class WrongDomainError(InvalidGrantError):
    """``request not supported on this domain``: the client credentials flow needs My Domain.

    Example:
        ```python
        except WrongDomainError:
            flow = ClientCredentialsFlow(..., login_url="https://acme.my.salesforce.com")
        ```
    """


class InvalidClientError(OAuthError):
    """``invalid_client`` / ``invalid_client_id`` / ``invalid_client_credentials``.

    The consumer key or secret is wrong, or the app is too new to have propagated.

    Example:
        ```python
        except InvalidClientError:
            print("Check the consumer key and secret of the connected app.")
        ```
    """


class UnsupportedGrantTypeError(OAuthError):
    """``unsupported_grant_type``: the flow is disabled for this app, or the host is wrong.

    Example:
        ```python
        except UnsupportedGrantTypeError:
            print("Enable the flow in the app's OAuth settings.")
        ```
    """


class InvalidRequestError(OAuthError):
    """``invalid_request``: the request was malformed (for example a PKCE verifier mismatch).

    Example:
        ```python
        except InvalidRequestError as exc:
            print(exc.description)
        ```
    """


class InvalidScopeError(OAuthError):
    """``invalid_scope``: a requested scope is unknown or not allowed for the app.

    Example:
        ```python
        except InvalidScopeError:
            print("Add the scope to the connected app's Selected OAuth Scopes.")
        ```
    """


class RedirectUriMismatchError(OAuthError):
    """``redirect_uri_mismatch``: the redirect URI is not the app's callback URL.

    Example:
        ```python
        except RedirectUriMismatchError:
            print("Use exactly the Callback URL configured on the app.")
        ```
    """


class InactiveUserError(OAuthError):
    """``inactive_user``: the user is deactivated, frozen or locked.

    Example:
        ```python
        except InactiveUserError:
            print("Reactivate the integration user in Setup > Users.")
        ```
    """


class InactiveOrgError(OAuthError):
    """``inactive_org``: the org is locked, closed or suspended.

    Example:
        ```python
        except InactiveOrgError:
            print("The org cannot be used; contact its administrator.")
        ```
    """


class InvalidTokenError(OAuthError):
    """``invalid_token`` / ``unsupported_token_type`` from revoke or introspect.

    Example:
        ```python
        except InvalidTokenError:
            pass  # revoking an already revoked token
        ```
    """


class TokenEndpointUnavailableError(TokenRequestError):
    """Salesforce is unavailable: 5xx, 408, 425, 429, ``server_error`` or a maintenance page.

    Transient: the refresher retries it with jittered exponential backoff, or after the
    ``Retry-After`` the answer gave, within its time budget. Nothing was done: a refresh
    token sent with the request is still valid.

    Attributes:
        retry_after_s: What the answer's ``Retry-After`` asked for, in seconds, if it did.

    Example:
        ```python
        except TokenEndpointUnavailableError as exc:
            print("Salesforce is unavailable:", exc.status, exc.retry_after_s)
        ```
    """

    transient = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status=status, url=url)
        self.retry_after_s = retry_after_s


class TokenEndpointConnectionError(TokenRequestError):
    """No answer came back: DNS, TCP, TLS, a dropped connection or a timeout.

    Transient. ``request_sent`` tells whether the request may have reached Salesforce: a
    failure to resolve, connect or shake hands never sent anything, so the refresher may
    send it again; a timeout or a dropped connection after the request left may not have,
    and the refresher never resends a refresh token that Salesforce may have rotated (see
    `RefreshOutcomeUnknownError`).

    Attributes:
        request_sent: ``False`` when the request certainly never left this machine.

    Example:
        ```python
        except TokenEndpointConnectionError as exc:
            print("Cannot reach Salesforce:", exc.__cause__, "sent:", exc.request_sent)
        ```
    """

    transient = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        request_sent: bool = True,
    ) -> None:
        super().__init__(message, status=status, url=url)
        self.request_sent = request_sent


class InvalidTokenResponseError(TokenRequestError):
    """An answer that is neither usable nor an OAuth error.

    Bad JSON, missing fields, a redirect, or a 4xx without an OAuth error body.

    Example:
        ```python
        except InvalidTokenResponseError as exc:
            print("Unexpected answer from", exc.url)
        ```
    """


class InstanceUrlError(InvalidTokenResponseError):
    """A token's ``instance_url`` is unusable, or its host is not one the flow allows.

    Unusable: not https (plain http is allowed only on loopback), or with user info, a query,
    a fragment or control characters. Every API call and its bearer token go to
    ``instance_url``, so a token whose instance is not a host the flow allows
    (``Flow(instance_hosts=...)``, Salesforce's domains by default) is refused, not used.

    Attributes:
        instance_url: The refused value, verbatim (it may be hostile: print it with care).

    Example:
        ```python
        except InstanceUrlError as exc:
            log.error("refusing a token for %r", exc.instance_url)
        ```
    """

    def __init__(
        self,
        message: str,
        *,
        instance_url: str,
        status: int | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, status=status, url=url)
        self.instance_url = instance_url


class RefreshOutcomeUnknownError(TokenRequestError):
    """A refresh-token request was sent and never answered: the refresh token may be spent.

    With refresh-token rotation Salesforce invalidates a refresh token as soon as it reads
    it, and revokes the whole grant if the old one is ever used again. When a refresh-token
    request leaves and no answer comes back (a timeout, a dropped connection, a process
    that died before saving the answer), nobody can tell whether Salesforce rotated it, so
    it is never sent again: the still-valid access token is served until it expires, and
    then calls fail with this error, sending nothing.

    It ends when a newer token reaches the refresher (another process stores one, or
    `Refresher.put_token`), or when you establish that the refresh token is still valid
    and call `Refresher.trust_refresh_token`: ``await flow.introspect(refresh_token,
    token_type_hint="refresh_token")`` reports ``active=True`` when it was not spent, or
    rotation is off for the app. Otherwise authorize again. Grants known not to rotate
    (the last refresh returned no new refresh token) never end here: their requests are
    retried as usual.

    Attributes:
        since: When the unanswered request was sent (UTC), if known.
        owner: Which process sent it (``host:pid:...``), when another process did.

    Example:
        ```python
        except RefreshOutcomeUnknownError:
            info = await flow.introspect(token.refresh_token, token_type_hint="refresh_token")
            if info.active:
                await sf.refresher.trust_refresh_token()
        ```
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        since: datetime | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.since = since
        self.owner = owner


class SignatureMismatchError(SFOAuthError):
    """The token response's ``signature`` is not HMAC-SHA256(client secret, id + issued_at).

    The identity URL may have been tampered with, or the client secret is not the one that
    issued the token.

    Example:
        ```python
        try:
            flow.verify_signature(token)
        except SignatureMismatchError:
            raise SystemExit("Refusing a token whose identity cannot be verified")
        ```
    """


class RefreshCooldownError(SFOAuthError):
    """A refresh failed moments ago; no new one starts until ``retry_at``.

    Raised only when there is no usable token to fall back on. ``__cause__`` is the error of
    the failed refresh. Transient: calls succeed again once the cooldown is over and
    Salesforce answers.

    Attributes:
        retry_at_monotonic: ``time.monotonic()`` value after which a new refresh may start.

    Example:
        ```python
        except RefreshCooldownError as exc:
            log.warning("Salesforce login failing: %s", exc.__cause__)
        ```
    """

    transient = True

    def __init__(self, message: str, *, retry_at_monotonic: float) -> None:
        super().__init__(message)
        self.retry_at_monotonic = retry_at_monotonic


class SessionClosedError(SFOAuthError):
    """The last session of a refresher closed while this call waited for a token.

    Raised, instead of a bare `asyncio.CancelledError`, in the tasks that were waiting and
    were not cancelled themselves, so that a `asyncio.TaskGroup` does not lose their work
    silently. A refresh that had already been sent is not cancelled by the close: it is
    finished and kept for the next session.

    Example:
        ```python
        except SessionClosedError:
            log.info("shutting down: request abandoned")
        ```
    """


class InstanceChangedError(SFOAuthError):
    """A request names the instance the org has moved away from: it is not signed or sent.

    A refresh can answer a new ``instance_url`` (an org migration, a My Domain change).
    `AsyncSession` resolves relative paths (``"limits/"``, ``"/services/..."``) against the
    current token, and sends them again to the new instance by itself when they were on
    their way to the old one. An absolute URL of the old instance would get a 401 there, or
    go out without a bearer: it is refused with this error instead. Build URLs from
    ``sf.token.instance_url``, or use relative paths.

    Attributes:
        old_instance_url: The instance the request named.
        new_instance_url: The org's instance now.

    Example:
        ```python
        except InstanceChangedError as exc:
            url = exc.new_instance_url + "/services/data/v67.0/limits/"
        ```
    """

    def __init__(self, message: str, *, old_instance_url: str, new_instance_url: str) -> None:
        super().__init__(message)
        self.old_instance_url = old_instance_url
        self.new_instance_url = new_instance_url


class CredentialForgottenError(SFOAuthError):
    """The credential was forgotten in the token store (a logout), by this or another process.

    `Refresher.forget` (and `UserSessions.logout`) leave a marker in the store that no older
    token can overwrite; every process that sees it drops its copy of the token. Refresh
    tokens are never used after that: authorize again and give the new token with
    `Refresher.put_token`.

    Example:
        ```python
        except CredentialForgottenError:
            return redirect("/login/salesforce")
        ```
    """


class StoreError(SFOAuthError):
    """A token store could not load, save or lock a token.

    Example:
        ```python
        except StoreError as exc:
            log.error("token store failed: %s", exc)
        ```
    """


class StoreUnavailableError(StoreError):
    """The store's backend cannot be used now: unreachable, out of memory, read-only, busy.

    Covers Redis down or timing out, and Redis answers that say "not now" (``OOM``,
    ``READONLY`` after a failover, ``BUSY``, ``LOADING``, ``TRYAGAIN``, ``CLUSTERDOWN``,
    ``MASTERDOWN``, ``NOREPLICAS``), and file system errors. Transient: the refresher
    tries again after its cooldown. For a refresh-token grant it never refreshes without
    the fleet-wide lock, since two unlocked refreshes of a rotating refresh token revoke it.

    Example:
        ```python
        except StoreUnavailableError:
            print("Redis is down; refresh-token logins wait for it.")
        ```
    """

    transient = True


class StaleTokenWriteError(StoreError):
    """A compare-and-set write lost: the store already holds a newer generation.

    Example:
        ```python
        except StaleTokenWriteError:
            stored = await store.load(key)  # adopt the newer token instead
        ```
    """

    transient = True


class StoreLockTimeoutError(StoreError):
    """Another process held the refresh lock longer than the wait allows.

    Example:
        ```python
        except StoreLockTimeoutError:
            print("Another worker is stuck refreshing; its lease will expire.")
        ```
    """

    transient = True


class InvalidStoredTokenError(StoreError, ValueError):
    """A stored token record is not what `Token.to_dict` writes, so no `Token` comes of it.

    Also a ``ValueError``, as `Token.from_dict` documents.

    Example:
        ```python
        try:
            token = Token.from_dict(json.loads(text))
        except InvalidStoredTokenError:
            token = await flow.fetch_token()
        ```
    """


_ERROR_CLASSES: dict[str, type[OAuthError]] = {
    "invalid_grant": InvalidGrantError,
    "invalid_client": InvalidClientError,
    "invalid_client_id": InvalidClientError,
    "invalid_client_credentials": InvalidClientError,
    "unauthorized_client": InvalidClientError,
    "unsupported_grant_type": UnsupportedGrantTypeError,
    "invalid_request": InvalidRequestError,
    "invalid_scope": InvalidScopeError,
    "redirect_uri_mismatch": RedirectUriMismatchError,
    "inactive_user": InactiveUserError,
    "inactive_org": InactiveOrgError,
    "rate_limit_exceeded": LoginRateExceededError,
    "invalid_token": InvalidTokenError,
    "unsupported_token_type": InvalidTokenError,
}

# Salesforce's descriptions are free text: we match on lower-cased fragments and use them
# only to pick a more precise class and a more helpful message, never to decide retrying alone.
_DESCRIPTION_HINTS: tuple[tuple[str, type[OAuthError] | None, str], ...] = (
    (
        "login rate exceeded",
        LoginRateExceededError,
        "The user has logged in more than 3,600 times in the last hour. Cache and share "
        "tokens (one AsyncSession or TokenStore per credential) instead of logging in per "
        "request; Salesforce lifts the block as the hour rolls over.",
    ),
    (
        "request not supported on this domain",
        WrongDomainError,
        "The client credentials flow only works on your org's My Domain login URL "
        "(https://<MyDomain>.my.salesforce.com, or "
        "https://<MyDomain>--<sandbox>.sandbox.my.salesforce.com), not on "
        "login.salesforce.com, test.salesforce.com, *.lightning.force.com or "
        "*.salesforce-setup.com.",
    ),
    (
        "hasn't approved this consumer",
        None,
        "The user has not been authorized for this connected app. In Setup, set the app's "
        "'Permitted Users' policy to 'Admin approved users are pre-authorized' and add the "
        "user's profile or a permission set, or have the user approve the app once "
        "interactively.",
    ),
    (
        "expired access/refresh token",
        None,
        "The refresh token is revoked, expired or was rotated out (reusing a rotated refresh "
        "token revokes it). Run the authorization flow again to get a new refresh token, and "
        "share one refresh token per user and app through a TokenStore.",
    ),
    (
        "authorization code",
        None,
        "Authorization codes are single use and expire within minutes: start the "
        "authorization flow again and exchange the new code once.",
    ),
    (
        "audience",
        None,
        "The JWT 'aud' claim is wrong: use https://login.salesforce.com for production, "
        "https://test.salesforce.com for sandboxes, or the Experience Cloud site URL "
        "(JWTBearerFlow's audience= argument).",
    ),
    (
        "invalid assertion",
        None,
        "Salesforce rejected the JWT assertion: check that the certificate uploaded to the "
        "connected app ('Use digital signatures') matches the private key, that the consumer "
        "key is the 'iss', that the username is the 'sub', and that this machine's clock is "
        "right.",
    ),
    (
        "authentication failure",
        None,
        "The username, password or security token is wrong, the user is locked out, or the "
        "org blocks the username-password flow (blocked by default in orgs created since "
        "Summer '23). Prefer the client credentials or JWT bearer flow.",
    ),
    (
        "invalid username, password, security token",
        None,
        "Check the username, the password and the security token (the password is sent "
        "immediately followed by the security token), and whether the user is locked out.",
    ),
    (
        "ip restricted",
        None,
        "The login is outside the user's allowed IP ranges or login hours: check the "
        "profile's Login IP Ranges and Login Hours and the app's IP Relaxation policy.",
    ),
    (
        "no client credentials user enabled",
        None,
        "Enable the client credentials flow on the app and choose a 'Run As' user in its "
        "policies (Setup > Connected Apps / External Client Apps > Manage > Edit Policies).",
    ),
)

_CODE_HINTS: dict[type[OAuthError], str] = {
    InvalidGrantError: "Salesforce refused the grant: check the credentials and the app's "
    "policies, then log in again.",
    InvalidClientError: "Check the consumer key (client_id) and consumer secret of the "
    "connected app; a newly created app can take up to 10 minutes to work.",
    UnsupportedGrantTypeError: "Enable this flow in the connected app's OAuth settings, and "
    "make sure login_url is an https:// Salesforce login or My Domain URL.",
    InvalidRequestError: "The request was malformed; if PKCE is involved, exchange the code "
    "with the code_verifier of the same authorization request.",
    InvalidScopeError: "Request only scopes that are in the connected app's Selected OAuth Scopes.",
    RedirectUriMismatchError: "The redirect_uri must equal the connected app's Callback URL, "
    "character for character.",
    InactiveUserError: "The user is inactive, frozen or locked: reactivate it in Setup > "
    "Users, or use another integration user.",
    InactiveOrgError: "The org is locked, closed or suspended: contact its administrator.",
    InvalidTokenError: "The token is unknown, already revoked or of an unsupported type.",
    LoginRateExceededError: "Too many logins for this user: cache and share tokens.",
}


def oauth_error_from_response(
    error: str,
    description: str | None,
    *,
    status: int | None = None,
    url: str | None = None,
) -> OAuthError:
    """Build the typed error for an OAuth error body.

    Args:
        error: The ``error`` field, e.g. ``"invalid_grant"``.
        description: The ``error_description`` field, if any.
        status: The HTTP status of the response.
        url: The endpoint that answered.

    Returns:
        The most specific `OAuthError` subclass, with a message that says what to check.
        ``error`` and ``description`` are kept verbatim on it; the message shows them
        through `printable` (control characters escaped, cut at 200 characters).

    Example:
        ```python
        exc = oauth_error_from_response("invalid_grant", "login rate exceeded", status=400)
        assert isinstance(exc, LoginRateExceededError)
        ```
    """
    cls = _ERROR_CLASSES.get(error, OAuthError)
    advice = _CODE_HINTS.get(cls, "See Salesforce's 'OAuth 2.0 Flow Errors' help page.")
    lowered = (description or "").lower()
    for fragment, hinted_cls, hint in _DESCRIPTION_HINTS:
        if fragment in lowered:
            # A description only narrows an invalid_grant; other codes keep their class.
            if hinted_cls is not None and cls is InvalidGrantError:
                cls = hinted_cls
            advice = hint
            break
    said = printable(error)
    if description:
        said += f": {printable(description)}"
    where = f" (HTTP {status} from {url})" if status is not None and url else ""
    return cls(
        f"Salesforce refused the request with {said}{where}. {advice}",
        error=error,
        description=description,
        status=status,
        url=url,
    )
