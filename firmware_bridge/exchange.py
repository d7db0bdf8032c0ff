"""Request/reply over a byte stream: write a packet, then await its replies, with a timeout.

The ET-312 and the Pulse Pal both answer a host packet over a serial byte stream with replies
of a known shape (an ACK, a read value, a handshake), and both must refuse to go on when a
reply does not come in time. ``Exchange`` is that one pattern:

- ``request(data, expect, timeout_s)`` writes ``data`` in one write and waits until one reply
  per item of ``expect`` came back, in order, for at most ``timeout_s`` from the end of the
  write. ``expect`` names what each reply answers (the driver's own type: a message, a
  description); it may be empty (nothing answers: the write alone). A frame's worth of
  messages can go out in one write and have its acknowledgements awaited together.
- The driver's receiver hands each parsed reply to ``deliver`` (False: nobody was waiting for
  it, e.g. a reply that came after its timeout; the driver decides what that means) and
  each failure to ``fail`` (a lost link, a garbled reply while one is awaited). An optional
  ``check`` refuses a reply of the wrong shape for what it answers, which fails the request.
- Every request holds ``lock`` from its write to its last reply (or its failure), so two
  packets never interleave on the wire and the next packet never goes out while replies to
  the last are still awaited. (Drivers still hold their own write lock around sequences of
  requests, such as connect or one frame's writes; this lock is then never contended.)
  Replies that come while no request waits are refused, never kept for the next one.
- A request that fails in any way (the write, a timeout, a refused reply, ``fail``,
  cancellation) leaves the exchange **out of step** (``in_step`` False) and raises. A late
  reply may still be on its way and would be taken for the next request's, and a packet cut
  short may take the next bytes as its own, so a driver that trusts replies only when they
  are in step (the Pulse Pal) refuses output until ``mark_in_step()`` after a fresh
  handshake. A driver that re-synchronises by itself (the ET-312: a wrong reply is a fault,
  and connect syncs again) need not look at it.

This module never decides what a packet says or what a reply means, and never reads the
transport: it only writes, and is fed by the driver's receiver. It lives on the IO loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from firmware_bridge.errors import DeviceTimeout

__all__ = ["Exchange", "ReplyCheck", "ReplyTimeout"]

E = TypeVar("E")  # what a reply answers (names it in errors)
R = TypeVar("R")  # a reply, as the driver's parser makes it

#: ``check(expected, reply)``: None if ``reply`` is a valid answer to ``expected``, else the
#: error that fails the request.
ReplyCheck = Callable[[E, R], BaseException | None]


class ReplyTimeout(DeviceTimeout, Generic[E, R]):
    """No reply to ``waiting_for`` within ``timeout_s``; ``replies`` are those that came."""

    def __init__(self, waiting_for: E, replies: list[R], timeout_s: float) -> None:
        super().__init__(f"no reply within {timeout_s * 1000:.0f} ms to {waiting_for}")
        self.waiting_for = waiting_for
        self.replies = replies
        self.timeout_s = timeout_s


@dataclass
class _Pending(Generic[E, R]):
    """A request whose replies are being collected."""

    expect: list[E]
    future: asyncio.Future[list[R]]
    replies: list[R] = field(default_factory=list)

    @property
    def next(self) -> E:
        return self.expect[len(self.replies)]


class Exchange(Generic[E, R]):
    """One request at a time over a byte stream; see the module docstring."""

    def __init__(
        self, write: Callable[[bytes], Awaitable[None]], check: ReplyCheck[E, R] | None = None
    ) -> None:
        self._write = write
        self._check = check
        self._pending: _Pending[E, R] | None = None
        #: held by every request, from its write to its last reply
        self.lock = asyncio.Lock()
        #: every reply so far came back to the request that asked for it; False from the
        #: first failed request until ``mark_in_step``
        self.in_step = False

    def mark_in_step(self) -> None:
        """Replies are in step again (a handshake's answer cannot be stale)."""
        self.in_step = True

    @property
    def waiting_for(self) -> E | None:
        """What the next reply answers, while a request waits for it; else None."""
        pending = self._pending
        if pending is None or pending.future.done():
            return None
        return pending.next

    async def request(self, data: bytes, expect: Sequence[E], timeout_s: float) -> list[R]:
        """Write ``data``, then return one reply per item of ``expect``, in order.

        Raises ``ReplyTimeout`` when they did not all come within ``timeout_s`` of the write,
        the ``check``'s error for a refused reply, or what ``fail`` was given; any failure
        leaves the exchange out of step."""
        async with self.lock:
            try:
                if not expect:
                    await self._write(data)
                    return []
                future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
                pending = _Pending(list(expect), future)
                self._pending = pending
                try:
                    await self._write(data)
                    try:
                        async with asyncio.timeout(timeout_s):
                            return await future
                    except TimeoutError:
                        raise ReplyTimeout(pending.next, list(pending.replies), timeout_s) from None
                finally:
                    self._pending = None
            except BaseException:
                self.in_step = False
                raise

    async def write(self, data: bytes) -> None:
        """Write ``data`` that nothing answers (under the lock)."""
        await self.request(data, (), 0.0)

    def deliver(self, reply: R) -> bool:
        """A reply from the device; False if no request was waiting for one."""
        pending = self._pending
        if pending is None or pending.future.done():
            return False
        if self._check is not None:
            refused = self._check(pending.next, reply)
            if refused is not None:
                pending.future.set_exception(refused)
                return True
        pending.replies.append(reply)
        if len(pending.replies) == len(pending.expect):
            pending.future.set_result(pending.replies)
        return True

    def fail(self, error: BaseException) -> bool:
        """Fail the waiting request with ``error``; False if none was waiting."""
        pending = self._pending
        if pending is None or pending.future.done():
            return False
        pending.future.set_exception(error)
        return True
