"""Bounds on what the other side may make us read, inflate and parse.

A token endpoint (or a proxy in front of it, or a server that answers 401) decides how big
its answer is, how it is compressed and how deeply its JSON nests. Unbounded, a 200 KB gzip
of 200 MB of zeros takes 200 MB of memory, and a few kilobytes of ``[[[[...`` blow the
parser's recursion limit. Every body the library reads from such a server goes through
`read_capped`, and every JSON document through `loads_limited`; past a limit the answer is an
`InvalidTokenResponseError` (or ``ValueError`` from `loads_limited`), never a crash.
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING

from ._errors import InvalidTokenResponseError
from ._untrusted import printable

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_TOKEN_CHARS",
    "loads_limited",
    "read_capped",
    "read_kept",
]

MAX_BODY_BYTES = 1024 * 1024
"""The most bytes of an OAuth answer (or a 401 body) read, after decompression: 1 MiB.

Salesforce's token responses are about 2 KB, user info about 3 KB.
"""

MAX_TOKEN_CHARS = 16 * 1024
"""The longest access or refresh token accepted: 16 KiB.

Session ids are about 112 characters and JWT-format access tokens a few kilobytes; a token
that long would not fit in a request header anyway.
"""

MAX_JSON_DEPTH = 32
"""The deepest nesting of objects and arrays accepted in a JSON answer (Salesforce's is 3)."""

_CHUNK_BYTES = 64 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
_INFLATED_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})


def _where(resp: aiohttp.ClientResponse) -> str:
    # Without user info, query or fragment: a message must not carry what a caller put there.
    return str(resp.url.with_user(None).with_query(None).with_fragment(None))


def _too_large(resp: aiohttp.ClientResponse, limit_bytes: int) -> InvalidTokenResponseError:
    where = _where(resp)
    return InvalidTokenResponseError(
        f"{where} answered HTTP {resp.status} with a body larger than {limit_bytes} bytes "
        f"(after decompression); it was not read further. A Salesforce OAuth answer is a few "
        f"kilobytes: check that the URL is a Salesforce login or My Domain URL and that no "
        f"proxy rewrites the answer.",
        status=resp.status,
        url=where,
    )


def _undecodable(resp: aiohttp.ClientResponse, what: str) -> InvalidTokenResponseError:
    where = _where(resp)
    return InvalidTokenResponseError(
        f"{where} answered HTTP {resp.status} with a body that cannot be decoded ({what}). "
        f"Check that no proxy rewrites the answer.",
        status=resp.status,
        url=where,
    )


class _Inflater:
    """Inflate gzip or deflate chunk by chunk, never past the output budget."""

    def __init__(self, encoding: str, limit_bytes: int) -> None:
        self._encoding = encoding
        self._limit_bytes = limit_bytes
        self._head = b""
        self._zlib: zlib._Decompress | None = None
        self.output = bytearray()

    def _start(self, first: bytes) -> zlib._Decompress:
        if self._encoding != "deflate":
            return zlib.decompressobj(_GZIP_WBITS)
        # "deflate" means zlib-wrapped (RFC 9110), but some servers send raw deflate: a zlib
        # stream opens with a CMF byte whose low nibble is 8 and a 16-bit multiple of 31.
        wrapped = (first[0] & 0x0F) == 8 and (first[0] * 256 + first[1]) % 31 == 0
        return zlib.decompressobj(_ZLIB_WBITS if wrapped else _RAW_DEFLATE_WBITS)

    def feed(self, data: bytes) -> bool:
        """Inflate ``data``; ``False`` as soon as the output passes the budget."""
        if self._zlib is None:
            self._head += data
            if len(self._head) < 2:  # the two bytes that tell zlib from raw deflate
                return True
            data, self._head = self._head, b""
            self._zlib = self._start(data)
        while data:
            if self._zlib.eof:
                if self._encoding == "deflate":
                    break  # trailing bytes after the stream are not inflated
                # Concatenated gzip members are legal (RFC 1952).
                self._zlib = zlib.decompressobj(_GZIP_WBITS)
            # max_length bounds what one call may produce: this is what keeps a bomb small.
            budget = self._limit_bytes + 1 - len(self.output)
            self.output += self._zlib.decompress(data, budget)
            if len(self.output) > self._limit_bytes:
                return False
            data = self._zlib.unconsumed_tail or (self._zlib.unused_data if self._zlib.eof else b"")
        return True

    @property
    def complete(self) -> bool:
        """Whether the compressed stream ended properly."""
        return self._zlib is not None and self._zlib.eof


async def read_capped(
    resp: aiohttp.ClientResponse, *, limit_bytes: int = MAX_BODY_BYTES, inflate: bool = False
) -> bytes:
    """Read a response body, refusing to hold more than ``limit_bytes`` of it.

    A ``Content-Length`` above the limit is refused before anything is read; otherwise the
    body is read in chunks and given up as soon as it passes the limit (the connection is
    then closed, not reused).

    Args:
        resp: The response, not yet read.
        limit_bytes: The most bytes of (decompressed) body accepted.
        inflate: ``True`` when the request was sent with ``auto_decompress=False``: a
            ``gzip`` or ``deflate`` body is then inflated here, at most ``limit_bytes`` of
            output at any time, so a decompression bomb costs no more than the limit.
            ``False`` (the default) for a body aiohttp already decoded; aiohttp inflates
            in bounded steps too (since 3.13.3), and the limit applies to what it hands over.

    Returns:
        The body, decompressed.

    Raises:
        InvalidTokenResponseError: The body is larger than ``limit_bytes``, or its
            compression is unknown or broken.

    Example:
        ```python
        async with http.post(token_url, data=form, auto_decompress=False) as resp:
            body = await read_capped(resp, limit_bytes=MAX_BODY_BYTES, inflate=True)
        ```
    """
    if resp.content_length is not None and resp.content_length > limit_bytes:
        resp.close()
        raise _too_large(resp, limit_bytes)
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if not inflate or encoding in ("", "identity"):
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
            body += chunk
            if len(body) > limit_bytes:
                resp.close()
                raise _too_large(resp, limit_bytes)
        return bytes(body)
    if encoding not in _INFLATED_ENCODINGS:
        resp.close()
        raise _undecodable(resp, f"Content-Encoding '{printable(encoding)}' was not asked for")
    inflater = _Inflater(encoding, limit_bytes)
    received = 0
    try:
        async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
            # The compressed size is bounded too: a body can be too large before inflating.
            received += len(chunk)
            if received > limit_bytes or not inflater.feed(chunk):
                resp.close()
                raise _too_large(resp, limit_bytes)
    except zlib.error:
        resp.close()
        raise _undecodable(resp, f"broken {encoding} data") from None
    if received and not inflater.complete:
        # No bytes at all is an empty body (a 204, an empty revoke answer), not a broken one.
        raise _undecodable(resp, f"truncated {encoding} data")
    return bytes(inflater.output)


async def read_kept(resp: aiohttp.ClientResponse, *, limit_bytes: int = MAX_BODY_BYTES) -> bytes:
    """`read_capped`, keeping the body for the response's own ``read``/``text``/``json``.

    For answers that go back to the caller after we looked at them (a 401 the middleware
    examined). aiohttp keeps a read body in ``ClientResponse._body``; this fills the same
    place, so the caller reads the body we read.

    Example:
        ```python
        body = await read_kept(resp)
        assert await resp.read() == body
        ```
    """
    if resp._body is None:
        resp._body = await read_capped(resp, limit_bytes=limit_bytes)
    return resp._body


def _depth_exceeds(value: object, max_depth: int) -> bool:
    # Iterative, so that checking the depth cannot itself overflow the stack.
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: list[object] = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads_limited(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> object:
    """``json.loads`` that refuses documents nested deeper than ``max_depth``.

    Raises:
        ValueError: Not JSON, or nested too deeply (never ``RecursionError``).

    Example:
        ```python
        assert loads_limited('{"a": [1]}') == {"a": [1]}
        ```
    """
    try:
        value: object = json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None
    if _depth_exceeds(value, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return value
