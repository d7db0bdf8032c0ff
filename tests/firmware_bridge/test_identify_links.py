"""The handshake at connect time through real parts: pyserial on a pty for the serial devices
(a simulator served on it, or nothing answering at all) and bleak's real ``BleakClient`` with
the simulator backend for BLE. Safety is judged on what reached the device and what it
delivered."""

from __future__ import annotations

import itertools
import os
import time
import tty
from collections.abc import Iterator

import pytest

from acustim import Engine
from device_profiles.profile import load_profile, simulator_class
from firmware_bridge.ble import BleTransport
from firmware_bridge.driver import make_driver
from firmware_bridge.errors import DeviceTimeout, TransportError
from firmware_bridge.serial_port import SerialTransport
from firmware_bridge.vtime import VirtualTimeLoop
from simulators.clock import FunctionClock, WallClock
from simulators.hosting import bleak_backend
from simulators.hosting.pty import PtyHost
from tests.contract.harness import NO_CONTRAINDICATIONS, PROGRAM
from tests.firmware_bridge.test_identify import (
    EXPECTED,
    SIM_OPTIONS,
    Spy,
    assert_only_handshake,
    nothing_delivered,
)
from waveforms.files import parse_program

_ADDRESSES = itertools.count(1)

#: what a device's handshake writes when nothing answers, and how long it waits (loop clock)
SILENT = {
    "et312": (b"\x00" * 12, 1.2, "et312: no answer from an ET-312 on {path} within 1.2 s: "),
    "pulsepal": (
        b"\xd5\x48",
        1.0,
        "pulsepal: no answer to the handshake (D5 48) within 1 s: is a Pulse Pal 2 on this "
        "port ({path}), powered, and not held by another program?",
    ),
}


@pytest.fixture
def silent_pty() -> Iterator[tuple[int, str]]:
    """A raw pty pair whose far end never answers: (master fd, the port's path)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def _received(master: int) -> bytes:
    os.set_blocking(master, False)
    try:
        return os.read(master, 4096)
    except BlockingIOError:
        return b""


# --- serial: a simulator on a pty, real pyserial, wall clock ----------------------------------


@pytest.mark.parametrize("device", ["et312", "pulsepal"])
def test_identify_over_real_pyserial_then_a_session_runs(device: str) -> None:
    profile = load_profile(device)
    clock = WallClock()
    spy = Spy(simulator_class(profile)(clock, **SIM_OPTIONS[device]))
    host = PtyHost(spy, clock.now_s).start()
    try:
        with Engine(records=False) as engine:
            transport = SerialTransport(host.path)
            started = time.monotonic()
            dev = engine.connect(transport, profile=profile)
            took = time.monotonic() - started
            assert dev.identity == EXPECTED[device]
            assert took < 1.0, took  # answered at once: no sync or handshake timeout waited
            assert transport.is_open
            host.call(lambda: assert_only_handshake(device, spy))
            connected_at = clock.now_s()
            level = {"et312": 60, "pulsepal": 800}[device]
            session = dev.start(
                parse_program(PROGRAM),
                levels={"A": level},
                duration_s=1.5,
                rise_fraction_per_s=0.05,
                screening=NO_CONTRAINDICATIONS,
            )
            result = session.wait(30)
            assert result.outcome == "completed", result.reason
        record = host.call(lambda: spy.sim.record)
        assert max(iv.output_du for iv in record.intervals("A")) > 0
        assert all(iv.output_du == 0 for iv in record.intervals() if iv.end_s <= connected_at)
        assert record.output_at("A", record.end_s) == 0.0
        if device == "et312":
            assert host.call(lambda: spy.sim.key) == 0
    finally:
        host.stop()


# --- serial: nothing answers, virtual time ----------------------------------------------------


@pytest.mark.parametrize("device", ["et312", "pulsepal"])
def test_a_silent_pty_fails_in_one_line_within_the_timeout_and_only_the_handshake_went_out(
    device: str, silent_pty: tuple[int, str]
) -> None:
    master, path = silent_pty
    profile = load_profile(device)
    transport = SerialTransport(path)
    assert profile.serial_baud is not None
    transport.baudrate = profile.serial_baud
    loop = VirtualTimeLoop(start_s=20.0)
    try:
        sent, timeout_s, message = SILENT[device]
        started = loop.time()
        with pytest.raises(DeviceTimeout) as caught:
            loop.run_until_complete(make_driver(profile, transport).identify())
        took = loop.time() - started
        assert timeout_s <= took <= timeout_s + 0.05, took
        text = str(caught.value)
        assert "\n" not in text
        assert text.startswith(message.format(path=path)), text
        assert not transport.is_open  # closed: its reader thread is gone too
        assert _received(master) == sent  # the handshake's bytes, nothing else
    finally:
        loop.close()


@pytest.mark.parametrize("device", ["et312", "pulsepal"])
def test_engine_connect_to_a_silent_port_is_no_device(
    device: str, silent_pty: tuple[int, str]
) -> None:
    master, path = silent_pty
    with Engine(virtual_time=True, records=False) as engine:
        with pytest.raises(DeviceTimeout) as caught:
            engine.connect(f"{device}@{path}")
        assert "\n" not in str(caught.value)
        assert engine.devices == []
    assert _received(master) == SILENT[device][0]


# --- BLE: bleak's real BleakClient, the simulator backend, virtual time -----------------------


@pytest.mark.parametrize("device", ["coyote2", "coyote3"])
def test_identify_through_bleaks_real_client(device: str) -> None:
    profile = load_profile(device)
    address = f"C0:FF:EE:00:02:{next(_ADDRESSES) % 256:02X}"
    with Engine(virtual_time=True, records=False) as engine:
        spy = Spy(
            simulator_class(profile)(FunctionClock(engine.io.loop.time), **SIM_OPTIONS[device])
        )
        bleak_backend.register(address, spy, profile.gatt)
        try:
            ble = BleTransport(address, backend=bleak_backend.SimulatedBleakBackend)
            dev = engine.connect(ble, profile=profile)
            assert dev.identity == EXPECTED[device]
            assert ble.is_open
            assert_only_handshake(device, spy)
            session = dev.start(
                parse_program(PROGRAM),
                levels={"A": 20 if device == "coyote3" else 300},
                duration_s=3.0,
                screening=NO_CONTRAINDICATIONS,
            )
            assert session.wait(30).outcome == "completed"
            assert max(iv.output_du for iv in spy.sim.record.intervals("A")) > 0
        finally:
            bleak_backend.unregister(address)


def test_a_ble_device_without_the_battery_level_is_not_a_coyote() -> None:
    profile = load_profile("coyote3")
    address = f"C0:FF:EE:00:03:{next(_ADDRESSES) % 256:02X}"
    battery = "00001500-0000-1000-8000-00805f9b34fb"
    table = [
        (service, chars)
        for service, chars in profile.gatt
        if all(uuid.lower() != battery for uuid, _props in chars)
    ]
    assert len(table) == len(profile.gatt) - 1
    with Engine(virtual_time=True, records=False) as engine:
        spy = Spy(simulator_class(profile)(FunctionClock(engine.io.loop.time)))
        bleak_backend.register(address, spy, table)
        try:
            ble = BleTransport(address, backend=bleak_backend.SimulatedBleakBackend)
            with pytest.raises(TransportError) as caught:
                engine.connect(ble, profile=profile)
            text = str(caught.value)
            assert "\n" not in text
            assert text.startswith(
                f"coyote3: the device at ble://{address} did not give a Coyote 3 battery level"
            ), text
            assert not ble.is_open
            assert address not in bleak_backend._CONNECTED
            assert engine.devices == []
            assert spy.writes == [] and spy.subscribed == []
            assert nothing_delivered(spy.sim.record)
        finally:
            bleak_backend.unregister(address)


def test_no_ble_device_at_the_address_is_one_line() -> None:
    with Engine(virtual_time=True, records=False) as engine:
        ble = BleTransport("C0:FF:EE:0F:0F:0F", backend=bleak_backend.SimulatedBleakBackend)
        with pytest.raises(TransportError, match=r"^cannot connect to C0:FF:EE:0F:0F:0F: ") as e:
            engine.connect(ble, profile="coyote3")
        assert "\n" not in str(e.value)
        assert engine.devices == []
