"""sfoauth_async: Salesforce OAuth 2.0 tokens for asyncio, kept fresh for thousands of tasks.

Example:
    ```python
    import asyncio
    from sfoauth_async import AsyncSession, ClientCredentialsFlow


    async def main() -> None:
        flow = ClientCredentialsFlow(
            client_id="...", client_secret="...", login_url="https://acme.my.salesforce.com"
        )
        async with AsyncSession(flow) as sf:
            async with sf.get("/services/data/v67.0/limits/") as resp:
                print(await resp.json())


    asyncio.run(main())
    ```
"""

from __future__ import annotations

from ._api_errors import (
    APIError,
    APIUsageLimitError,
    ConcurrentRequestLimitError,
    DuplicateValueError,
    EntityIsDeletedError,
    InvalidFieldError,
    InvalidSessionIdError,
    MalformedQueryError,
    NotFoundError,
    RequestLimitExceededError,
    ServerUnavailableError,
    UnableToLockRowError,
)
from ._authorization_code import AuthorizationCodeFlow, AuthorizationRequest
from ._client_credentials import ClientCredentialsFlow
from ._collections import RecordError, RecordResult
from ._endpoint import HttpSettings
from ._env import flow_from_env
from ._errors import (
    AuthorizationDeniedError,
    AuthorizationError,
    ConfigurationError,
    CredentialForgottenError,
    InactiveOrgError,
    InactiveUserError,
    InstanceChangedError,
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
    PendingLoginError,
    RedirectUriMismatchError,
    RefreshCooldownError,
    RefreshOutcomeUnknownError,
    SessionClosedError,
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
from ._file_store import FileTokenStore
from ._flow import ClientAuth, Flow
from ._hosts import DEFAULT_INSTANCE_HOSTS
from ._introspection import Introspection
from ._jwt_bearer import JWTBearerFlow
from ._middleware import BearerMiddleware
from ._password import PasswordFlow
from ._query import Query
from ._redis_store import RedisTokenStore
from ._refresh_token import RefreshTokenFlow
from ._refresher import OnNewToken, Refresher, RefresherStats
from ._retry import RetryPolicy
from ._session import AsyncSession
from ._store import MemoryTokenStore, PendingRefresh, StoredToken, TokenLock, TokenStore
from ._token import DEFAULT_SESSION_TIMEOUT, Token
from ._usage import APIUsage
from ._user_sessions import UserSessions

__all__ = [
    "DEFAULT_INSTANCE_HOSTS",
    "DEFAULT_SESSION_TIMEOUT",
    "APIError",
    "APIUsage",
    "APIUsageLimitError",
    "AsyncSession",
    "AuthorizationCodeFlow",
    "AuthorizationDeniedError",
    "AuthorizationError",
    "AuthorizationRequest",
    "BearerMiddleware",
    "ClientAuth",
    "ClientCredentialsFlow",
    "ConcurrentRequestLimitError",
    "ConfigurationError",
    "CredentialForgottenError",
    "DuplicateValueError",
    "EntityIsDeletedError",
    "FileTokenStore",
    "Flow",
    "HttpSettings",
    "InactiveOrgError",
    "InactiveUserError",
    "InstanceChangedError",
    "InstanceUrlError",
    "Introspection",
    "InvalidCallbackError",
    "InvalidClientError",
    "InvalidFieldError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidSessionIdError",
    "InvalidStoredTokenError",
    "InvalidTokenError",
    "InvalidTokenResponseError",
    "JWTBearerFlow",
    "LoginRateExceededError",
    "MalformedQueryError",
    "MemoryTokenStore",
    "NotFoundError",
    "OAuthError",
    "OnNewToken",
    "PasswordFlow",
    "PendingLoginError",
    "PendingRefresh",
    "Query",
    "RecordError",
    "RecordResult",
    "RedirectUriMismatchError",
    "RedisTokenStore",
    "RefreshCooldownError",
    "RefreshOutcomeUnknownError",
    "RefreshTokenFlow",
    "Refresher",
    "RefresherStats",
    "RequestLimitExceededError",
    "RetryPolicy",
    "SFOAuthError",
    "ServerUnavailableError",
    "SessionClosedError",
    "SignatureMismatchError",
    "StaleTokenWriteError",
    "StateMismatchError",
    "StoreError",
    "StoreLockTimeoutError",
    "StoreUnavailableError",
    "StoredToken",
    "Token",
    "TokenEndpointConnectionError",
    "TokenEndpointUnavailableError",
    "TokenLock",
    "TokenRequestError",
    "TokenStore",
    "UnableToLockRowError",
    "UnsupportedGrantTypeError",
    "UserSessions",
    "WrongDomainError",
    "flow_from_env",
]


def __getattr__(name: str) -> str:
    """``sfoauth_async.__version__``: the installed distribution's version (as stamina does).

    Example:
        ```python
        import sfoauth_async

        print(sfoauth_async.__version__)  # e.g. 0.1.0
        ```
    """
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - only when asked

        return version("sfoauth-async")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Public names read as sfoauth_async.X in reprs, tracebacks and docs, not as private modules.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
