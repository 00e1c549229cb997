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

from ._authorization_code import AuthorizationCodeFlow, AuthorizationRequest
from ._client_credentials import ClientCredentialsFlow
from ._env import flow_from_env
from ._errors import (
    AuthorizationDeniedError,
    AuthorizationError,
    ConfigurationError,
    InactiveOrgError,
    InactiveUserError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
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
from ._file_store import FileTokenStore
from ._flow import ClientAuth, Flow
from ._introspection import Introspection
from ._jwt_bearer import JWTBearerFlow
from ._middleware import BearerMiddleware
from ._password import PasswordFlow
from ._redis_store import RedisTokenStore
from ._refresh_token import RefreshTokenFlow
from ._refresher import OnNewToken, Refresher, RefresherStats
from ._retry import RetryPolicy
from ._session import AsyncSession
from ._store import MemoryTokenStore, StoredToken, TokenLock, TokenStore
from ._token import DEFAULT_SESSION_TIMEOUT, Token

__all__ = [
    "DEFAULT_SESSION_TIMEOUT",
    "AsyncSession",
    "AuthorizationCodeFlow",
    "AuthorizationDeniedError",
    "AuthorizationError",
    "AuthorizationRequest",
    "BearerMiddleware",
    "ClientAuth",
    "ClientCredentialsFlow",
    "ConfigurationError",
    "FileTokenStore",
    "Flow",
    "InactiveOrgError",
    "InactiveUserError",
    "Introspection",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTokenError",
    "InvalidTokenResponseError",
    "JWTBearerFlow",
    "LoginRateExceededError",
    "MemoryTokenStore",
    "OAuthError",
    "OnNewToken",
    "PasswordFlow",
    "RedirectUriMismatchError",
    "RedisTokenStore",
    "RefreshCooldownError",
    "RefreshTokenFlow",
    "Refresher",
    "RefresherStats",
    "RetryPolicy",
    "SFOAuthError",
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
    "UnsupportedGrantTypeError",
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
