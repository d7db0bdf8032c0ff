"""The session time cap ends a session whatever the link does; one session at a time per device.

Judged on the simulator's record (what the device delivered) and on how the session ended.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from acustim import Engine
from acustim.engine import DeviceBusyError, Session
from acustim.events import EventKind, SessionEvent
from firmware_bridge.link import ByteStreamLink, SimulatorLink
from safety import LimitError
from tests.programs import TWO_CHANNELS


def _lose_link_for_good(
    engine: Engine,
    link: SimulatorLink | ByteStreamLink,
    start: Callable[[], Session],
    at_s: float,
    until_s: float,
) -> tuple[Session, float]:
    """Start the session (``start``) and drop its link ``at_s`` later, for good; all on the IO
    loop, so virtual time cannot run ahead of the scenario. Returns the session and the loop
    time it started."""
    started: list[tuple[Session, float]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        started.append((start(), loop.time()))
        await asyncio.sleep(at_s)
        link.refuse_open = True
        link.drop("out of reach (test)")
        await asyncio.sleep(until_s - at_s)

    engine.io.run(scenario(), timeout_s=60)
    return started[0]


@pytest.mark.parametrize("reconnect_s", [600.0, 3600.0])
def test_the_time_cap_ends_a_session_that_is_still_reconnecting(reconnect_s: float) -> None:
    """Before: with reconnect_s=600 and the link lost at 15 s of a 20 s session, the session
    ended at 615 s (and never with a longer reconnect time)."""
    ended_at: list[float] = []
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:coyote3")
        link = device.transport
        assert isinstance(link, SimulatorLink)

        def notice(event: SessionEvent) -> None:
            if event.kind == EventKind.END:
                ended_at.append(asyncio.get_running_loop().time())

        session, t0 = _lose_link_for_good(
            engine,
            link,
            lambda: device.start(
                TWO_CHANNELS,
                levels={"A": 10},
                duration_s=20,
                reconnect_s=reconnect_s,
                on_notice=notice,
            ),
            at_s=15.0,
            until_s=30.0,
        )
        result = session.wait(5)
    assert result.outcome == "fault"
    assert "time ran out" in result.reason
    assert ended_at and ended_at[0] - t0 <= 21.0, (ended_at, t0)


def test_a_box_that_runs_on_is_named_at_once_when_its_link_is_lost() -> None:
    """The Pulse Pal keeps its trains running when the host is gone: the practitioner is told
    to switch it off when the link goes, not only at the end."""
    notices: list[tuple[str, str]] = []
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:pulsepal")
        link = device.transport
        assert isinstance(link, ByteStreamLink)
        session, t0 = _lose_link_for_good(
            engine,
            link,
            lambda: device.start(
                TWO_CHANNELS,
                levels={"A": 200},
                duration_s=20,
                reconnect_s=600.0,
                on_notice=lambda e: notices.append((e.kind, e.message)),
            ),
            at_s=15.0,
            until_s=25.0,
        )
        result = session.wait(5)
        delivered_at_end = device.simulator.record.max_output("A", t0 + 19.0, t0 + 25.0)
    assert result.outcome == "fault"
    assert "switch it off at the device" in result.reason
    warnings = [m for k, m in notices if k == "runs_on"]
    assert warnings and "switch it off at the device" in warnings[0]
    assert delivered_at_end > 0  # the box really does run on: that is why the warning matters


def test_a_bad_reconnect_time_is_refused_before_anything_is_sent() -> None:
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:coyote3")
        for bad in (float("nan"), -1.0, float("inf")):
            with pytest.raises(LimitError, match="reconnect time"):
                device.start(TWO_CHANNELS, levels={"A": 10}, reconnect_s=bad)
        assert device.simulator.record.intervals("A") == []


class _SlowLevels(dict[str, int]):
    """Levels whose reading holds the first start() inside its checks until released."""

    def __init__(self, levels: dict[str, int], entered: threading.Event, go: threading.Event):
        super().__init__(levels)
        self.entered, self.go = entered, go

    def __iter__(self) -> Iterator[str]:
        self.entered.set()
        self.go.wait(10)
        return super().__iter__()


def test_two_concurrent_starts_run_one_session_and_the_second_is_refused() -> None:
    entered, go = threading.Event(), threading.Event()
    started: list[object] = []
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:coyote3")
        first = threading.Thread(
            target=lambda: started.append(
                device.start(TWO_CHANNELS, levels=_SlowLevels({"A": 10}, entered, go), duration_s=5)
            )
        )
        first.start()
        assert entered.wait(10)
        with pytest.raises(DeviceBusyError, match="already running a session"):
            device.start(TWO_CHANNELS, levels={"A": 10}, duration_s=5)
        go.set()
        first.join(10)
        assert len(started) == 1
        assert device.session is started[0]
        assert device.session.wait(30).outcome == "completed"
        # once it has ended, the device takes a new session
        assert device.start(TWO_CHANNELS, levels={"A": 5}, duration_s=2).wait(30).outcome == (
            "completed"
        )


def test_the_coyote3_wheel_during_a_pause_delivers_nothing() -> None:
    """Before: the wheel turned during a pause delivered 39.6 du for 63 ms, because the
    waveform kept its intensity while only the strength was zero."""
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:coyote3")
        sim = device.simulator
        marks: dict[str, float] = {}

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            session = device.start(TWO_CHANNELS, levels={"A": 40}, rise_fraction_per_s=0.05)
            await asyncio.sleep(6.0)
            session.pause()
            await asyncio.sleep(1.0)
            marks["wheel"] = loop.time()
            sim.turn_wheel("A", 40)
            await asyncio.sleep(2.0)
            marks["after"] = loop.time()
            session.stop("test over")

        engine.io.run(scenario(), timeout_s=30)
        delivered = sim.record.max_output("A", marks["wheel"], marks["after"])
    assert delivered == 0.0, f"{delivered} du delivered after the wheel during a pause"
