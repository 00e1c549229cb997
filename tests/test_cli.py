"""``python -m sfoauth_async demo``: the README's first command, run small."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sfoauth_async._cli import main


def test_demo_runs_every_grant_and_a_load_without_failures() -> None:
    """The demo logs in with each grant, crosses expiries and reports no failed request."""
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


@pytest.mark.parametrize("argv", [["demo", "--tasks", "-1"], ["demo", "--seconds", "0"], []])
def test_bad_arguments_exit_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Nonsense arguments end with argparse's usage error, not a traceback."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err
