"""The least we change in peer libraries so they talk to a loopback org; nothing else.

Every patch lives here and is listed in ``benchmarks/README.md``. They only redirect where
requests go; no token, retry or concurrency logic of a peer is touched.
"""

from __future__ import annotations

from typing import Any

# simple-salesforce builds https://{domain}.salesforce.com from `domain`; we give it this one.
FAKE_DOMAIN = "bench.my"
FAKE_HOST = f"{FAKE_DOMAIN}.salesforce.com"


def aiosalesforce_class() -> type[Any]:
    """aiosalesforce's `Salesforce` with the ``*.my.salesforce.com`` check on base_url removed.

    Its ``base_url`` setter rejects any URL but ``https://<name>[.sandbox|.develop]
    .my.salesforce.com``; the subclass stores the URL as given. The rest is the real class.
    """
    from aiosalesforce import Salesforce  # noqa: PLC0415 - optional peer

    class LoopbackSalesforce(Salesforce):  # type: ignore[misc]
        @property
        def base_url(self) -> str:
            return self._loopback_base_url

        @base_url.setter
        def base_url(self, value: str) -> None:
            self._loopback_base_url = value.rstrip("/")

    return LoopbackSalesforce


def loopback_requests_session(my_domain_url: str, pool_size: int) -> Any:
    """A `requests.Session` whose transport sends simple-salesforce's https URLs to loopback.

    simple-salesforce hardcodes ``https://{domain}.salesforce.com`` for logins and
    ``https://{instance}`` for the API (it strips the scheme of the token response's
    ``instance_url``). The adapter, mounted on ``https://`` and ``http://``, rewrites
    ``https://bench.my.salesforce.com`` to the org's My Domain URL and ``https://127.0.0.1:*``
    to ``http://127.0.0.1:*`` just before sending. Its pool holds ``pool_size`` connections
    (requests keeps 10 by default, fewer than our 50 threads).
    """
    import requests  # noqa: PLC0415 - optional peer
    from requests.adapters import HTTPAdapter  # noqa: PLC0415

    login = f"https://{FAKE_HOST}"

    class LoopbackAdapter(HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            url = request.url or ""
            if url.startswith(login):
                request.url = my_domain_url + url[len(login) :]
            elif url.startswith("https://127.0.0.1:"):
                request.url = "http://" + url[len("https://") :]
            return super().send(request, **kwargs)

    session = requests.Session()
    adapter = LoopbackAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
