"""The ``sfoauth`` command line against the fake org: each command, its output, its exit status."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from run_cli import sfoauth, sfoauth_process

from sfoauth_async import _cli_commands
from sfoauth_async._cli import main
from sfoauth_async.testing import FakeSalesforceOrg, Fault


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """An empty config directory for the command line."""
    return tmp_path / "config"


@pytest.fixture
def cc_env(fake_org: FakeSalesforceOrg, config: Path) -> dict[str, str]:
    """The client credentials grant of the fake org, as SF_* variables."""
    return {
        "SF_CLIENT_ID": fake_org.app.client_id,
        "SF_CLIENT_SECRET": fake_org.app.client_secret,
        "SF_LOGIN_URL": fake_org.my_domain_url,
        "SFOAUTH_CONFIG_DIR": str(config),
    }


@pytest.fixture
def rt_env(fake_org: FakeSalesforceOrg, config: Path) -> dict[str, str]:
    """The refresh token grant of the fake org, as SF_* variables."""
    return {
        "SF_CLIENT_ID": fake_org.app.client_id,
        "SF_CLIENT_SECRET": fake_org.app.client_secret,
        "SF_REFRESH_TOKEN": fake_org.issue_refresh_token(),
        "SF_LOGIN_URL": fake_org.login_url,
        "SFOAUTH_CONFIG_DIR": str(config),
    }


def secrets_of(org: FakeSalesforceOrg, env: dict[str, str]) -> list[str]:
    """Every secret the command line was given or the org holds, which output must not show."""
    values = [org.app.client_secret, org.user.password, org.user.security_token]
    values += [env[name] for name in ("SF_REFRESH_TOKEN",) if name in env]
    pem = org.private_key_pem.decode()
    values += [line for line in pem.splitlines() if "-----" not in line][:3]
    return values


async def limits_status(org: FakeSalesforceOrg, access_token: str) -> int:
    """The status of GET limits/ with this access token."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{org.my_domain_url}/services/data/v67.0/limits/",
            headers={"Authorization": f"Bearer {access_token}"},
        ) as resp,
    ):
        return resp.status


# -- token --------------------------------------------------------------------------------


async def test_token_prints_a_working_access_token(fake_org, cc_env) -> None:
    """`token` prints one line: an access token the REST API accepts."""
    ran = await sfoauth(cc_env, "token")
    assert ran.code == 0, ran.err
    access_token = ran.out.strip()
    assert ran.out == access_token + "\n"
    assert await limits_status(fake_org, access_token) == 200


async def test_token_is_saved_and_reused(fake_org, cc_env, config) -> None:
    """Two `token` calls make one login; the token file is private to its owner."""
    first = await sfoauth(cc_env, "token")
    second = await sfoauth(cc_env, "token")
    assert first.out == second.out
    assert fake_org.stats.token_requests_total == 1
    assert (config / "tokens.json").stat().st_mode & 0o777 == 0o600


async def test_general_options_work_before_and_after_the_command(
    fake_org, cc_env, tmp_path
) -> None:
    """--config-dir and --verbose are taken before the command as well as after it."""
    env = {k: v for k, v in cc_env.items() if k != "SFOAUTH_CONFIG_DIR"}
    before = await sfoauth(env, "--config-dir", str(tmp_path / "a"), "--verbose", "token")
    after = await sfoauth(env, "token", "--config-dir", str(tmp_path / "a"), "-v")
    assert before.out == after.out
    assert "sfoauth: INFO: " in before.err
    assert (tmp_path / "a" / "tokens.json").exists()
    assert fake_org.stats.token_requests_total == 1


async def test_no_store_logs_in_every_time(fake_org, cc_env, config) -> None:
    """With --no-store, each call is a new login and nothing is written."""
    await sfoauth(cc_env, "token", "--no-store")
    await sfoauth(cc_env, "token", "--no-store")
    assert fake_org.stats.token_requests_total == 2
    assert not config.exists()


@pytest.fixture
def all_env(fake_org: FakeSalesforceOrg, config: Path) -> dict[str, str]:
    """Every SF_* variable of the fake org's default app and user."""
    return {
        "SF_CLIENT_ID": fake_org.app.client_id,
        "SF_CLIENT_SECRET": fake_org.app.client_secret,
        "SF_USERNAME": fake_org.user.username,
        "SF_PASSWORD": fake_org.user.password,
        "SF_SECURITY_TOKEN": fake_org.user.security_token,
        "SF_PRIVATE_KEY": fake_org.private_key_pem.decode(),
        "SF_REFRESH_TOKEN": fake_org.issue_refresh_token(),
        "SF_LOGIN_URL": fake_org.my_domain_url,
        "SFOAUTH_CONFIG_DIR": str(config),
    }


@pytest.mark.parametrize("grant", ["client_credentials", "refresh_token", "jwt_bearer", "password"])
async def test_token_json_never_shows_a_secret(grant, fake_org, all_env) -> None:
    """`token --json` has the token's fields, and no secret, refresh token or key, for any grant."""
    env = all_env
    ran = await sfoauth(env, "token", "--json", "--flow", grant)
    assert ran.code == 0, ran.err
    data = json.loads(ran.out)
    assert set(data) == {
        "access_token", "instance_url", "id", "org_id", "user_id", "token_type", "scope",
        "issued_at", "received_at", "expires_at", "flow",
    }  # fmt: skip
    assert data["instance_url"] == fake_org.instance_url
    assert data["id"] == fake_org.identity_url()
    assert data["expires_at"] > data["received_at"]
    for secret in secrets_of(fake_org, env):
        assert secret not in ran.out + ran.err


async def test_password_flow_warns_in_one_line(fake_org, all_env) -> None:
    """The deprecated grant works, with one `sfoauth: warning:` line on stderr."""
    env = all_env | {"SF_LOGIN_URL": fake_org.login_url}
    ran = await sfoauth(env, "token", "--flow", "password")
    assert ran.code == 0, ran.err
    assert ran.err.startswith("sfoauth: warning: The username-password flow is deprecated")
    assert ran.err.count("\n") == 1


async def test_options_override_variables(cc_env) -> None:
    """--client-secret wins over SF_CLIENT_SECRET: a wrong option makes the login fail."""
    ran = await sfoauth(cc_env, "token", "--client-secret", "wrong")
    assert ran.code == 1
    assert "invalid_client" in ran.err


# -- display, whoami, introspect ------------------------------------------------------------


async def test_display_masks_the_token(fake_org, cc_env) -> None:
    """`display` shows org, user, username, API version and expiry, the token masked."""
    token = (await sfoauth(cc_env, "token")).out.strip()
    ran = await sfoauth(cc_env, "display")
    assert ran.code == 0, ran.err
    assert token not in ran.out
    for expected in (
        f"Instance URL  {fake_org.instance_url}",
        f"Org ID        {fake_org.org_id}",
        f"User ID       {fake_org.user.user_id}",
        "Username      admin@fake.org",
        "API version   67.0",
        "Access token  " + token[:5] + "*" * 12 + " (--show-token shows it)",
        "Flow          client credentials, from SF_* variables",
    ):
        assert expected in ran.out
    shown = await sfoauth(cc_env, "display", "--show-token", "--json")
    assert json.loads(shown.out)["access_token"] == token
    assert fake_org.app.client_secret not in ran.out + shown.out


async def test_whoami_shows_the_user(fake_org, cc_env) -> None:
    """`whoami` prints the userinfo of the token's user; --json the whole answer."""
    ran = await sfoauth(cc_env, "whoami")
    assert "Username  admin@fake.org" in ran.out
    assert f"Org ID    {fake_org.org_id}" in ran.out
    data = json.loads((await sfoauth(cc_env, "whoami", "--json")).out)
    assert data["preferred_username"] == "admin@fake.org"


async def test_whoami_heals_a_dead_saved_token(fake_org, cc_env) -> None:
    """A saved token that the org expired is replaced once, and whoami still answers."""
    await sfoauth(cc_env, "token")
    fake_org.expire_all_sessions()
    ran = await sfoauth(cc_env, "whoami")
    assert ran.code == 0, ran.err
    assert fake_org.stats.token_requests_total == 2


async def test_introspect_says_active_then_inactive(fake_org, cc_env) -> None:
    """`introspect` reports an active token (exit 0), then an ended one (exit 1)."""
    ran = await sfoauth(cc_env, "introspect")
    assert ran.code == 0
    assert "Active     yes" in ran.out
    fake_org.expire_all_sessions()
    ran = await sfoauth(cc_env, "introspect", "--json")
    assert ran.code == 1
    assert json.loads(ran.out)["active"] is False


# -- check ----------------------------------------------------------------------------------


async def test_check_says_everything_works(cc_env) -> None:
    """`check` gets a token and calls versions, resources and limits: all ok, exit 0."""
    ran = await sfoauth(cc_env, "check")
    assert ran.code == 0, ran.out + ran.err
    lines = ran.out.splitlines()
    assert [line.split()[:2] for line in lines[1:5]] == [
        ["ok", "token"], ["ok", "versions"], ["ok", "resources"], ["ok", "limits"],
    ]  # fmt: skip
    assert "37 versions, latest v67.0" in ran.out
    assert lines[-1] == "Everything works."


async def test_check_reports_a_missing_api_scope(fake_org, config) -> None:
    """A token without the api scope: versions ok, resources FAIL with the scope hint, exit 1."""
    env = {
        "SF_CLIENT_ID": fake_org.app.client_id,
        "SF_CLIENT_SECRET": fake_org.app.client_secret,
        "SF_REFRESH_TOKEN": fake_org.issue_refresh_token(scopes=["id", "refresh_token"]),
        "SF_LOGIN_URL": fake_org.login_url,
        "SFOAUTH_CONFIG_DIR": str(config),
    }
    ran = await sfoauth(env, "check")
    assert ran.code == 1
    assert "  ok    versions" in ran.out
    assert "  FAIL  resources  GET /services/data/v67.0/: HTTP 401 INVALID_SESSION_ID" in ran.out
    assert "add the 'api' scope" in ran.out


async def test_check_reports_salesforce_unavailable(fake_org, cc_env) -> None:
    """A maintenance page on the versions call: FAIL and exit 3 (retry later)."""
    fake_org.faults.api.push(Fault.html(503))
    ran = await sfoauth(cc_env, "check")
    assert ran.code == 3
    assert "  FAIL  versions   GET /services/data/: HTTP 503" in ran.out


async def test_check_heals_and_keeps_a_rotated_refresh_token(fake_org, rt_env) -> None:
    """With rotation, a dead saved session is refreshed with the saved (rotated) refresh token.

    Refreshing with the stale SF_REFRESH_TOKEN instead would revoke the whole grant.
    """
    fake_org.app.rotate_refresh_tokens = True
    assert (await sfoauth(rt_env, "token")).code == 0
    fake_org.expire_all_sessions()
    ran = await sfoauth(rt_env, "check")
    assert ran.code == 0, ran.out + ran.err
    assert fake_org.stats.token_requests["refresh_token"] == 2
    assert (await sfoauth(rt_env, "check")).code == 0
    assert fake_org.stats.token_requests["refresh_token"] == 2


# -- revoke and logout ----------------------------------------------------------------------


async def test_revoke_ends_the_token_and_forgets_it(fake_org, cc_env) -> None:
    """`revoke` revokes the saved token, removes it, and the next command logs in again."""
    token = (await sfoauth(cc_env, "token")).out.strip()
    ran = await sfoauth(cc_env, "revoke")
    assert ran.code == 0
    assert ran.out.startswith("Revoked the access token of user ")
    assert fake_org.stats.revocations == 1
    assert await limits_status(fake_org, token) == 401
    assert (await sfoauth(cc_env, "revoke")).out.startswith("Nothing to revoke")
    assert (await sfoauth(cc_env, "token")).out.strip() != token
    assert fake_org.stats.token_requests_total == 2


async def test_revoke_of_a_refresh_token_ends_the_grant(rt_env) -> None:
    """For a refresh token grant, the refresh token is revoked and forgotten: never sent again."""
    await sfoauth(rt_env, "token")
    ran = await sfoauth(rt_env, "logout")
    assert ran.out.startswith("Revoked the refresh token (and its sessions)")
    again = await sfoauth(rt_env, "token")
    assert again.code == 1
    assert "forgotten in the store (logged out)" in again.err
    assert "Authorize again" in again.err


async def test_logout_without_a_login(cc_env) -> None:
    """`logout` with nothing saved says so and succeeds, without a request."""
    ran = await sfoauth(cc_env, "logout")
    assert (ran.code, ran.out) == (0, "Not logged in: no token is saved.\n")


# -- errors and exit statuses ---------------------------------------------------------------


async def test_missing_configuration_exits_2_in_one_line(config) -> None:
    """No credentials: one line naming the variables, exit 2, no traceback."""
    ran = await sfoauth({"SFOAUTH_CONFIG_DIR": str(config)}, "token")
    assert ran.code == 2
    assert ran.err.count("\n") == 1
    assert ran.err.startswith("sfoauth: error: No Salesforce credentials are set.")
    assert "sfoauth login --web" in ran.err


async def test_refused_credentials_exit_1_with_salesforces_error(cc_env) -> None:
    """invalid_client: Salesforce's error and what to check, exit 1; --verbose adds details."""
    env = cc_env | {"SF_CLIENT_SECRET": "wrong-secret"}
    ran = await sfoauth(env, "token")
    assert ran.code == 1
    assert ran.err.startswith("sfoauth: error: Salesforce refused the request with invalid_client")
    assert "Check the consumer key" in ran.err
    assert ran.err.count("\n") == 1
    verbose = await sfoauth(env, "token", "--verbose")
    assert "  type: sfoauth_async.InvalidClientError\n" in verbose.err
    assert "  status: 400\n" in verbose.err
    assert "  error: invalid_client\n" in verbose.err
    assert "wrong-secret" not in ran.err + verbose.err


async def test_unreachable_salesforce_exits_3(cc_env) -> None:
    """A login URL where nothing listens: 'retry later', exit 3."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    ran = await sfoauth(cc_env | {"SF_LOGIN_URL": closed}, "token", "--attempts", "1")
    assert ran.code == 3
    assert "check the network" in ran.err


async def test_a_bug_exits_4_and_verbose_shows_the_traceback(monkeypatch, cc_env) -> None:
    """An unexpected exception is an internal error: exit 4, a traceback only with --verbose."""

    async def broken(*_: object, **__: object) -> int:
        raise KeyError("boom")

    monkeypatch.setattr(_cli_commands, "token", broken)
    ran = await sfoauth(cc_env, "token")
    assert ran.code == 4
    assert ran.err.startswith("sfoauth: internal error: KeyError")
    assert "Traceback" not in ran.err
    assert "Traceback" in (await sfoauth(cc_env, "token", "-v")).err


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--tasks", "-1"],
        ["demo", "--seconds", "0"],
        [],
        ["token", "--session-timeout", "soon"],
        ["token", "--flow", "device"],
        ["login"],
    ],
)
def test_bad_arguments_exit_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Nonsense arguments end with argparse's usage error (status 2), not a traceback."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` lists every exit status and the order in which credentials are chosen."""
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0 success; 1 Salesforce refused" in text
    assert "2 usage or configuration" in text
    assert "3 Salesforce or the network unavailable" in text
    assert "refresh_token, jwt_bearer, client_credentials, password" in text


# -- the installed entry points, as a new user runs them ------------------------------------


async def test_console_script_version() -> None:
    """`sfoauth --version` prints the installed distribution's version."""
    ran = await sfoauth_process({}, "--version")
    assert ran.code == 0
    assert ran.out == f"sfoauth {importlib.metadata.version('sfoauth-async')}\n"


async def test_console_script_token_json(fake_org, cc_env) -> None:
    """The console script prints the token as JSON, without the client secret."""
    ran = await sfoauth_process(cc_env, "token", "--json")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["instance_url"] == fake_org.instance_url
    assert fake_org.app.client_secret not in ran.out + ran.err


async def test_python_dash_m_is_the_same_command_line(cc_env) -> None:
    """`python -m sfoauth_async whoami` runs the same CLI."""
    ran = await sfoauth_process(cc_env, "whoami", module=True)
    assert ran.code == 0, ran.err
    assert "Username  admin@fake.org" in ran.out


async def test_console_script_error_has_no_traceback(config) -> None:
    """A configuration error in a real process: one line on stderr, exit 2."""
    ran = await sfoauth_process({"SFOAUTH_CONFIG_DIR": str(config)}, "check")
    assert ran.code == 2
    assert ran.err.startswith("sfoauth: error: ")
    assert "Traceback" not in ran.err


async def test_console_script_refusal_is_one_line(cc_env) -> None:
    """A refused login in a real process: exactly one stderr line (the library's log is quiet)."""
    ran = await sfoauth_process(cc_env | {"SF_CLIENT_SECRET": "wrong"}, "token")
    assert ran.code == 1
    assert ran.err.startswith("sfoauth: error: Salesforce refused the request with invalid_client")
    assert ran.err.count("\n") == 1


def test_demo_runs_every_grant_and_a_load_without_failures() -> None:
    """The demo logs in with each grant, crosses expiries, reports no failed request.

    Its stderr is a pipe, not a terminal: no carriage-return progress frames.
    """
    done = subprocess.run(
        [
            *(sys.executable, "-m", "sfoauth_async", "demo"),
            *("--tasks", "50", "--seconds", "2", "--lifetime", "1", "--think", "0.1"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for grant in ("client credentials", "JWT bearer", "refresh token", "authorization code"):
        assert f"  {grant}" in done.stdout
    assert "failed 0" in done.stdout
    assert "401s seen         0" in done.stdout
    token_requests = int(done.stdout.split("token requests")[-1].split()[0])
    assert 2 <= token_requests <= 3  # a 1 s session replaced every ~0.75 s for 2 s
    assert "\r" not in done.stdout + done.stderr
