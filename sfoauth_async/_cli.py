"""The command line: ``sfoauth <command>``, also ``python -m sfoauth_async <command>``.

This module parses the arguments, runs a command and turns every failure into one line and
an exit status (`ExitCode`); the commands live in ``_cli_commands.py`` and
``_cli_login.py``, and the choice of credentials in ``_cli_config.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import traceback
import webbrowser
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TextIO

import aiohttp

from . import _cli_commands as cli_commands
from ._cli_commands import CommandError, Context, ExitCode
from ._cli_config import (
    CONFIG_DIR_ENV,
    TOKEN_KEY_ENV,
    SavedLogin,
    config_dir,
    option_name,
    resolve_credentials,
)
from ._cli_login import DEFAULT_REDIRECT_URI, login_web
from ._duration import duration_argument
from ._env import AUTOMATIC_ORDER, ENV_VARIABLES, SECRET_VARIABLES, FlowName
from ._errors import ConfigurationError, SFOAuthError, StoreError

__all__ = ["main", "run"]

_EPILOG = f"""\
credentials:
  Every SF_* variable is also an option: SF_CLIENT_ID is --client-id, and an option wins
  over its variable. A command uses, in this order:
    1. the flow built from the options and SF_* variables, when --flow or a credential
       option is given;
    2. the saved login of `sfoauth login --web`, if any;
    3. the first complete flow among: {", ".join(AUTOMATIC_ORDER)}.
  Tokens are kept in tokens.json of the config directory (${CONFIG_DIR_ENV}, or the platform's
  user config directory), so commands reuse them rather than log in again; set
  ${TOKEN_KEY_ENV} to a Fernet key to encrypt them. Prefer variables to options for
  secrets: options show in the process list and the shell history.

exit status:
  0 success; 1 Salesforce refused (credentials, grant, consent, state) or a check failed;
  2 usage or configuration (options, missing variables, no login, port in use);
  3 Salesforce or the network unavailable (retry later); 4 internal error (a bug);
  130 interrupted.
"""


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def _version() -> str:
    from . import __version__  # noqa: PLC0415 - the package imports this module

    return __version__


def _general_options() -> argparse.ArgumentParser:
    general = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not undo `sfoauth --verbose <command>` (the
    # options are on the main parser and on each subcommand).
    general.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="on error, show the details; log what the library does",
    )
    general.add_argument(
        "--config-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=f"where tokens.json and login.json live (${CONFIG_DIR_ENV}, or the user config dir)",
    )
    return general


_NOTES = {
    "SF_LOGIN_URL": "; default https://login.salesforce.com",
    "SF_REDIRECT_URI": f"; default {DEFAULT_REDIRECT_URI}",
    "SF_SCOPE": "; default the app's scopes",
    "SF_PRIVATE_KEY": " (PEM text)",
    "SF_PRIVATE_KEY_FILE": " (a PEM file)",
}


def _add_variables(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    group = parser.add_argument_group("credentials (each overrides its SF_* variable)")
    for name in names:
        secret = name in SECRET_VARIABLES
        group.add_argument(
            option_name(name),
            dest=name,
            metavar="VALUE" if secret else name.removeprefix("SF_"),
            help=f"instead of ${name}{_NOTES.get(name, '')}"
            + (" (a secret: prefer the variable)" if secret else ""),
        )


def _token_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--flow",
        choices=AUTOMATIC_ORDER,
        help="use this flow from the options and variables (default: the saved login, or "
        "the first complete flow)",
    )
    common.add_argument(
        "--session-timeout",
        type=duration_argument,
        default=7200.0,
        metavar="DURATION",
        help="the org's session timeout, for the token's expiry: 900, 30m, 2h (2h)",
    )
    common.add_argument(
        "--attempts",
        type=_count,
        default=3,
        help="token requests per login before giving up on network trouble (3)",
    )
    common.add_argument(
        "--no-store",
        action="store_true",
        help="neither reuse nor save tokens (nor use the saved login): log in every time",
    )
    _add_variables(common, [n for n in ENV_VARIABLES if n not in ("SF_REDIRECT_URI", "SF_SCOPE")])
    return common


def _parser() -> argparse.ArgumentParser:
    general = _general_options()
    token_options = _token_options()
    parser = argparse.ArgumentParser(
        prog="sfoauth",
        description="Salesforce OAuth 2.0 tokens from the command line: log in, get a token, "
        "check a setup, see who you are.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[general],
    )
    parser.add_argument("--version", action="version", version=f"sfoauth {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, summary: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=summary[:1].upper() + summary[1:] + ".",
            epilog=_EPILOG if parents else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[general, *parents],
        )

    demo = command(
        "demo", "run thousands of tasks through several token expiries against a fake org"
    )
    demo.add_argument("--tasks", type=_count, default=2000, help="concurrent tasks (2000)")
    demo.add_argument("--seconds", type=_positive, default=12.0, help="load duration (12)")
    demo.add_argument(
        "--lifetime", type=_positive, default=4.0, help="session lifetime in seconds (4)"
    )
    demo.add_argument(
        "--think", type=_positive, default=2.0, help="mean pause between a task's requests (2)"
    )

    for name, summary in (
        ("token", "print an access token (a saved one while it lasts, else a new login)"),
        ("whoami", "show the user the token acts as (/services/oauth2/userinfo)"),
        ("introspect", "ask Salesforce whether the token is active, and until when"),
    ):
        sub = command(name, summary, token_options)
        sub.add_argument("--json", action="store_true", help="print JSON")
    display = command(
        "display",
        "show the org, user, instance, API version and expiry, like sf org display",
        token_options,
    )
    display.add_argument("--json", action="store_true", help="print JSON")
    display.add_argument("--show-token", action="store_true", help="show the whole access token")
    command(
        "check",
        "get a token, then call the REST API's versions, resources and limits; say what works",
        token_options,
    )
    command("revoke", "revoke the saved token and remove it from the token file", token_options)
    command(
        "logout",
        "revoke the saved token, remove it, and forget the saved login",
        token_options,
    )

    login = command(
        "login", "log in with a browser (authorization code with PKCE); saves the token"
    )
    login.add_argument(
        "--web", action="store_true", required=True, help="log in through the browser (required)"
    )
    login.add_argument(
        "--no-browser", action="store_true", help="print the URL to open instead of opening it"
    )
    login.add_argument(
        "--timeout",
        type=duration_argument,
        default=300.0,
        metavar="DURATION",
        help="how long to wait for the browser to come back (5m)",
    )
    login.add_argument(
        "--session-timeout",
        type=duration_argument,
        default=7200.0,
        metavar="DURATION",
        help="the org's session timeout, for the token's expiry (2h)",
    )
    _add_variables(
        login, ["SF_CLIENT_ID", "SF_CLIENT_SECRET", "SF_LOGIN_URL", "SF_REDIRECT_URI", "SF_SCOPE"]
    )
    return parser


def open_in_browser(url: str) -> bool:
    """Open ``url`` in the user's browser; ``False`` when there is none to open.

    Example:
        ```python
        if not open_in_browser(url):
            print(url)
        ```
    """
    graphical = ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in graphical):
        # Without a display, webbrowser falls back to console browsers (lynx, w3m) that
        # would take over this terminal: the caller prints the URL instead.
        return False
    return webbrowser.open(url)


def exit_code_for(exc: BaseException) -> int:
    """The exit status an error stands for (see `ExitCode`)."""
    code: int = ExitCode.INTERNAL
    if isinstance(exc, CommandError):
        code = exc.exit_code
    elif isinstance(exc, ConfigurationError):
        code = ExitCode.USAGE
    elif isinstance(exc, SFOAuthError):
        if exc.transient:
            code = ExitCode.UNAVAILABLE
        else:
            code = ExitCode.USAGE if isinstance(exc, StoreError) else ExitCode.REFUSED
    elif isinstance(exc, aiohttp.ClientError | TimeoutError):
        code = ExitCode.UNAVAILABLE
    elif isinstance(exc, OSError):
        code = ExitCode.USAGE
    return code


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _details(exc: BaseException) -> list[str]:
    lines = [f"type: {type(exc).__module__}.{type(exc).__qualname__}"]
    for name in ("status", "url", "error", "description", "transient", "exit_code"):
        value = getattr(exc, name, None)
        if value is not None:
            lines.append(f"{name}: {value}")
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        lines.append(f"caused by: {type(cause).__name__}: {_one_line(str(cause))}")
        cause = cause.__cause__ or cause.__context__
    return lines


def _report(exc: BaseException, err: TextIO, *, verbose: bool) -> int:
    code = exit_code_for(exc)
    if code == ExitCode.INTERNAL:
        err.write(
            f"sfoauth: internal error: {type(exc).__name__}: {_one_line(str(exc))}. This is a "
            f"bug in sfoauth; please report it with the output of --verbose.\n"
        )
        if verbose:
            err.write("".join(traceback.format_exception(exc)))
        return code
    message = str(exc)
    if isinstance(exc, aiohttp.ClientError | TimeoutError):
        message = (
            f"Cannot reach Salesforce ({type(exc).__name__}: {str(exc) or 'timed out'}); check "
            f"the network, proxy and TLS settings."
        )
    err.write(f"sfoauth: error: {_one_line(message)}\n")
    if verbose:
        err.writelines(f"  {line}\n" for line in _details(exc))
    return code


async def _dispatch(
    args: argparse.Namespace,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    open_url: Callable[[str], bool] | None,
) -> int:
    if args.command == "demo":
        from ._demo import run_demo  # noqa: PLC0415 - the demo pulls in the fake org

        result = await run_demo(
            tasks=args.tasks,
            seconds=args.seconds,
            lifetime_s=args.lifetime,
            think_s=args.think,
            out=out,
        )
        return ExitCode.OK if result.failed == 0 else ExitCode.REFUSED
    directory = config_dir(env, getattr(args, "config_dir", None))
    options = {name: getattr(args, name, None) for name in ENV_VARIABLES}
    if args.command == "login":
        login = await login_web(
            env=env,
            options=options,
            directory=directory,
            open_url=None if args.no_browser else open_url,
            timeout_s=args.timeout,
            session_timeout_s=args.session_timeout,
            out=out,
            err=err,
        )
        saved = login.saved
        err.write(
            f"Logged in as {saved.username or saved.user_id} (user {saved.user_id}, org "
            f"{saved.org_id}) at {saved.instance_url}; the token is saved in "
            f"{login.token_file}.\n"
        )
        return ExitCode.OK
    flow: FlowName | None = args.flow
    ctx = Context(
        credentials=resolve_credentials(
            env=env,
            options=options,
            flow=flow,
            directory=directory,
            use_store=not args.no_store,
            err=err,
        ),
        session_timeout_s=args.session_timeout,
        attempts=args.attempts,
        out=out,
        err=err,
    )
    if (
        args.command == "logout"
        and ctx.credentials.saved is None
        and SavedLogin.load(directory) is not None
    ):
        err.write("sfoauth: note: the saved login is kept: options chose other credentials.\n")
    commands: dict[str, Callable[[], Awaitable[int]]] = {
        "token": lambda: cli_commands.token(ctx, as_json=args.json),
        "whoami": lambda: cli_commands.whoami(ctx, as_json=args.json),
        "introspect": lambda: cli_commands.introspect(ctx, as_json=args.json),
        "display": lambda: cli_commands.display(ctx, as_json=args.json, show_token=args.show_token),
        "check": lambda: cli_commands.check(ctx),
        "revoke": lambda: cli_commands.revoke(ctx),
        "logout": lambda: cli_commands.logout(ctx, directory),
    }
    return await commands[args.command]()


async def run(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    open_url: Callable[[str], bool] | None = open_in_browser,
) -> int:
    """Run one command on the running event loop; returns the exit status.

    Args:
        argv: The arguments (default ``sys.argv[1:]``).
        env: The environment (default `os.environ`).
        out: Where results go (default stdout).
        err: Where errors and notes go (default stderr).
        open_url: Opens a URL in the user's browser; returns whether it did.

    Raises:
        SystemExit: Bad usage (status 2, argparse's message), ``--help`` or ``--version``.

    Example:
        ```python
        status = await run(["token", "--json"])
        ```
    """
    args = _parser().parse_args(argv)
    env = os.environ if env is None else env
    out = out or sys.stdout
    err = err or sys.stderr
    verbose = getattr(args, "verbose", False)
    logger = logging.getLogger("sfoauth_async")
    # Without --verbose the library's log stays quiet (Python would print its warnings and
    # errors bare on stderr): the error line says it all.
    handler: logging.Handler = logging.NullHandler()
    if verbose:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter("sfoauth: %(levelname)s: %(message)s"))
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        return await _dispatch(args, env, out, err, open_url)
    except Exception as exc:  # noqa: BLE001 - every error gets one line
        return _report(exc, err, verbose=verbose)
    finally:
        logger.removeHandler(handler)
        if verbose:
            logger.setLevel(logging.NOTSET)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the ``sfoauth`` console script).

    Example:
        ```python
        raise SystemExit(main(["display"]))
        ```
    """
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        sys.stderr.write("\nsfoauth: interrupted\n")
        return ExitCode.INTERRUPTED
