"""The handshake at connect time (``DeviceDriver.identify``, ``Engine.connect``), on the
in-process links and virtual time: each simulator answers it, what reached the device is the
handshake alone (nothing that sets a limit, a level or an output), the device delivered
nothing, and a session after it still runs.

The same over real pyserial on a pty and bleak's real ``BleakClient``: ``test_identify_links``.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from acustim import Engine
from acustim.cli import main
from acustim.engine import Device, DeviceBusyError
from device_profiles.profile import DeviceProfile, load_profile, simulator_class
from firmware_bridge.driver import IDENTIFY_TIMEOUT_S, Identity, make_driver
from firmware_bridge.errors import BridgeError, DeviceTimeout, UnknownDeviceError
from firmware_bridge.link import ByteStreamLink, SimulatorLink
from firmware_bridge.vtime import VirtualTimeLoop
from simulators.clock import Clock
from simulators.record import DeliveryRecord
from tests.contract.harness import NO_CONTRAINDICATIONS, PROGRAM
from waveforms.files import parse_program

DEVICES = ("et312", "pulsepal", "coyote2", "coyote3")
#: what each simulator is made with here, so that a figure that is read is told from a default
SIM_OPTIONS: dict[str, dict[str, Any]] = {
    "et312": {"battery_percent": 37},
    "pulsepal": {},
    "coyote2": {"battery_percent": 41},
    "coyote3": {"battery_percent": 58},
}
EXPECTED = {
    "et312": Identity("et312", "ET-312 (model 0x0C)", "1.6.0", 37),
    "pulsepal": Identity("pulsepal", "Pulse Pal 2", "22", None),
    "coyote2": Identity(
        "coyote2",
        "DG-LAB Coyote 2.0",
        "1.0",
        41,
        (("strength step", "7"), ("maximum strength", "2000")),
    ),
    "coyote3": Identity("coyote3", "DG-LAB Coyote 3.0", None, 58),
}


class Spy:
    """The real simulator, seen from the device's side: every byte and GATT write that
    reached it, every subscription and read."""

    def __init__(self, simulator: Any) -> None:
        self.sim = simulator
        self.fed = bytearray()
        self.writes: list[tuple[str, bytes]] = []
        self.subscribed: list[str] = []
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def feed(self, data: bytes) -> None:
        self.fed += data
        self.sim.feed(data)

    def set_output(self, callback: Callable[[bytes], None] | None) -> None:
        self.sim.set_output(callback)

    def write(self, char_uuid: str, data: bytes) -> None:
        self.writes.append((char_uuid.lower(), bytes(data)))
        self.sim.write(char_uuid, data)

    def read(self, char_uuid: str) -> bytes:
        self.reads.append(char_uuid.lower())
        return bytes(self.sim.read(char_uuid))

    def start_notify(self, char_uuid: str, callback: Callable[[str, bytes], None]) -> None:
        self.subscribed.append(char_uuid.lower())
        self.sim.start_notify(char_uuid, callback)

    def stop_notify(self, char_uuid: str) -> None:
        self.sim.stop_notify(char_uuid)

    def disconnect(self) -> None:
        self.sim.disconnect()


def spied_link(profile: DeviceProfile, **options: Any) -> ByteStreamLink | SimulatorLink:
    """The profile's in-process link, its simulator behind a ``Spy``."""
    sim_class = simulator_class(profile)

    def factory(clock: Clock) -> Any:
        return Spy(sim_class(clock, **options))

    kind = ByteStreamLink if profile.link == "serial" else SimulatorLink
    return kind(factory=factory, url=f"sim:{profile.id}")


def nothing_delivered(record: DeliveryRecord) -> bool:
    return all(iv.output_du == 0 for iv in record.intervals())


def et312_packets(sent: bytes) -> list[bytes]:
    """Bytes sent to an ET-312 without a key, split into its packets (first byte's high
    nibble + 1 = the length, et312-firmware.md section 9)."""
    packets, i = [], 0
    while i < len(sent):
        length = (sent[i] >> 4) + 1
        packets.append(sent[i : i + length])
        i += length
    return packets


def assert_only_handshake(device: str, spy: Spy) -> None:
    """What reached the device is its handshake alone: nothing that can change output."""
    if device == "et312":
        packets = et312_packets(bytes(spy.fed))
        assert packets, "nothing was sent"
        for packet in packets:
            # a lone sync 00, or a read 3C hi lo cs with its checksum: no write (xD), no key
            # exchange (xF), no box command
            assert packet == b"\x00" or (
                len(packet) == 4 and packet[0] == 0x3C and sum(packet[:3]) & 0xFF == packet[3]
            ), packet.hex(" ")
        reads = {(p[1] << 8) | p[2] for p in packets if p[0] == 0x3C}
        assert reads == {0x00FC, 0x00FD, 0x00FE, 0x00FF, 0x4203}
        assert spy.sim.key == 0  # no key left on the box
        kinds = {kind for _t, kind, _m in spy.sim.record.events}
        assert not kinds & {"key_exchange", "write_refused", "settings_reloaded", "nack"}
    elif device == "pulsepal":
        assert bytes(spy.fed) == b"\xd5\x48"  # the handshake op, nothing else
    else:
        assert spy.writes == []  # no strength, waveform or soft-limit write
        assert spy.subscribed == []
        assert spy.reads  # the battery level, at least
    assert nothing_delivered(spy.sim.record)


# --- the driver on each simulator ------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_identify_answers_with_what_the_device_said_and_sends_only_the_handshake(
    device: str,
) -> None:
    loop = VirtualTimeLoop(start_s=50.0)
    try:
        profile = load_profile(device)
        link = spied_link(profile, **SIM_OPTIONS[device])
        driver = make_driver(profile, link)
        started = loop.time()
        identity = loop.run_until_complete(driver.identify())
        took = loop.time() - started
        assert identity == EXPECTED[device]
        assert driver.battery_percent == identity.battery_percent
        assert took < 0.05, took  # no timeout was waited out on the way
        assert link.is_open  # left open for the session, whose connect needs no reopen
        assert link._receiver is None and link._on_disconnect is None  # let go of the link
        spy = link.simulator
        assert isinstance(spy, Spy)
        assert_only_handshake(device, spy)
        loop.run_until_complete(link.close())
    finally:
        loop.close()


def test_identity_describes_itself_in_one_line() -> None:
    assert EXPECTED["et312"].describe() == "ET-312 (model 0x0C), firmware 1.6.0, battery 37 %"
    assert EXPECTED["pulsepal"].describe() == "Pulse Pal 2, firmware 22"
    assert EXPECTED["coyote2"].describe() == (
        "DG-LAB Coyote 2.0, firmware 1.0, battery 41 %, strength step: 7, maximum strength: 2000"
    )


@pytest.mark.parametrize("device", ["et312", "pulsepal"])
def test_a_box_that_reads_but_never_answers_fails_in_one_line_and_delivers_nothing(
    device: str,
) -> None:
    loop = VirtualTimeLoop(start_s=50.0)
    try:
        profile = load_profile(device)
        link = spied_link(profile)
        driver = make_driver(profile, link)
        loop.run_until_complete(link.open())
        spy = link.simulator
        assert isinstance(spy, Spy)
        if device == "et312":
            spy.sim.stop_answering(True)
        else:  # the Pulse Pal simulator has no such fault: its replies are lost on the line
            assert isinstance(link, ByteStreamLink)
            link.manipulate_replies = lambda data: b""
        started = loop.time()
        with pytest.raises(DeviceTimeout) as caught:
            loop.run_until_complete(driver.identify())
        took = loop.time() - started
        message = str(caught.value)
        assert "\n" not in message
        if device == "et312":
            assert message.startswith("et312: no answer from an ET-312 on sim:et312 within 1.2 s")
            assert 1.2 <= took <= 1.3, took  # 12 sync bytes, 100 ms each
            assert bytes(spy.fed) == b"\x00" * 12
        else:
            assert message.startswith("pulsepal: no answer to the handshake (D5 48) within 1 s")
            assert 1.0 <= took <= 1.05, took
            assert bytes(spy.fed) == b"\xd5\x48"
        assert not link.is_open  # closed on the way out
        assert nothing_delivered(spy.sim.record)
    finally:
        loop.close()


def test_a_pulse_pal_1_is_refused_by_its_handshake() -> None:
    loop = VirtualTimeLoop()
    try:
        profile = load_profile("pulsepal")
        link = spied_link(profile, firmware_version=7)
        with pytest.raises(UnknownDeviceError, match=r"firmware 7, a Pulse Pal 1") as caught:
            loop.run_until_complete(make_driver(profile, link).identify())
        assert "\n" not in str(caught.value)
        assert not link.is_open
        spy = link.simulator
        assert isinstance(spy, Spy)
        assert bytes(spy.fed) == b"\xd5\x48"
    finally:
        loop.close()


class HangingReads(SimulatorLink):
    """A BLE link that opens, then never answers a read (a stack that hangs)."""

    async def read(self, endpoint: str) -> bytes:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_identify_is_bounded_on_the_loop_clock_and_closes_the_link() -> None:
    loop = VirtualTimeLoop(start_s=5.0)
    try:
        profile = load_profile("coyote3")
        link = HangingReads(factory=simulator_class(profile), url="ble://C0:FF:EE:00:00:01")
        started = loop.time()
        with pytest.raises(DeviceTimeout) as caught:
            loop.run_until_complete(make_driver(profile, link).identify())
        assert loop.time() - started == pytest.approx(IDENTIFY_TIMEOUT_S)
        assert str(caught.value) == (
            "coyote3: no answer from a DG-LAB Coyote 3.0 on ble://C0:FF:EE:00:00:01 within 5 s: "
            "check that it is switched on, within reach and not held by another program"
        )
        assert not link.is_open
    finally:
        loop.close()


# --- the engine -------------------------------------------------------------------------------


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine(virtual_time=True, records=False) as e:
        yield e


def _program() -> Any:
    return parse_program(PROGRAM)


@pytest.mark.parametrize("device", DEVICES)
def test_connect_is_the_handshake_and_a_session_after_it_runs(engine: Engine, device: str) -> None:
    dev = engine.connect(f"sim:{device}")
    assert dev.identity is not None
    assert dev.identity.device == device
    assert dev.identity.model == EXPECTED[device].model
    sim = dev.simulator
    assert nothing_delivered(sim.record)
    connected_at = engine.io.loop.time()
    level = {"et312": 60, "pulsepal": 800, "coyote2": 300, "coyote3": 20}[device]
    session = dev.start(
        _program(), levels={"A": level}, duration_s=4.0, screening=NO_CONTRAINDICATIONS
    )
    result = session.wait(60)
    assert result.outcome == "completed", result.reason
    record = sim.record
    assert max(iv.output_du for iv in record.intervals("A")) > 0  # the session delivered
    assert all(iv.output_du == 0 for iv in record.intervals() if iv.end_s <= connected_at)
    assert record.output_at("A", record.end_s) == 0.0


def test_et312_identify_leaves_no_key_so_sessions_and_handshakes_follow_each_other(
    engine: Engine,
) -> None:
    dev = engine.connect("sim:et312")
    sim = dev.simulator
    assert sim.key == 0
    assert sim.record.events_of("key_exchange") == []
    assert dev.identify() == dev.identity  # a second handshake on the open link
    for _ in range(2):  # a session, then the link is closed; a handshake reopens it
        session = dev.start(_program(), levels={"A": 60}, duration_s=2.0)
        assert session.wait(60).outcome == "completed"
        assert sim.key == 0  # the session's close reset its key
        assert not is_open(dev)
        exchanges = len(sim.record.events_of("key_exchange"))
        assert exchanges >= 1  # the session keyed the box itself
        identity = dev.identify()
        assert identity.model == "ET-312 (model 0x0C)"
        assert is_open(dev)
        assert len(sim.record.events_of("key_exchange")) == exchanges  # identify: no key
        assert sim.key == 0


def is_open(device: Device) -> bool:
    return device.transport.is_open


def test_identify_is_refused_while_a_session_runs(engine: Engine) -> None:
    dev = engine.connect("sim:coyote3")
    session = dev.start(_program(), levels={"A": 20}, duration_s=30.0)
    with pytest.raises(DeviceBusyError, match="running a session"):
        dev.identify()
    session.stop("test done")
    session.wait(30)


def test_a_failed_handshake_leaves_no_identity_and_a_closed_link(engine: Engine) -> None:
    dev = engine.connect("sim:et312")
    before = dev.identity
    assert before is not None and before.battery_percent == 80
    dev.simulator.stop_answering(True)
    with pytest.raises(DeviceTimeout, match="no answer from an ET-312"):
        dev.identify()
    assert dev.identity is None  # no figure from before survives
    assert not dev.transport.is_open
    dev.simulator.stop_answering(False)
    assert dev.identify().battery_percent == 80
    dev.close()
    assert dev.identity is None


def test_engine_connect_on_a_silent_device_closes_the_link_and_keeps_no_device(
    engine: Engine,
) -> None:
    profile = load_profile("coyote3")
    link = HangingReads(factory=simulator_class(profile), url="ble://C0:FF:EE:00:00:02")
    with pytest.raises(DeviceTimeout) as caught:
        engine.connect(link, profile=profile)
    assert "\n" not in str(caught.value)
    assert not link.is_open
    assert engine.devices == []


class BrokenRead(SimulatorLink):
    """A transport whose read fails with an error of its own kind (not a bridge error)."""

    async def read(self, endpoint: str) -> bytes:
        raise OSError("adapter went away\nsecond line")


def test_any_other_failure_is_one_bridge_error_line(engine: Engine) -> None:
    profile = load_profile("coyote3")
    link = BrokenRead(factory=simulator_class(profile), url="sim:coyote3")
    with pytest.raises(BridgeError) as caught:
        engine.connect(link, profile=profile)
    assert str(caught.value) == (
        "coyote3@sim:coyote3: the handshake failed: OSError: adapter went away second line"
    )
    assert not link.is_open


def test_devices_reached_through_the_engine_are_identified(engine: Engine) -> None:
    devices: list[Device] = [engine.connect(f"sim:{d}") for d in DEVICES]
    assert [d.identity.device if d.identity else None for d in devices] == list(DEVICES)
    # each its own figures: none carried over from the device connected before it
    assert [d.identity.battery_percent if d.identity else -1 for d in devices] == [
        80,
        None,
        100,
        100,
    ]


def test_the_cli_reports_a_silent_port_in_one_line_and_exits_3(tmp_path: Any) -> None:
    import os
    import tty

    master, slave = os.openpty()
    try:
        tty.setraw(master)
        tty.setraw(slave)
        path = os.ttyname(slave)
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["run", "facial-muscle-tension", "--device", f"et312@{path}", "--level", "A=20"],
            out,
            err,
        )
        assert code == 3
        lines = err.getvalue().splitlines()
        assert len(lines) == 1, lines
        assert re.fullmatch(
            rf"acustim: et312: no answer from an ET-312 on {path} within 1\.[2-9] s: check "
            r"the cable, 19200 baud and that the box is switched on \(if another program "
            r"drove it, switch it off and on\)",
            lines[0],
        ), lines[0]
        assert out.getvalue() == ""
        os.set_blocking(master, False)
        assert os.read(master, 4096) == b"\x00" * 12  # the sync bytes, nothing else
    finally:
        os.close(master)
        os.close(slave)
