"""pytest plugin: the ``fake_org`` fixture, a started `FakeSalesforceOrg` per test.

Registered through the ``pytest11`` entry point, so installing sfoauth_async is enough:

```python
async def test_login(fake_org):
    token = await fake_org.client_credentials_flow().fetch_token()
```

The fixture is async and needs pytest-asyncio. Without it this module still imports cleanly
(it is loaded into every pytest run of every project that installs the package), and using
the fixture fails with a message saying what to install. For the same reason the fake org
itself (and aiohttp's server) is imported only when a test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._org import FakeSalesforceOrg

__all__: list[str] = []

try:
    import pytest_asyncio
except ImportError:

    @pytest.fixture(name="fake_org")
    def _fake_org_needs_pytest_asyncio() -> FakeSalesforceOrg:
        """Fail: the ``fake_org`` fixture needs pytest-asyncio."""
        pytest.fail(
            "the fake_org fixture is async and needs pytest-asyncio: "
            "pip install pytest-asyncio (or sfoauth-async[test])",
            pytrace=False,
        )

else:

    @pytest_asyncio.fixture(name="fake_org")
    async def _fake_org() -> AsyncIterator[FakeSalesforceOrg]:
        """A started default `FakeSalesforceOrg`, closed after the test.

        Example:
            ```python
            async def test_versions(fake_org):
                async with aiohttp.ClientSession() as http:
                    async with http.get(fake_org.my_domain_url + "/services/data/") as r:
                        assert r.status == 200
            ```
        """
        from ._org import FakeSalesforceOrg  # noqa: PLC0415 - only for tests that use it

        async with FakeSalesforceOrg() as org:
            yield org
