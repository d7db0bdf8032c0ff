"""Faults injected by the links and the simulators: the engine survives each one with zero
output (seen by the simulator) or, where a device runs on by itself, a clear warning.

All on virtual time through the in-process links: deterministic and fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from acustim import Engine
from acustim.engine import Device, Session
from firmware_bridge.events import DeviceNotice
from firmware_bridge.link import ByteStreamLink, SimulatorLink
from tests.programs import ONE_CHANNEL

LEVELS = {"coyote3": 10, "coyote2": 100, "et312": 10, "pulsepal": 500}


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine(virtual_time=True, records=False) as e:
        yield e


def run(
    engine: Engine,
    device_id: str,
    fault: Callable[[Device], None],
    *,
    at_s: float = 4.0,
    after_s: float = 3.0,
    notices: list[tuple[str, str]] | None = None,
) -> tuple[Device, Session, dict[str, float]]:
    """Stream, inject ``fault`` at ``at_s`` on the IO loop, let ``after_s`` pass, stop."""
    device = engine.connect(f"sim:{device_id}")
    marks: dict[str, float] = {}
    sessions: list[Session] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        session = device.start(
            ONE_CHANNEL,
            levels={"A": LEVELS[device_id]},
            rise_fraction_per_s=0.05,
            on_notice=(lambda e: notices.append((e.kind, e.message)))
            if notices is not None
            else None,
        )
        sessions.append(session)
        await asyncio.sleep(at_s)
        marks["fault"] = loop.time()
        fault(device)
        await asyncio.sleep(after_s)
        marks["after"] = loop.time()
        if not session.done:
            session.runner.stop("test over")

    engine.io.run(scenario(), timeout_s=60)
    sessions[0].wait(30)
    return device, sessions[0], marks


def output_before(device: Device, marks: dict[str, float]) -> float:
    return float(device.simulator.record.output_at("A", marks["fault"] - 0.3))


def link(device: Device) -> Any:
    assert isinstance(device.transport, ByteStreamLink | SimulatorLink)
    return device.transport


# --- bytes on the wire ------------------------------------------------------------------------
@pytest.mark.parametrize("device_id", ["et312", "pulsepal"])
def test_split_bytes_change_nothing(engine: Engine, device_id: str) -> None:
    def split(device: Device) -> None:
        link(device).split_writes = True

    device, session, marks = run(engine, device_id, split)
    assert session.wait().outcome == "stopped"
    record = device.simulator.record
    assert record.output_at("A", marks["after"] - 0.3) == pytest.approx(
        output_before(device, marks), rel=0.01
    )


@pytest.mark.parametrize("device_id", ["et312", "pulsepal"])
def test_a_small_delay_changes_nothing(engine: Engine, device_id: str) -> None:
    def slow(device: Device) -> None:
        link(device).latency_s = 0.01

    _, session, _ = run(engine, device_id, slow)
    assert session.wait().outcome == "stopped"


@pytest.mark.parametrize("device_id", ["et312", "pulsepal"])
def test_dropped_bytes_end_the_session_with_a_clear_fault(engine: Engine, device_id: str) -> None:
    def lossy(device: Device) -> None:
        link(device).manipulate = lambda data: data[:-1]  # every write loses its last byte

    _, session, _ = run(engine, device_id, lossy)
    result = session.wait()
    assert result.outcome == "fault"
    assert any(w in result.reason for w in ("answer", "reply", "ACK")), result.reason
    assert "WARNING" in result.reason  # these boxes run on: the user is told to switch off


def test_corrupted_bytes_are_refused_by_the_box_and_end_the_session(engine: Engine) -> None:
    def corrupt(device: Device) -> None:
        link(device).manipulate = lambda data: data[:-1] + bytes([data[-1] ^ 0x01])

    device, session, _ = run(engine, "et312", corrupt)
    result = session.wait()
    assert result.outcome == "fault"
    assert device.simulator.record.events  # the box saw the bad checksums


def test_corrupted_replies_end_the_session(engine: Engine) -> None:
    def corrupt(device: Device) -> None:
        link(device).manipulate_replies = lambda data: bytes([data[0] ^ 0x40]) + data[1:]

    _, session, _ = run(engine, "pulsepal", corrupt)
    result = session.wait()
    assert result.outcome == "fault"


@pytest.mark.parametrize("device_id", ["et312", "pulsepal"])
def test_a_long_delay_trips_the_watchdog(engine: Engine, device_id: str) -> None:
    def stuck(device: Device) -> None:
        link(device).latency_s = 1.0

    _, session, _ = run(engine, device_id, stuck)
    result = session.wait()
    assert result.outcome == "fault"


# --- the device ---------------------------------------------------------------------------------
@pytest.mark.parametrize("device_id", ["et312", "pulsepal", "coyote3"])
def test_a_device_that_stops_answering_is_a_fault(engine: Engine, device_id: str) -> None:
    def mute(device: Device) -> None:
        sim = device.simulator
        if hasattr(sim, "stop_answering"):
            sim.stop_answering(True)
        else:  # the Coyote 3 answers through notifications: stop delivering them
            link(device).set_receiver(None)

    def raise_level(device: Device) -> None:
        mute(device)

    device, session, _ = run(engine, device_id, raise_level, at_s=1.0, after_s=4.0)
    result = session.wait()
    assert result.outcome == "fault"
    if device_id == "coyote3":
        assert "stopped answering" in result.reason
        assert device.simulator.strength_du("A") == 0


def test_coyote3_reboot_drops_the_link_and_the_session_ends_at_zero(engine: Engine) -> None:
    def reboot(device: Device) -> None:  # a BLE device that reboots also drops the link
        link(device).drop("device rebooted")
        device.simulator.power_cycle()

    device, session, marks = run(engine, "coyote3", reboot, at_s=1.0, after_s=4.0)
    result = session.wait()
    assert result.outcome == "fault"
    assert "device rebooted" in result.reason
    record = device.simulator.record
    assert record.max_output("A", marks["fault"] + 0.001) == 0.0


def test_et312_reboot_loses_the_key_and_the_session_ends(engine: Engine) -> None:
    device, session, marks = run(engine, "et312", lambda d: d.simulator.power_cycle())
    result = session.wait()
    assert result.outcome == "fault"
    # after a reboot the box sits in its menu: it delivers nothing
    assert device.simulator.record.max_output("A", marks["fault"] + 0.001) == 0.0


def test_coyote2_wheel_is_followed_not_fought(engine: Engine) -> None:
    device, session, marks = run(engine, "coyote2", lambda d: d.simulator.turn_wheel("A", -40))
    assert session.wait().outcome == "stopped"
    assert device.simulator.record.output_at("A", marks["after"] - 0.3) == pytest.approx(60.0)


def test_et312_knob_turn_is_reported(engine: Engine) -> None:
    notices: list[tuple[str, str]] = []
    run(engine, "et312", lambda d: d.simulator.turn_knob("A", -64), notices=notices)
    knobs = [m for k, m in notices if k == "knob"]
    assert len(knobs) >= 2  # the first reading, then the change


@pytest.mark.parametrize("device_id", ["coyote3", "coyote2", "et312"])
def test_low_battery_is_reported(engine: Engine, device_id: str) -> None:
    notices: list[tuple[str, str]] = []
    run(engine, device_id, lambda d: d.simulator.set_battery(10), after_s=12.0, notices=notices)
    assert any(k == "low_battery" and "10 %" in m for k, m in notices), notices


def test_electrode_off_pauses_output(engine: Engine) -> None:
    # none of the four devices reports electrode contact; the runner's reaction is tested by
    # handing it the event a device that does would send
    def electrode_off(device: Device) -> None:
        runner = device.session.runner  # type: ignore[union-attr]
        runner._device_event(DeviceNotice("electrode_off", "A: electrode off", {"channel": "A"}))

    device, session, marks = run(engine, "coyote3", electrode_off)
    assert session.wait().outcome == "stopped"
    assert device.simulator.record.max_output("A", marks["fault"] + 0.101, marks["after"]) == 0.0
