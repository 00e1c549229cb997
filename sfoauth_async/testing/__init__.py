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
the package) provides a ``fake_org`` fixture. See ``docs/testing.md``.
"""

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
]

# Show the public path in reprs, tracebacks and docs (httpx does the same).
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
