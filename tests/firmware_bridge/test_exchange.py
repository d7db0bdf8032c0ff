"""The shared request/reply helper: one write, its replies in order within a timeout, never a
reply taken for another packet's, never two packets interleaved, and out of step after any
failure until a handshake says otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from firmware_bridge.errors import DeviceTimeout, ProtocolError, TransportClosed
from firmware_bridge.exchange import Exchange, ReplyTimeout
from firmware_bridge.vtime import VirtualTimeLoop

T = TypeVar("T")


class Wire:
    """A byte stream whose device answers each write with ``answer(data)`` replies, after
    ``delay_s`` (None: at once, from inside the write)."""

    def __init__(
        self,
        answer: Callable[[bytes], list[str]] | None = None,
        delay_s: float | None = 0.01,
    ) -> None:
        self.answer = answer or (lambda data: ["ack"] * len(data))
        self.delay_s = delay_s
        self.writes: list[bytes] = []
        self.events: list[str] = []  # writes and deliveries, in order
        self.delivered: list[bool] = []
        self.exchange: Exchange[str, str] = Exchange(self.write)

    async def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.events.append(f"write {data.hex()}")
        replies = self.answer(data)
        if self.delay_s is None:
            self.deliver(replies)
        elif replies:
            asyncio.get_running_loop().call_later(self.delay_s, self.deliver, replies)

    def deliver(self, replies: list[str]) -> None:
        for reply in replies:
            self.events.append(f"reply {reply}")
            self.delivered.append(self.exchange.deliver(reply))


@pytest.fixture
def loop() -> Iterator[VirtualTimeLoop]:
    loop = VirtualTimeLoop(start_s=10.0)
    yield loop
    loop.close()


def run(loop: VirtualTimeLoop, coro: Coroutine[Any, Any, T]) -> T:
    return loop.run_until_complete(coro)


def test_one_write_and_its_replies_in_order(loop: VirtualTimeLoop) -> None:
    wire = Wire(lambda data: [f"r{b}" for b in data])
    replies = run(loop, wire.exchange.request(b"\x01\x02\x03", ["one", "two", "three"], 0.2))
    assert replies == ["r1", "r2", "r3"]
    assert wire.writes == [b"\x01\x02\x03"]  # a whole frame goes out in one write


def test_a_reply_that_comes_inside_the_write_is_taken(loop: VirtualTimeLoop) -> None:
    wire = Wire(delay_s=None)
    assert run(loop, wire.exchange.request(b"\x01", ["it"], 0.2)) == ["ack"]


def test_nothing_expected_is_the_write_alone(loop: VirtualTimeLoop) -> None:
    wire = Wire(lambda data: [])
    start = loop.time()
    assert run(loop, wire.exchange.request(b"\x09", [], 0.2)) == []
    run(loop, wire.exchange.write(b"\x0a"))
    assert wire.writes == [b"\x09", b"\x0a"]
    assert loop.time() == start  # nothing was waited for


def test_a_missing_reply_times_out_naming_what_it_answers(loop: VirtualTimeLoop) -> None:
    wire = Wire(lambda data: ["first"])  # the second reply never comes
    wire.exchange.mark_in_step()
    start = loop.time()
    with pytest.raises(ReplyTimeout) as caught:
        run(loop, wire.exchange.request(b"\x01\x02", ["the first", "the second"], 0.2))
    assert isinstance(caught.value, DeviceTimeout)
    assert caught.value.waiting_for == "the second"
    assert caught.value.replies == ["first"]
    assert str(caught.value) == "no reply within 200 ms to the second"
    assert loop.time() - start == pytest.approx(0.2)  # counted from the write
    assert not wire.exchange.in_step


def test_a_late_reply_is_never_taken_for_the_next_packet(loop: VirtualTimeLoop) -> None:
    wire = Wire(lambda data: ["late"] if data == b"\x01" else ["on time"], delay_s=0.3)
    with pytest.raises(ReplyTimeout):
        run(loop, wire.exchange.request(b"\x01", ["slow"], 0.2))
    wire.delay_s = 0.01

    async def next_request() -> list[str]:
        await asyncio.sleep(0.2)  # the late reply arrives while nothing waits
        return await wire.exchange.request(b"\x02", ["next"], 0.2)

    assert run(loop, next_request()) == ["on time"]
    assert wire.delivered == [False, True]  # the late one was refused, not kept


def test_replies_while_nothing_waits_are_refused() -> None:
    exchange: Exchange[str, str] = Exchange(lambda data: asyncio.sleep(0))
    assert exchange.deliver("stray") is False
    assert exchange.fail(ProtocolError("garbage")) is False
    assert exchange.waiting_for is None


def test_a_reply_the_check_refuses_fails_the_request(loop: VirtualTimeLoop) -> None:
    def check(expected: str, reply: str) -> BaseException | None:
        return None if reply == expected else ProtocolError(f"{expected} got {reply}")

    wire = Wire(lambda data: ["ack", "nack", "ack"])
    wire.exchange = Exchange(wire.write, check)
    wire.exchange.mark_in_step()
    with pytest.raises(ProtocolError, match="ack got nack"):
        run(loop, wire.exchange.request(b"\x01\x02\x03", ["ack", "ack", "ack"], 0.2))
    assert not wire.exchange.in_step
    assert wire.delivered == [True, True, False]  # the request is over at the refused one


def test_fail_ends_the_waiting_request_at_once(loop: VirtualTimeLoop) -> None:
    wire = Wire(lambda data: [])

    async def lose_the_link() -> None:
        task = asyncio.ensure_future(wire.exchange.request(b"\x01", ["an ack"], 5.0))
        await asyncio.sleep(0.01)
        assert wire.exchange.waiting_for == "an ack"
        assert wire.exchange.fail(TransportClosed("link lost")) is True
        with pytest.raises(TransportClosed, match="link lost"):
            await task

    start = loop.time()
    run(loop, lose_the_link())
    assert loop.time() - start == pytest.approx(0.01)
    assert wire.exchange.waiting_for is None


def test_a_failed_write_leaves_it_out_of_step_and_nothing_waiting(loop: VirtualTimeLoop) -> None:
    async def broken(data: bytes) -> None:
        raise TransportClosed("port closed")

    exchange: Exchange[str, str] = Exchange(broken)
    exchange.mark_in_step()
    for expect in ([], ["an ack"]):
        exchange.mark_in_step()
        with pytest.raises(TransportClosed):
            run(loop, exchange.request(b"\x01", expect, 0.2))
        assert not exchange.in_step
        assert exchange.deliver("ack") is False


def test_in_step_only_after_mark_and_until_a_failure(loop: VirtualTimeLoop) -> None:
    wire = Wire()
    assert not wire.exchange.in_step  # not until a handshake says so
    run(loop, wire.exchange.request(b"\x01", ["ack"], 0.2))
    assert not wire.exchange.in_step  # a plain reply does not bring it in step
    wire.exchange.mark_in_step()
    run(loop, wire.exchange.request(b"\x01", ["ack"], 0.2))
    assert wire.exchange.in_step


def test_a_cancelled_request_is_out_of_step(loop: VirtualTimeLoop) -> None:
    wire = Wire(lambda data: [])
    wire.exchange.mark_in_step()

    async def cancelled() -> None:
        async with asyncio.timeout(0.05):
            await wire.exchange.request(b"\x01", ["an ack"], 1.0)

    with pytest.raises(TimeoutError):
        run(loop, cancelled())
    assert not wire.exchange.in_step
    assert wire.exchange.waiting_for is None


def test_two_requests_never_interleave(loop: VirtualTimeLoop) -> None:
    wire = Wire(lambda data: [f"r{b}" for b in data], delay_s=0.05)

    async def both() -> tuple[list[str], list[str]]:
        first = asyncio.ensure_future(wire.exchange.request(b"\x01\x02", ["a", "b"], 0.2))
        second = asyncio.ensure_future(wire.exchange.request(b"\x03", ["c"], 0.2))
        return await first, await second

    assert run(loop, both()) == (["r1", "r2"], ["r3"])
    assert wire.events == ["write 0102", "reply r1", "reply r2", "write 03", "reply r3"]


def test_the_next_packet_waits_for_a_timeout_not_beyond(loop: VirtualTimeLoop) -> None:
    wire = Wire(lambda data: [] if data == b"\x01" else ["ok"])
    written_at: list[float] = []
    real_write = wire.write

    async def timed(data: bytes) -> None:
        written_at.append(loop.time())
        await real_write(data)

    wire.exchange = Exchange(timed)

    async def both() -> list[str]:
        first = asyncio.ensure_future(wire.exchange.request(b"\x01", ["silent"], 0.2))
        second = asyncio.ensure_future(wire.exchange.request(b"\x02", ["ok"], 0.2))
        with pytest.raises(ReplyTimeout):
            await first
        return await second

    assert run(loop, both()) == ["ok"]
    assert written_at[1] - written_at[0] == pytest.approx(0.2)
