"""The pytest plugin's fake_org fixture."""

from __future__ import annotations

import subprocess
import sys

import aiohttp
import pytest

from sfoauth_async.testing import FakeSalesforceOrg

pytest_plugins = ["pytester"]


async def test_fake_org_fixture(fake_org):
    """fake_org is a started default org."""
    assert isinstance(fake_org, FakeSalesforceOrg)
    url = fake_org.my_domain_url + "/services/data/"
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.status == 200


def test_fixture_in_a_fresh_project(pytester: pytest.Pytester):
    """In a project with pytest-asyncio (strict mode) the fixture works, without warnings."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_it(fake_org):
            assert fake_org.login_url.startswith("http://127.0.0.1:")
        """
    )
    result = pytester.runpytest_inprocess(
        "-W", "error", "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=1)


def test_fixture_without_pytest_asyncio(pytester: pytest.Pytester):
    """Without pytest-asyncio the plugin imports without warnings and the fixture says why."""
    # A module that shadows pytest_asyncio and fails to import, as if it were not installed;
    # -p no:asyncio keeps pytest from loading the real plugin through its entry point.
    pytester.makepyfile(pytest_asyncio="raise ImportError('pytest-asyncio is not installed')")
    pytester.makepyfile(
        test_it="""
        def test_it(fake_org):
            pass
        """
    )
    result = pytester.runpytest_subprocess(
        "-W", "error", "-p", "no:asyncio", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*needs pytest-asyncio*"])


def test_autoloading_the_plugin_imports_no_fake_org(pytester: pytest.Pytester):
    """The entry point costs no fake org: it is imported only when a test uses the fixture."""
    pytester.makepyfile(
        test_a_plain="""
        import sys

        FAKE_ORG = [
            "sfoauth_async.testing._org",
            "sfoauth_async.testing._oauth",
            "sfoauth_async.testing._rest",
            "sfoauth_async.testing._faults",
            "sfoauth_async.testing._model",
            "sfoauth_async.testing._keys",
            "aiohttp.web",
        ]

        def test_plain():
            assert "sfoauth_async.testing._plugin" in sys.modules  # autoloaded
            assert [name for name in FAKE_ORG if name in sys.modules] == []
        """,
        test_b_fixture="""
        import sys

        import pytest

        @pytest.mark.asyncio
        async def test_uses_it(fake_org):
            assert "sfoauth_async.testing._org" in sys.modules
            assert fake_org.login_url.startswith("http://127.0.0.1:")
        """,
    )
    result = pytester.runpytest_subprocess(
        "-W", "error", "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=2)


def test_the_public_testing_names_load_on_first_use():
    """sfoauth_async.testing still offers every public name, with its public module."""
    code = (
        "import sys, sfoauth_async.testing as t\n"
        "assert 'sfoauth_async.testing._org' not in sys.modules\n"
        "assert t.FakeSalesforceOrg.__module__ == 'sfoauth_async.testing'\n"
        "assert set(t.__all__) <= set(dir(t))\n"
        "assert 'sfoauth_async.testing._org' in sys.modules\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True)
    assert completed.returncode == 0, completed.stderr.decode()
