"""The error paths of the end of a session: the link is closed and every device is zeroed,
even when a step before it failed.

Virtual time, in-process links, the simulators as the oracle.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable

import pytest

from acustim import Engine
from acustim.engine import Device
from firmware_bridge.link import ByteStreamLink, SimulatorLink
from tests.programs import TWO_CHANNELS


def _hang_coyote3(device: Device) -> None:
    transport = device.transport
    assert isinstance(transport, SimulatorLink)
    transport.hang_writes = True  # BLE: writes are never acknowledged


def _mute_et312(device: Device) -> None:
    assert isinstance(device.transport, ByteStreamLink)
    device.simulator.stop_answering(True)


@pytest.mark.parametrize(
    ("device_id", "level", "fault"),
    [("coyote3", 10, _hang_coyote3), ("et312", 10, _mute_et312)],
)
def test_a_failed_zero_at_the_end_still_closes_the_link(
    device_id: str, level: int, fault: Callable[[Device], None]
) -> None:
    """The device stops answering and the practitioner presses STOP. The out-of-band zero
    fails (a fault, said clearly), then ``final_zero`` fails too; ``_close_quietly`` must
    still close the link (serial port + reader thread, BLE connection, ET-312 key reset)."""
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect(f"sim:{device_id}")
        session = device.start(TWO_CHANNELS, levels={"A": level})

        async def scenario() -> None:
            await asyncio.sleep(3.013)
            fault(device)
            session.runner.stop("practitioner pressed STOP")

        engine.io.run(scenario(), timeout_s=10)
        result = session.wait(10)
        assert result.outcome == "fault"
        assert not device.transport.is_open, (
            f"{device_id}: the session ended ({result.reason}) but its link is still open"
        )


def test_engine_close_zeroes_every_device_even_when_one_session_hangs() -> None:
    """Two devices on one engine: a Coyote 3 whose session hangs while connecting, and an
    ET-312 (keeps stimulating when the host goes silent) delivering output. ``Engine.close``
    stops the first device, times out waiting for it, and never stops the second: its
    session task is cancelled, ``CancelledError`` passes the ``except Exception`` handlers,
    and no zero is written. The box runs on. (Wall clock: on virtual time the ET-312 session
    would simply run to its end during the 5 s wait.)"""
    engine = Engine(virtual_time=False, records=False)
    hung = engine.connect("sim:coyote3")
    _hang_coyote3(hung)
    hung.start(TWO_CHANNELS, levels={"A": 10})
    box = engine.connect("sim:et312")
    sim = box.simulator
    session = box.start(TWO_CHANNELS, levels={"A": 5}, rise_fraction_per_s=0.05)
    time.sleep(1.5)  # 5 du at 6.35 du/s
    assert engine.io.call(lambda: sim.record.output_at("A", sim.record.end_s - 0.001)) > 0
    # Device.close() of the hung device times out: what follows is the defect
    with contextlib.suppress(concurrent.futures.TimeoutError):
        engine.close()
    end = sim.record.end_s
    delivered = sim.record.output_at("A", end - 0.001)
    muted = sim.peek(0x4083) & 0x02
    outcome = "cancelled" if session._future.cancelled() else session.wait(0).outcome
    assert delivered == 0.0 or muted, (
        f"after Engine.close() the ET-312 still delivers {delivered} du (not muted); "
        f"its session: {outcome}"
    )


class _SlowOpenLink(SimulatorLink):
    """A GATT link whose connect takes a while, as a BLE connect does (seconds). The
    in-process link opens at once; this is the only way to give it a connect time."""

    open_delay_s = 0.0

    async def open(self) -> None:
        if self.open_delay_s:
            await asyncio.sleep(self.open_delay_s)
        await super().open()


def test_a_reconnect_in_progress_does_not_outlive_its_session() -> None:
    """reconnect_s > 0, the link drops, the reconnect's connect is under way (BLE connect
    takes seconds) and the practitioner presses STOP. The session ends and closes the link;
    the reconnect task is not cancelled, finishes its connect afterwards, re-opens the link,
    writes to the device and reports "reconnected" for a session that has ended."""
    from firmware_bridge.link import simulator_factory

    notices: list[tuple[str, str]] = []
    with Engine(virtual_time=True, records=False) as engine:
        link = _SlowOpenLink(factory=simulator_factory("coyote3"), url="sim:coyote3")
        device = engine.connect(link, profile="coyote3")
        session = device.start(
            TWO_CHANNELS,
            levels={"A": 10},
            reconnect_s=5.0,
            on_notice=lambda e: notices.append((e.kind, e.message)),
        )

        async def scenario() -> None:
            await asyncio.sleep(3.013)
            link.open_delay_s = 1.0
            link.drop("link lost (test)")
            await asyncio.sleep(0.2)  # the reconnect is now inside transport.open()
            session.runner.stop("practitioner pressed STOP")
            await asyncio.sleep(2.0)  # long after the session's end

        engine.io.run(scenario(), timeout_s=10)
        assert session.wait(5).outcome == "stopped"
        kinds = [k for k, _ in notices]
        after_end = kinds[kinds.index("end") + 1 :] if "end" in kinds else []
        assert not link.is_open and "reconnected" not in after_end, (
            f"after the session ended the link is open={link.is_open}; "
            f"events after 'end': {after_end}"
        )


def test_a_zero_write_that_times_out_says_so() -> None:
    """A BLE device stops acknowledging writes; STOP's out-of-band zero times out. The
    reason is built from ``str(TimeoutError())``, which is empty: "could not write zero
    output: " tells the practitioner nothing about what happened."""
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:coyote3")
        session = device.start(TWO_CHANNELS, levels={"A": 10})

        async def scenario() -> None:
            await asyncio.sleep(3.013)
            _hang_coyote3(device)
            session.runner.stop("practitioner pressed STOP")

        engine.io.run(scenario(), timeout_s=10)
        result = session.wait(10)
    assert result.outcome == "fault"
    assert not result.reason.rstrip().endswith(":"), f"reason: {result.reason!r}"
    assert any(w in result.reason for w in ("ms", "time", "answer")), result.reason
