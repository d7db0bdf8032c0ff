"""Waits without an end on the IO loop: every one of them must end the session with zero output
and a clear reason, within a bounded time.

Virtual time, in-process links. Where a test finds a hang it unblocks the IO loop itself
before failing, so the rest of the run is not held up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator

import pytest

from acustim import Engine
from firmware_bridge.link import SimulatorLink
from firmware_bridge.streamer import StreamResult
from tests.programs import TWO_CHANNELS


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine(virtual_time=True, records=False) as e:
        yield e


def _link(device: object) -> SimulatorLink:
    transport = device.transport  # type: ignore[attr-defined]
    assert isinstance(transport, SimulatorLink)
    return transport


def test_the_streamer_never_spins_forever_on_virtual_time(engine: Engine) -> None:
    """Coyote 3 frames are due at 0.1 * i. Frame 34 is due at 33 * 0.1 = 3.3000000000000003;
    a timer of another task at 3.3 makes the loop fire the streamer's timer at 3.3 (within the
    loop's clock resolution). ``_wait_until`` then busy-waits for ``loop.time() >= deadline``,
    which never comes on a virtual clock: the IO thread spins for ever."""
    device = engine.connect("sim:coyote3")
    sessions = []

    async def scenario() -> None:
        # started here, on the IO loop: from the test's thread, virtual time could run the
        # whole 60 s program before the scenario began
        sessions.append(device.start(TWO_CHANNELS, levels={"A": 10}))
        await asyncio.sleep(3.0)
        await asyncio.sleep(0.3)  # lands at 3.3, a hair before the frame deadline
        await asyncio.sleep(1.0)
        sessions[0].runner.stop("test over")  # and stopped on the loop, for the same reason

    future = engine.io.submit(scenario())
    try:
        future.result(timeout=10)
    except concurrent.futures.TimeoutError:
        streamer = sessions[0].runner.streamer
        assert streamer is not None
        # unblock the spinning IO thread (the spin checks this field) so teardown can run
        streamer._result = StreamResult("fault", "test: unblocked a spinning loop")
        pytest.fail("the IO loop spun for ever in Streamer._wait_until (virtual time)")
    assert sessions[0].wait(10).outcome == "stopped"


def test_a_device_that_never_acknowledges_during_connect_cannot_hang_the_session(
    engine: Engine,
) -> None:
    """A BLE device that takes the connection but never acknowledges a write: connect()
    writes BF with no time limit, so the session never ends, not even after stop()."""
    device = engine.connect("sim:coyote3")
    _link(device).hang_writes = True
    session = device.start(TWO_CHANNELS, levels={"A": 10})
    engine.io.call(lambda: None)  # let connect() start
    session.stop("practitioner pressed STOP while connecting")
    try:
        result = session.wait(5)
    except concurrent.futures.TimeoutError:
        session._future.cancel()  # clean up the stuck task so the engine can close
        pytest.fail("the session hangs in connect(): stop() cannot end it and wait() never returns")
    assert result.outcome in ("stopped", "fault")


def test_a_reconnect_that_hangs_still_ends_the_session(engine: Engine) -> None:
    """reconnect_s = 2 and a 10 s session. The link drops at 3 s and the device then takes
    the connection but never acknowledges a write. The session must end (a fault) once the
    reconnect time is over, or at the latest at its own time limit."""
    device = engine.connect("sim:coyote3")
    link = _link(device)
    session = device.start(TWO_CHANNELS, levels={"A": 10}, duration_s=10.0, reconnect_s=2.0)
    marks: dict[str, float] = {}

    async def drop() -> None:
        await asyncio.sleep(3.013)
        link.hang_writes = True
        link.drop("link lost (test)")

    engine.io.run(drop(), timeout_s=10)
    try:
        result = session.wait(10)  # virtual time runs far past 10 s in this much wall time
    except concurrent.futures.TimeoutError:
        marks["now"] = engine.io.call(lambda: asyncio.get_running_loop().time())
        engine.io.call(lambda: session.runner.stop("test cleanup"))
        session.wait(10)
        pytest.fail(
            f"a 10 s session with reconnect_s=2 is still running at t={marks['now']:.0f} s: "
            "the reconnect's connect() has no time limit and a link that is down skips the "
            "end-of-session check"
        )
    assert result.outcome == "fault"
