"""Which credentials a command of the ``sfoauth`` command line uses, and where it keeps tokens.

Tokens live in a `FileTokenStore` in the user's config directory (``tokens.json``), and
``sfoauth login --web`` also writes ``login.json`` there: the saved login, which names the
app, the login URL and the store key of the user's token (never a secret). A command uses:

1. the grant built from the command line's options and the ``SF_*`` environment, when
   ``--flow`` or a credential option is given;
2. otherwise the saved login, if there is one;
3. otherwise the grant `flow_from_env` picks from the ``SF_*`` environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import platformdirs

from ._authorization_code import AuthorizationCodeFlow
from ._env import ENV_VARIABLES, FlowName, flow_from_env
from ._errors import ConfigurationError, StoreError
from ._file_store import FileTokenStore
from ._flow import Flow

__all__ = [
    "CONFIG_DIR_ENV",
    "TOKEN_KEY_ENV",
    "Credentials",
    "SavedLogin",
    "config_dir",
    "resolve_credentials",
    "sf_values",
    "token_store",
]

CONFIG_DIR_ENV = "SFOAUTH_CONFIG_DIR"
"""Overrides the config directory (``--config-dir`` overrides it in turn)."""

TOKEN_KEY_ENV = "SFOAUTH_TOKEN_KEY"
"""When set, holds the Fernet key that encrypts the secrets in ``tokens.json``."""

_LOGIN_FILE = "login.json"
_TOKEN_FILE = "tokens.json"
_LOGIN_VERSION = 1

_FLOW_LABELS = {
    "AuthorizationCodeFlow": "authorization code (saved login)",
    "ClientCredentialsFlow": "client credentials",
    "JWTBearerFlow": "JWT bearer",
    "PasswordFlow": "username-password (deprecated)",
    "RefreshTokenFlow": "refresh token",
}


def option_name(variable: str) -> str:
    """The command-line option of an ``SF_*`` variable: ``SF_CLIENT_ID`` is ``--client-id``."""
    return "--" + variable.removeprefix("SF_").lower().replace("_", "-")


def sf_values(env: Mapping[str, str], options: Mapping[str, str | None]) -> dict[str, str]:
    """The ``SF_*`` variables of ``env``, overridden by the options given on the command line."""
    values = {name: env[name] for name in ENV_VARIABLES if env.get(name)}
    values.update({name: value for name, value in options.items() if value})
    return values


def config_dir(env: Mapping[str, str], option: str | None) -> Path:
    """``--config-dir``, else ``$SFOAUTH_CONFIG_DIR``, else the platform's user config dir."""
    chosen = option or env.get(CONFIG_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return Path(platformdirs.user_config_dir("sfoauth", appauthor=False))


def token_store(directory: Path, env: Mapping[str, str]) -> FileTokenStore:
    """The token file of the command line, encrypted when ``SFOAUTH_TOKEN_KEY`` is set."""
    key_env = TOKEN_KEY_ENV if env.get(TOKEN_KEY_ENV) else None
    return FileTokenStore(directory / _TOKEN_FILE, encryption_key_env=key_env)


@dataclass(frozen=True)
class SavedLogin:
    """What ``sfoauth login --web`` remembers about the login, besides the token itself."""

    client_id: str
    login_url: str
    redirect_uri: str
    store_key: str
    username: str | None
    user_id: str | None
    org_id: str | None
    instance_url: str
    scope: str | None = None

    def flow(self, client_secret: str | None) -> AuthorizationCodeFlow:
        """The flow that refreshes this login (confidential apps need their secret again)."""
        return AuthorizationCodeFlow(
            client_id=self.client_id,
            redirect_uri=self.redirect_uri,
            client_secret=client_secret,
            login_url=self.login_url,
            scope=self.scope,
        )

    @staticmethod
    def path(directory: Path) -> Path:
        """The file of the saved login."""
        return directory / _LOGIN_FILE

    @classmethod
    def load(cls, directory: Path) -> SavedLogin | None:
        """The saved login, or ``None``.

        Raises:
            StoreError: The file exists but is not a saved login.
        """
        path = cls.path(directory)
        try:
            data = json.loads(path.read_text())
            login = cls(**data) if data.pop("version", None) == _LOGIN_VERSION else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, AttributeError):
            login = None
        if login is None:
            raise StoreError(
                f"{path} is not a saved login of this sfoauth: delete it, then run "
                f"sfoauth login --web again."
            )
        return login

    def save(self, directory: Path) -> None:
        """Write the saved login atomically, readable by its owner only."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps({"version": _LOGIN_VERSION, **asdict(self)}, indent=1)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".login.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(temporary, self.path(directory))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @classmethod
    def forget(cls, directory: Path) -> None:
        """Delete the saved login, if any."""
        cls.path(directory).unlink(missing_ok=True)


@dataclass
class Credentials:
    """The grant a command uses, where it came from, and where its token is kept."""

    flow: Flow
    source: str
    store: FileTokenStore | None
    store_key: str | None
    saved: SavedLogin | None = None

    @property
    def label(self) -> str:
        """The grant, in words."""
        return _FLOW_LABELS.get(type(self.flow).__name__, type(self.flow).__name__)

    def describe(self) -> dict[str, Any]:
        """Where the token comes from, without a secret."""
        return {
            "flow": self.label,
            "source": self.source,
            "login_url": self.flow.login_url,
            "client_id": self.flow.client_id,
            "token_file": str(self.store.path) if self.store else None,
        }


def _build_quietly(values: Mapping[str, str], flow: FlowName | None, err: TextIO) -> Flow:
    """`flow_from_env`, turning the password grant's DeprecationWarning into one line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        built = flow_from_env(values, flow=flow)
    for warning in caught:
        err.write(f"sfoauth: warning: {warning.message}\n")
    return built


def resolve_credentials(
    *,
    env: Mapping[str, str],
    options: Mapping[str, str | None],
    flow: FlowName | None,
    directory: Path,
    use_store: bool,
    err: TextIO,
) -> Credentials:
    """Pick the grant of a command (see the module docstring) and its token store.

    Raises:
        ConfigurationError: No grant is configured and there is no saved login.
        StoreError: The saved login file is corrupt.
    """
    values = sf_values(env, options)
    explicit = flow is not None or any(options.values())
    store = token_store(directory, env) if use_store else None
    if not explicit and store is not None:
        saved = SavedLogin.load(directory)
        if saved is not None:
            name = saved.username or saved.user_id or "the saved user"
            return Credentials(
                flow=saved.flow(values.get("SF_CLIENT_SECRET")),
                source=f"the saved login of {name} (sfoauth login --web)",
                store=store,
                store_key=saved.store_key,
                saved=saved,
            )
    try:
        built = _build_quietly(values, flow, err)
    except ConfigurationError as exc:
        if explicit:
            raise
        raise ConfigurationError(
            f"{exc} Every variable is also an option (SF_CLIENT_ID is --client-id); or log "
            f"in with a browser: sfoauth login --web."
        ) from None
    where = "command-line options and SF_* variables" if explicit else "SF_* variables"
    return Credentials(
        flow=built,
        source=where,
        store=store,
        store_key=built.store_key() if store is not None else None,
    )
