"""The streamer with the real Coyote 3 driver and simulator, on virtual time."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from firmware_bridge.codecs import coyote3 as C
from firmware_bridge.events import LinkLost, StrengthReport
from tests.firmware_bridge.conftest import Rig


def b0_frames(rig: Rig) -> list[tuple[float, bytes]]:
    return [(t, d) for t, d in rig.link.log if d[0] == 0xB0]


def test_connect_writes_zero_then_limits_before_any_output(rig: Rig) -> None:
    rig.run(rig.connect())
    first, second = rig.link.log[0][1], rig.link.log[1][1]
    assert first[0] == 0xB0
    assert (first[1] & 0x0F) == 0b1111  # set absolute on both channels
    assert first[2:4] == b"\x00\x00"
    assert second == C.encode_bf(60, 50, 160, 160, 0, 0)
    assert rig.sim.soft_limit_du("A") == 60
    assert rig.sim.soft_limit_du("B") == 50
    assert rig.driver.battery_percent == 100


def test_frames_go_out_at_absolute_deadlines(rig: Rig) -> None:
    rig.run(rig.connect())
    rig.guard.set_level("A", 20, rig.loop.time())
    streamer = rig.streamer()

    async def scenario() -> None:
        task = asyncio.create_task(streamer.run())
        await asyncio.sleep(3.0)
        streamer.end("stopped", "test over")
        await task

    t0 = rig.loop.time()
    rig.run(scenario())
    times = [t for t, _ in b0_frames(rig)][1:]  # after the connect zero
    starts = times[:30]
    # one frame goes ahead at once to fill the device's queue, then one per 100 ms
    assert starts == pytest.approx([t0 + 0.1 * max(0, k - 1) for k in range(30)])
    assert streamer.stats.frames_skipped == 0
    assert streamer.stats.max_lateness_s == pytest.approx(0.0)


def test_lateness_never_leaves_the_device_without_waveform(rig: Rig) -> None:
    rig.run(rig.connect())
    rig.guard.set_level("A", 10, rig.loop.time())
    rig.link.latency_s = 0.03  # every write arrives 30 ms late
    streamer = rig.streamer()

    async def scenario() -> None:
        task = asyncio.create_task(streamer.run())
        await asyncio.sleep(5.0)
        streamer.end("stopped", "test over")
        await task

    t0 = rig.loop.time()
    rig.run(scenario())
    playing = [iv for iv in rig.sim.record.intervals("A") if t0 + 0.2 < iv.start_s < t0 + 4.5]
    assert playing
    assert all(iv.frequency_hz > 0 for iv in playing)  # never idle between frames


def test_soft_start_seen_by_the_device(rig: Rig) -> None:
    rig.run(rig.connect())
    t0 = rig.loop.time()
    rig.guard.set_level("A", 20, t0)
    streamer = rig.streamer(constant_intensity := None)  # noqa: F841

    async def scenario() -> None:
        task = asyncio.create_task(streamer.run())
        await asyncio.sleep(8.0)
        streamer.end("stopped", "test over")
        await task

    rig.run(scenario())
    record = rig.sim.record
    # the device's own strength never rises faster than 4 du/s (default ramp), +1 du rounding
    intervals = [iv for iv in record.intervals("A") if iv.start_s >= t0]
    for a, b in itertools.pairwise(intervals):
        assert b.strength_du - a.strength_du <= 4.0 * max(b.start_s - a.start_s, 0.1) + 1
    assert max(iv.strength_du for iv in intervals) == 20
    assert record.output_at("A", t0 + 7.0) == pytest.approx(10.0)  # 20 du x 50 %


def test_emergency_stop_zeroes_the_device_within_one_frame(rig: Rig) -> None:
    rig.run(rig.connect())
    rig.guard.set_level("A", 20, rig.loop.time())
    streamer = rig.streamer()
    stop_at: list[float] = []

    async def scenario() -> None:
        task = asyncio.create_task(streamer.run())
        await asyncio.sleep(6.03)  # between two frames
        stop_at.append(asyncio.get_running_loop().time())
        await streamer.emergency_stop()
        await asyncio.sleep(2.0)
        streamer.end("stopped", "test over")
        await task

    rig.run(scenario())
    t_stop = stop_at[0]
    assert rig.sim.strength_du("A") == 0
    zero_from = rig.sim.record.first_time_output_zero_after("A", t_stop)
    assert zero_from is not None
    assert zero_from - t_stop <= 0.1
    assert zero_from == pytest.approx(t_stop)  # out of band: at once, not at the next tick
    assert streamer.stats.stop_latencies_s[0] == pytest.approx(0.0)
    # and nothing comes back by itself
    assert rig.sim.record.max_output("A", t_stop + 0.001) == 0.0


def test_loop_stall_skips_frames_and_never_bursts(rig: Rig) -> None:
    rig.run(rig.connect())
    rig.guard.set_level("A", 20, rig.loop.time())
    streamer = rig.streamer()

    async def scenario() -> None:
        task = asyncio.create_task(streamer.run())
        await asyncio.sleep(1.05)
        rig.loop.advance(0.22)  # the loop was blocked for 220 ms
        await asyncio.sleep(1.0)
        streamer.end("stopped", "test over")
        await task

    rig.run(scenario())
    times = [t for t, _ in b0_frames(rig)]
    gaps = [b - a for a, b in itertools.pairwise(times[2:-1])]  # after the queue-filling pair
    assert min(gaps) >= 0.1 - 1e-9  # no burst after the stall
    # the frame due at 1.1 s was dropped; the one sent at 1.27 s reports its real lateness
    assert streamer.stats.frames_skipped == 1
    assert streamer.stats.max_lateness_s == pytest.approx(0.17)


def test_watchdog_ends_the_stream_when_the_loop_falls_too_far_behind(rig: Rig) -> None:
    rig.run(rig.connect())
    rig.guard.set_level("A", 20, rig.loop.time())
    streamer = rig.streamer()

    async def scenario() -> None:
        task = asyncio.create_task(streamer.run())
        await asyncio.sleep(3.05)
        rig.loop.advance(0.4)  # 400 ms stall > 250 ms watchdog
        result = await task
        assert result.outcome == "fault"
        assert "watchdog" in result.reason

    rig.run(scenario())
    assert rig.sim.strength_du("A") == 0


def test_a_hanging_link_trips_the_write_watchdog(rig: Rig) -> None:
    rig.run(rig.connect())
    rig.guard.set_level("A", 20, rig.loop.time())
    streamer = rig.streamer()

    async def scenario() -> None:
        task = asyncio.create_task(streamer.run())
        await asyncio.sleep(3.0)
        rig.link.hang_writes = True
        result = await task
        assert result.outcome == "fault"
        assert "link fell behind" in result.reason

    rig.run(scenario())
    # the device itself stops: no new waveform arrived, so its output is idle
    t_end = rig.loop.time()
    assert rig.sim.record.output_at("A", t_end + 0.5) == 0.0


def test_device_that_stops_answering_is_a_fault(rig: Rig) -> None:
    rig.run(rig.connect())
    rig.guard.set_level("A", 20, rig.loop.time())
    streamer = rig.streamer()
    rig.link.set_receiver(None)  # replies are lost from now on

    async def scenario() -> None:
        result = await streamer.run()
        assert result.outcome == "fault"
        assert "stopped answering" in result.reason

    rig.run(scenario())
    assert rig.sim.strength_du("A") == 0  # the zero still went out


def test_wheel_on_the_device_is_followed(rig: Rig) -> None:
    rig.run(rig.connect())
    rig.guard.set_level("A", 20, rig.loop.time())
    events: list[object] = []

    def on_event(event: object) -> None:
        events.append(event)
        if isinstance(event, StrengthReport) and event.by_device:
            rig.guard.device_level("A", event.levels_du["A"], rig.loop.time())

    rig.driver.on_event = on_event  # type: ignore[assignment]
    streamer = rig.streamer()

    async def scenario() -> None:
        task = asyncio.create_task(streamer.run())
        await asyncio.sleep(7.0)
        rig.sim.turn_wheel("A", -8)  # the practitioner turns the device's own wheel down
        await asyncio.sleep(2.0)
        targets.append(rig.guard.target_du("A"))
        streamer.end("stopped", "test over")
        await task

    targets: list[int] = []
    rig.run(scenario())
    assert any(isinstance(e, StrengthReport) and e.by_device for e in events)
    assert targets == [12]
    assert rig.sim.strength_du("A") == 0  # and the end still zeroed the device
    levels = [f.channel("A").level_du for _, f, _ in rig.frames if not f.zero]
    assert levels[-1] == 12  # the engine followed, it did not fight back to 20


def test_link_lost_reaches_the_driver_handler(rig: Rig) -> None:
    rig.run(rig.connect())
    events: list[object] = []
    rig.driver.on_event = events.append  # type: ignore[assignment]
    rig.link.drop("radio gone")
    assert events == [LinkLost("radio gone")]
