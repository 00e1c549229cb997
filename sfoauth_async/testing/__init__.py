"""An embedded fake Salesforce org for tests: real HTTP on 127.0.0.1, on your event loop.

```python
from sfoauth_async.testing import FakeSalesforceOrg, Fault

async with FakeSalesforceOrg() as org:
    org.faults.token.push(Fault.html(503))  # the first token request meets maintenance
    token = await org.client_credentials_flow().fetch_token()
    assert org.stats.token_requests["client_credentials"] == 2
```

Two sites on two ports: ``org.login_url`` plays ``login.salesforce.com`` (OAuth only) and
``org.my_domain_url`` the org's My Domain (OAuth and REST). The pytest plugin (installed with
the package) provides a ``fake_org`` fixture, and `TokenStoreContract` runs the store contract
tests against a `TokenStore` of your own. See ``docs/testing.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._contract import TokenStoreContract
    from ._faults import Fault, FaultQueue, FaultQueues
    from ._model import FakeApp, FakeUser
    from ._org import FakeOrgStats, FakeSalesforceOrg

__all__ = [
    "FakeApp",
    "FakeOrgStats",
    "FakeSalesforceOrg",
    "FakeUser",
    "Fault",
    "FaultQueue",
    "FaultQueues",
    "TokenStoreContract",
]

# Imported on first use, not with the package: the pytest plugin lives in this package and is
# loaded into every pytest run of every project that installs sfoauth_async, and the fake org
# brings aiohttp's server with it.
_HOMES = {
    "FakeApp": "._model",
    "FakeOrgStats": "._org",
    "FakeSalesforceOrg": "._org",
    "FakeUser": "._model",
    "Fault": "._faults",
    "FaultQueue": "._faults",
    "FaultQueues": "._faults",
    "TokenStoreContract": "._contract",
}


def __getattr__(name: str) -> Any:  # noqa: ANN401 - any of the public classes
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    # Show the public path in reprs, tracebacks and docs (httpx does the same).
    value.__module__ = __name__
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
