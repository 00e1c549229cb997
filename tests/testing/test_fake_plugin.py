"""The pytest plugin's fake_org fixture."""

from __future__ import annotations

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
