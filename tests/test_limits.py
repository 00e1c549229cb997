"""`read_capped` and `loads_limited`: bounded reading, inflating and parsing (issue 8, 9)."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sfoauth_async import InvalidTokenResponseError
from sfoauth_async._limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, loads_limited, read_capped

BOMB_BYTES = 64 * 1024 * 1024
# Far below the 64 MiB a bomb inflates to, far above the 1 MiB limit plus aiohttp's buffers.
PEAK_BUDGET_BYTES = 12 * 1024 * 1024

Serve = Callable[..., Awaitable[str]]


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """64 MiB of zeros, gzip-compressed to about 64 KB."""
    return gzip.compress(bytes(BOMB_BYTES), compresslevel=9)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a loopback server; each call to the fixture's function adds a body, gives a URL.

    ``add(body, headers, chunk_bytes=n)`` streams the body in chunks of ``n`` bytes, without a
    Content-Length.
    """
    routes: dict[str, tuple[bytes, dict[str, str], int | None]] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        body, headers, chunk_bytes = routes[request.path]
        if chunk_bytes is None:
            return web.Response(body=body, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for start in range(0, len(body), chunk_bytes):
                await response.write(body[start : start + chunk_bytes])
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client stopped reading: that is the point
        return response

    app = web.Application()
    app.router.add_route("*", "/{name}", handler)
    async with TestServer(app, host="127.0.0.1") as server:

        async def add(
            body: bytes, headers: dict[str, str] | None = None, *, chunk_bytes: int | None = None
        ) -> str:
            path = f"/{len(routes)}"
            routes[path] = (body, headers or {}, chunk_bytes)
            return str(server.make_url(path))

        yield add


async def _read(url: str, *, inflate: bool, limit_bytes: int = MAX_BODY_BYTES) -> bytes:
    async with (
        aiohttp.ClientSession(auto_decompress=not inflate) as http,
        http.get(url) as resp,
    ):
        return await read_capped(resp, limit_bytes=limit_bytes, inflate=inflate)


async def _peak_while(coro: Awaitable[Any]) -> tuple[BaseException | None, int]:
    """Run ``coro``; return what it raised and the peak of Python memory it allocated."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            await coro
        except Exception as exc:  # returned for the test to assert on
            raised: BaseException | None = exc
        else:
            raised = None
        return raised, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- read_capped -----------------------------------------------------------------------------


@pytest.mark.parametrize("inflate", [True, False])
async def test_a_body_within_the_limit_is_read_whole(serve: Serve, inflate: bool):
    """A body up to the limit comes back byte for byte, chunked or not."""
    body = os.urandom(MAX_BODY_BYTES)
    assert await _read(await serve(body), inflate=inflate) == body
    assert await _read(await serve(body, chunk_bytes=4096), inflate=inflate) == body


@pytest.mark.parametrize("chunk_bytes", [None, 65536])
async def test_a_body_over_the_limit_is_refused(serve: Serve, chunk_bytes: int | None):
    """One byte past the limit, with or without a Content-Length: InvalidTokenResponseError."""
    url = await serve(b"x" * (MAX_BODY_BYTES + 1), chunk_bytes=chunk_bytes)
    with pytest.raises(InvalidTokenResponseError, match="larger than 1048576 bytes") as caught:
        await _read(url, inflate=True)
    assert caught.value.status == 200
    assert caught.value.url == url


async def test_the_error_names_the_url_without_its_query(serve: Serve):
    """The message and url attribute drop the query, which may carry anything."""
    url = await serve(b"x" * 100)
    async with aiohttp.ClientSession() as http, http.get(url + "?q=secret-ish") as resp:
        with pytest.raises(InvalidTokenResponseError) as caught:
            await read_capped(resp, limit_bytes=10)
    assert caught.value.url == url
    assert "secret-ish" not in str(caught.value)


@pytest.mark.parametrize("chunk_bytes", [None, 1024])
async def test_a_gzip_bomb_is_never_inflated_past_the_limit(
    serve: Serve, bomb: bytes, chunk_bytes: int | None
):
    """64 MiB of gzip is refused after at most ~1 MiB of output (inflate=True)."""
    url = await serve(bomb, {"Content-Encoding": "gzip"}, chunk_bytes=chunk_bytes)
    raised, peak = await _peak_while(_read(url, inflate=True))
    assert isinstance(raised, InvalidTokenResponseError)
    assert peak < PEAK_BUDGET_BYTES, f"peak {peak} bytes"


async def test_aiohttps_own_inflation_is_bounded_too(serve: Serve, bomb: bytes):
    """With aiohttp inflating (inflate=False, for the middleware), a bomb stays small too."""
    url = await serve(bomb, {"Content-Encoding": "gzip"}, chunk_bytes=1024)
    raised, peak = await _peak_while(_read(url, inflate=False))
    assert isinstance(raised, InvalidTokenResponseError)
    assert peak < PEAK_BUDGET_BYTES, f"peak {peak} bytes"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some send it
    ],
)
async def test_compressed_bodies_are_inflated(serve: Serve, encoding: str, compress: Any):
    """gzip, x-gzip and deflate (zlib-wrapped or raw) are inflated by read_capped."""
    body = json.dumps({"access_token": "00D!x" * 100}).encode()
    url = await serve(compress(body), {"Content-Encoding": encoding}, chunk_bytes=7)
    assert await _read(url, inflate=True) == body


async def test_concatenated_gzip_members_are_one_body(serve: Serve):
    """Two gzip members one after the other inflate to the two parts, joined."""
    url = await serve(gzip.compress(b"abc") + gzip.compress(b"def"), {"Content-Encoding": "gzip"})
    assert await _read(url, inflate=True) == b"abcdef"


async def test_many_members_count_against_the_limit_together(serve: Serve):
    """Small members add up: their total output is what the limit bounds."""
    member = gzip.compress(bytes(300_000))
    url = await serve(member * 4, {"Content-Encoding": "gzip"})
    with pytest.raises(InvalidTokenResponseError, match="larger than"):
        await _read(url, inflate=True)


async def test_a_compressed_body_over_the_limit_is_refused(serve: Serve):
    """Incompressible data over the limit is refused before inflating it all."""
    url = await serve(gzip.compress(os.urandom(MAX_BODY_BYTES + 1)), {"Content-Encoding": "gzip"})
    with pytest.raises(InvalidTokenResponseError, match="larger than"):
        await _read(url, inflate=True)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"this is not gzip at all", "broken gzip"),
        (gzip.compress(b'{"access_token": "x"}')[:-12], "truncated gzip"),
    ],
)
async def test_broken_compression_is_a_typed_error(serve: Serve, body: bytes, reason: str):
    """Broken or truncated gzip is an InvalidTokenResponseError saying so."""
    url = await serve(body, {"Content-Encoding": "gzip"})
    with pytest.raises(InvalidTokenResponseError, match=reason):
        await _read(url, inflate=True)


async def test_an_empty_body_labelled_gzip_is_empty(serve: Serve):
    """No bytes at all under Content-Encoding: gzip is an empty body, not a broken one."""
    assert await _read(await serve(b"", {"Content-Encoding": "gzip"}), inflate=True) == b""


async def test_an_encoding_not_asked_for_is_refused(serve: Serve):
    """A Content-Encoding never asked for (br) cannot be bounded here: refused."""
    url = await serve(b"\x0b\x02\x80hello\x03", {"Content-Encoding": "br"})
    with pytest.raises(InvalidTokenResponseError, match="'br' was not asked for"):
        await _read(url, inflate=True)


# --- loads_limited ---------------------------------------------------------------------------


def test_loads_limited_parses_json():
    """Ordinary JSON parses as json.loads does."""
    assert loads_limited('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}


def test_loads_limited_allows_exactly_the_maximum_depth():
    """MAX_JSON_DEPTH levels parse; one more is a ValueError."""
    deepest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads_limited(deepest) is not None
    with pytest.raises(ValueError, match="nested deeper"):
        loads_limited("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))


@pytest.mark.parametrize("depth", [200, 1_000, 100_000])
def test_loads_limited_never_raises_recursion_error(depth: int):
    """Deep nesting is a ValueError at any depth, never RecursionError."""
    text = '{"a":' * depth + "1" + "}" * depth
    with pytest.raises(ValueError, match="nested deeper"):
        loads_limited(text)


def test_loads_limited_refuses_what_is_not_json():
    """Not JSON is json's own ValueError."""
    with pytest.raises(ValueError, match="Expecting"):
        loads_limited("{not json")
