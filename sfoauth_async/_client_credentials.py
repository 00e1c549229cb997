"""`ClientCredentialsFlow`: server-to-server logins as the app's Run As user."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from ._errors import ConfigurationError
from ._flow import ClientAuth, Flow
from ._hosts import DEFAULT_INSTANCE_HOSTS
from ._token import Token
from ._urls import is_generic_login_host, normalize_login_url

__all__ = ["ClientCredentialsFlow"]


class ClientCredentialsFlow(Flow):
    """The client credentials grant: the app logs in as its configured Run As user.

    Salesforce accepts it only on the org's My Domain login URL, never on
    ``login.salesforce.com`` or ``test.salesforce.com``, so `login_url` is required and is
    checked up front. The app needs "Enable Client Credentials Flow" and a Run As user. No
    refresh token is issued: each new token is a new login (3,600 per user per hour at most),
    so share tokens through `AsyncSession` and a `TokenStore`.

    Args:
        client_id: The consumer key.
        client_secret: The consumer secret.
        login_url: The My Domain URL, e.g. ``https://acme.my.salesforce.com`` or
            ``https://acme--uat.sandbox.my.salesforce.com``.
        client_auth: ``"body"`` (default) or ``"basic"``.
        instance_hosts: Host patterns a token's ``instance_url`` must match
            (`DEFAULT_INSTANCE_HOSTS`: Salesforce's domains and loopback); see
            `Flow.check_instance_url`.

    Raises:
        ConfigurationError: ``login_url`` is login/test.salesforce.com or not https.

    Example:
        ```python
        flow = ClientCredentialsFlow(
            client_id=os.environ["SF_CONSUMER_KEY"],
            client_secret=os.environ["SF_CONSUMER_SECRET"],
            login_url="https://acme.my.salesforce.com",
        )
        token = await flow.fetch_token()
        ```
    """

    grant_type: ClassVar[str] = "client_credentials"
    _key_grant: ClassVar[str] = "client_credentials"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        login_url: str,
        client_auth: ClientAuth = "body",
        instance_hosts: Iterable[str] = DEFAULT_INSTANCE_HOSTS,
    ) -> None:
        if is_generic_login_host(normalize_login_url(login_url)):
            raise ConfigurationError(
                f"The client credentials flow does not work on {login_url}: Salesforce "
                f"answers 'request not supported on this domain'. Use your org's My Domain "
                f"login URL, https://<MyDomain>.my.salesforce.com (sandbox: "
                f"https://<MyDomain>--<sandbox>.sandbox.my.salesforce.com); Setup > My Domain "
                f"shows it."
            )
        if client_secret is None:
            raise ConfigurationError("The client credentials flow needs client_secret.")
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            login_url=login_url,
            client_auth=client_auth,
            instance_hosts=instance_hosts,
        )

    def _grant_form(self, previous: Token | None) -> dict[str, str]:  # noqa: ARG002
        return {"grant_type": self.grant_type}

    def _subject(self, token: Token | None) -> str:  # noqa: ARG002
        return "run-as"
