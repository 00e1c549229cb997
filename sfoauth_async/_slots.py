"""`Slots`: a semaphore whose uncontended take costs no ``await``, for the request path.

`AsyncSession` takes a slot on every request, before a bearer token is attached.
``asyncio.Semaphore.acquire`` is a coroutine even when a slot is free; here a free slot is
taken synchronously (`Slots.take_now`), and only a request that must wait awaits
`Slots.take`. Waiters are served first come, first served, and a freed slot goes straight
to the next waiter.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Slots"]


class Slots:
    """``count`` slots for concurrent work.

    Example:
        ```python
        slots = Slots(100)
        if not slots.take_now():
            await slots.take()
        try:
            ...
        finally:
            slots.give()
        ```
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        """Take a free slot if there is one and nobody waits for it; never waits."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Wait for a slot: the next one given back goes to the longest waiter."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Give a slot back: to the next live waiter, else to the free ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
