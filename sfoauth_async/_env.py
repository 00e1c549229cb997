"""`flow_from_env`: a flow from ``SF_*`` variables, for twelve-factor apps, CI and the CLI.

One table says which variables each grant needs, so that the choice of a grant, the message
for missing variables and the command line's options (``SF_CLIENT_ID`` is ``--client-id``)
all come from the same place.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from ._authorization_code import AuthorizationCodeFlow
from ._client_credentials import ClientCredentialsFlow
from ._errors import ConfigurationError
from ._flow import Flow
from ._jwt_bearer import JWTBearerFlow
from ._password import PasswordFlow
from ._refresh_token import RefreshTokenFlow
from ._urls import DEFAULT_LOGIN_URL, is_generic_login_host

__all__ = ["AUTOMATIC_ORDER", "ENV_VARIABLES", "SECRET_VARIABLES", "FlowName", "flow_from_env"]

FlowName = Literal[
    "refresh_token", "jwt_bearer", "client_credentials", "password", "authorization_code"
]
"""The grants `flow_from_env` can build, named as in `Flow.store_key`."""

ENV_VARIABLES = (
    "SF_CLIENT_ID",
    "SF_CLIENT_SECRET",
    "SF_USERNAME",
    "SF_PASSWORD",
    "SF_SECURITY_TOKEN",
    "SF_PRIVATE_KEY",
    "SF_PRIVATE_KEY_FILE",
    "SF_LOGIN_URL",
    "SF_REFRESH_TOKEN",
    "SF_AUDIENCE",
    "SF_REDIRECT_URI",
    "SF_SCOPE",
)
"""Every variable `flow_from_env` reads."""

SECRET_VARIABLES = frozenset(
    {"SF_CLIENT_SECRET", "SF_PASSWORD", "SF_SECURITY_TOKEN", "SF_PRIVATE_KEY", "SF_REFRESH_TOKEN"}
)
"""Variables whose values are never printed."""

AUTOMATIC_ORDER: tuple[FlowName, ...] = (
    "refresh_token",
    "jwt_bearer",
    "client_credentials",
    "password",
)
"""The grants `flow_from_env` tries, in this order, when none is named.

A refresh token first (it stands for a user's explicit consent and makes no new login), then
the server-to-server grants, the username-password grant last since Salesforce retires it.
The authorization code grant is never picked automatically: it needs a browser.
"""

_KEY_VARIABLES = ("SF_PRIVATE_KEY_FILE", "SF_PRIVATE_KEY")


def _private_key(values: Mapping[str, str]) -> bytes | Path:
    if all(name in values for name in _KEY_VARIABLES):
        raise ConfigurationError(
            "Both SF_PRIVATE_KEY and SF_PRIVATE_KEY_FILE are set: set only one (the key's PEM "
            "text, or the path of its file)."
        )
    if "SF_PRIVATE_KEY_FILE" in values:
        return Path(values["SF_PRIVATE_KEY_FILE"]).expanduser()
    text = values["SF_PRIVATE_KEY"]
    if "\n" not in text and "\\n" in text:
        # CI secret stores and .env files often hold a PEM on one line with literal \n.
        text = text.replace("\\n", "\n")
    # Bytes, never str: a str that is not PEM would be read as a file name.
    return text.encode()


def _login_url(values: Mapping[str, str]) -> str:
    return values.get("SF_LOGIN_URL", DEFAULT_LOGIN_URL)


def _refresh_token(values: Mapping[str, str]) -> Flow:
    return RefreshTokenFlow(
        client_id=values["SF_CLIENT_ID"],
        refresh_token=values["SF_REFRESH_TOKEN"],
        client_secret=values.get("SF_CLIENT_SECRET"),
        login_url=_login_url(values),
    )


def _jwt_bearer(values: Mapping[str, str]) -> Flow:
    return JWTBearerFlow(
        client_id=values["SF_CLIENT_ID"],
        username=values["SF_USERNAME"],
        private_key=_private_key(values),
        login_url=_login_url(values),
        audience=values.get("SF_AUDIENCE"),
    )


def _client_credentials(values: Mapping[str, str]) -> Flow:
    return ClientCredentialsFlow(
        client_id=values["SF_CLIENT_ID"],
        client_secret=values["SF_CLIENT_SECRET"],
        login_url=values["SF_LOGIN_URL"],
    )


def _password(values: Mapping[str, str]) -> Flow:
    return PasswordFlow(
        client_id=values["SF_CLIENT_ID"],
        client_secret=values["SF_CLIENT_SECRET"],
        username=values["SF_USERNAME"],
        password=values["SF_PASSWORD"],
        security_token=values.get("SF_SECURITY_TOKEN", ""),
        login_url=_login_url(values),
    )


def _my_domain_problem(values: Mapping[str, str]) -> str | None:
    url = values.get("SF_LOGIN_URL")
    if url is not None and is_generic_login_host(url):
        return (
            "SF_LOGIN_URL set to your My Domain URL (https://<MyDomain>.my.salesforce.com): "
            "login.salesforce.com and test.salesforce.com refuse this grant"
        )
    return None


@dataclass(frozen=True)
class _Recipe:
    """What one grant needs from the environment."""

    label: str
    needs: tuple[tuple[str, ...], ...]
    """Each entry is satisfied by any one of its variables."""
    signals: tuple[str, ...]
    """Variables that show the user means this grant, for the missing-variable message."""
    build: Callable[[Mapping[str, str]], Flow]
    extra_problem: Callable[[Mapping[str, str]], str | None] = lambda _: None

    def missing(self, values: Mapping[str, str]) -> list[str]:
        """What is not set yet, as the message shows it."""
        absent = [
            " (or ".join(names) + ")" * (len(names) - 1)
            for names in self.needs
            if not any(name in values for name in names)
        ]
        problem = self.extra_problem(values)
        if problem is not None and not absent:
            absent.append(problem)
        return absent

    def used(self, values: Mapping[str, str]) -> list[str]:
        """The variables this grant reads that are set, for error messages."""
        names = [name for group in self.needs for name in group] + list(self.signals)
        names += ["SF_LOGIN_URL", "SF_CLIENT_SECRET", "SF_AUDIENCE", "SF_SECURITY_TOKEN"]
        return [name for name in dict.fromkeys(names) if name in values]


_RECIPES: dict[FlowName, _Recipe] = {
    "refresh_token": _Recipe(
        "the refresh token flow",
        needs=(("SF_CLIENT_ID",), ("SF_REFRESH_TOKEN",)),
        signals=("SF_REFRESH_TOKEN",),
        build=_refresh_token,
    ),
    "jwt_bearer": _Recipe(
        "the JWT bearer flow",
        needs=(("SF_CLIENT_ID",), ("SF_USERNAME",), _KEY_VARIABLES),
        signals=("SF_PRIVATE_KEY", "SF_PRIVATE_KEY_FILE", "SF_AUDIENCE", "SF_USERNAME"),
        build=_jwt_bearer,
    ),
    "client_credentials": _Recipe(
        "the client credentials flow",
        needs=(("SF_CLIENT_ID",), ("SF_CLIENT_SECRET",), ("SF_LOGIN_URL",)),
        signals=("SF_CLIENT_SECRET",),
        build=_client_credentials,
        extra_problem=_my_domain_problem,
    ),
    "password": _Recipe(
        "the username-password flow (deprecated)",
        needs=(("SF_CLIENT_ID",), ("SF_CLIENT_SECRET",), ("SF_USERNAME",), ("SF_PASSWORD",)),
        signals=("SF_PASSWORD", "SF_SECURITY_TOKEN", "SF_USERNAME"),
        build=_password,
    ),
    "authorization_code": _Recipe(
        "the authorization code flow",
        needs=(("SF_CLIENT_ID",), ("SF_REDIRECT_URI",)),
        signals=("SF_REDIRECT_URI",),
        build=lambda values: AuthorizationCodeFlow(
            client_id=values["SF_CLIENT_ID"],
            redirect_uri=values["SF_REDIRECT_URI"],
            client_secret=values.get("SF_CLIENT_SECRET"),
            login_url=_login_url(values),
            scope=values.get("SF_SCOPE"),
        ),
    ),
}


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _build(name: FlowName, values: Mapping[str, str]) -> Flow:
    recipe = _RECIPES[name]
    missing = recipe.missing(values)
    if missing:
        raise ConfigurationError(f"{recipe.label.capitalize()} needs {_and(missing)}.")
    try:
        return recipe.build(values)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"Cannot use {recipe.label} with {', '.join(recipe.used(values))}: {exc}"
        ) from None


def flow_from_env(
    env: Mapping[str, str] | None = None,
    *,
    flow: FlowName | None = None,
) -> Flow:
    """Build the flow that ``SF_*`` environment variables describe.

    Variables: ``SF_CLIENT_ID`` (consumer key), ``SF_CLIENT_SECRET``, ``SF_USERNAME``,
    ``SF_PASSWORD``, ``SF_SECURITY_TOKEN``, ``SF_PRIVATE_KEY`` (PEM text, on one line with
    escaped newlines if need be) or ``SF_PRIVATE_KEY_FILE`` (its path), ``SF_LOGIN_URL``
    (default ``https://login.salesforce.com``), ``SF_REFRESH_TOKEN``, ``SF_AUDIENCE`` (JWT
    ``aud``) and, for the authorization code grant, ``SF_REDIRECT_URI`` and ``SF_SCOPE``.
    Empty variables count as unset.

    Without ``flow``, the first complete grant in this order is used:

    1. refresh token: ``SF_CLIENT_ID``, ``SF_REFRESH_TOKEN`` (``SF_CLIENT_SECRET`` if the
       app requires it);
    2. JWT bearer: ``SF_CLIENT_ID``, ``SF_USERNAME``, ``SF_PRIVATE_KEY_FILE`` or
       ``SF_PRIVATE_KEY``;
    3. client credentials: ``SF_CLIENT_ID``, ``SF_CLIENT_SECRET`` and an ``SF_LOGIN_URL``
       that is a My Domain URL (never login/test.salesforce.com, which refuse it);
    4. username-password (deprecated): ``SF_CLIENT_ID``, ``SF_CLIENT_SECRET``,
       ``SF_USERNAME``, ``SF_PASSWORD`` (and ``SF_SECURITY_TOKEN``).

    The authorization code grant (``SF_CLIENT_ID``, ``SF_REDIRECT_URI``, optionally
    ``SF_CLIENT_SECRET`` and ``SF_SCOPE``; ``None`` scope means the app's) needs a browser
    and is built only when named.

    Args:
        env: The variables; default `os.environ`.
        flow: Build this grant rather than the first complete one: ``"refresh_token"``,
            ``"jwt_bearer"``, ``"client_credentials"``, ``"password"`` or
            ``"authorization_code"``.

    Returns:
        The flow. Its secrets are not in its ``repr``.

    Raises:
        ConfigurationError: No grant is complete, or the named one is not: the message
            names the missing variables for each grant the environment hints at. Or a
            value is unusable (a login URL that is not https, a key that is not RSA).

    Example:
        ```python
        import os

        os.environ.update(SF_CLIENT_ID="3MVG9...", SF_REFRESH_TOKEN="5Aep861...")
        flow = flow_from_env()  # a RefreshTokenFlow
        async with AsyncSession(flow) as sf:
            ...
        ```
    """
    source = os.environ if env is None else env
    values = {name: source[name] for name in ENV_VARIABLES if (source.get(name) or "").strip()}
    for name in ENV_VARIABLES:
        if name in values and name != "SF_PASSWORD":
            values[name] = values[name].strip()
    if flow is not None:
        if flow not in _RECIPES:
            raise ConfigurationError(
                f"Unknown flow {flow!r}: use one of {', '.join(get_args(FlowName))}."
            )
        return _build(flow, values)
    for name in AUTOMATIC_ORDER:
        if not _RECIPES[name].missing(values):
            return _build(name, values)
    hinted = [
        _RECIPES[name]
        for name in AUTOMATIC_ORDER
        if any(signal in values for signal in _RECIPES[name].signals)
    ]
    if not hinted:
        options = "; ".join(
            f"for {recipe.label}, {_and(recipe.missing(values))}"
            for recipe in (_RECIPES[name] for name in AUTOMATIC_ORDER)
        )
        raise ConfigurationError(f"No Salesforce credentials are set. Set, {options}.")
    incomplete = "; ".join(
        f"{recipe.label} is missing {_and(recipe.missing(values))}" for recipe in hinted
    )
    raise ConfigurationError(f"No flow has all its variables: {incomplete}.")
