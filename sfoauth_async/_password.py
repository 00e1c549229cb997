"""`PasswordFlow`: the username-password grant, deprecated by Salesforce."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import ClassVar

from ._flow import ClientAuth, Flow, _required
from ._hosts import DEFAULT_INSTANCE_HOSTS
from ._token import Token
from ._urls import DEFAULT_LOGIN_URL

__all__ = ["PasswordFlow"]


class PasswordFlow(Flow):
    """The username-password grant. Deprecated: Salesforce retires it on 2027-02-20.

    It is blocked by default in orgs created since Summer '23 and reported unsupported by
    External Client Apps. Move to `ClientCredentialsFlow` or `JWTBearerFlow`. Constructing
    one emits a `DeprecationWarning`. Each token is a new login; tokens of this flow cannot
    be introspected.

    Args:
        client_id: The consumer key.
        client_secret: The consumer secret.
        username: The Salesforce username.
        password: The user's password.
        security_token: The user's security token, appended to the password (empty when the
            login comes from a trusted IP range).
        login_url: ``https://login.salesforce.com`` (default), ``https://test.salesforce.com``
            or a My Domain URL.
        client_auth: ``"body"`` (default) or ``"basic"``.
        instance_hosts: Host patterns a token's ``instance_url`` must match
            (`DEFAULT_INSTANCE_HOSTS`: Salesforce's domains and loopback); see
            `Flow.check_instance_url`.

    Example:
        ```python
        flow = PasswordFlow(
            client_id=key,
            client_secret=secret,
            username="etl@acme.com",
            password=pw,
            security_token=st,
        )
        ```
    """

    grant_type: ClassVar[str] = "password"
    _key_grant: ClassVar[str] = "password"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        username: str,
        password: str,
        security_token: str = "",
        login_url: str = DEFAULT_LOGIN_URL,
        client_auth: ClientAuth = "body",
        instance_hosts: Iterable[str] = DEFAULT_INSTANCE_HOSTS,
    ) -> None:
        warnings.warn(
            "The username-password flow is deprecated: Salesforce retires it on 2027-02-20 "
            "and blocks it by default in new orgs. Use ClientCredentialsFlow or JWTBearerFlow.",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            login_url=login_url,
            client_auth=client_auth,
            instance_hosts=instance_hosts,
        )
        self._username = _required("username", username)
        self._password = _required("password", password)
        if not isinstance(security_token, str):
            raise TypeError("security_token must be a string")
        self._security_token = security_token

    @property
    def username(self) -> str:
        """The Salesforce username.

        Example:
            ```python
            print(flow.username)
            ```
        """
        return self._username

    def _grant_form(self, previous: Token | None) -> dict[str, str]:  # noqa: ARG002
        return {
            "grant_type": self.grant_type,
            "username": self._username,
            "password": self._password + self._security_token,
        }

    def _subject(self, token: Token | None) -> str:  # noqa: ARG002
        return self._username
