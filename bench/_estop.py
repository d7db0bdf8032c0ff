"""estop_latency: from a stop requested on another thread to the zero frame on the link.

The real Coyote 3 profile (100 ms frames) streams a steady program through the real guard,
driver, link and simulator on a wall-clock IoThread, while a GUI-like thread holds the GIL about
60 % of the time. Each cycle, from the main thread (as the CLI or a GUI handler would):

1. raise both levels (``IoThread.call``), and wait until the *simulator* delivers output;
2. wait a random part of a frame period, so stops fall at every phase of the frame clock;
3. stamp the request on the loop clock and hand ``Streamer.emergency_stop`` to the IO loop
   with ``IoThread.call_soon`` (``loop.call_soon_threadsafe``);
4. the link subclass stamps the first zero-output B0 it is handed: request -> wire;
5. the simulator's record says from when its output was zero: request -> device output zero
   (the simulator's clock is the loop clock, so the two figures share one time base).

The stream runs on at zero after each stop (nothing resumes by itself) and the next cycle
raises the levels again from zero, ramped, as a practitioner would.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time

from bench._common import BenchReport, GilLoad, report, spread_ms
from bench._rig import WallRig, bench_program, open_rig
from device_profiles.profile import load_profile
from firmware_bridge.streamer import Outcome
from simulators.coyote3 import CHANNELS

NAME = "estop_latency"
TARGET_P99_MS = 5.0
LEVEL_DU = 10
#: A stop whose zero frame does not reach the link within this long counts as failed.
STOP_TIMEOUT_S = 2.0


async def _raise_until_delivered(rig: WallRig, timeout_s: float) -> bool:
    """Raise both levels, then poll the simulator (every ms) until it delivers output."""
    loop = asyncio.get_running_loop()
    for channel in CHANNELS:
        rig.guard.set_level(channel, LEVEL_DU, loop.time())
    end = loop.time() + timeout_s
    while loop.time() < end:
        record = rig.sim.record  # plays the simulator out to now
        t = record.end_s - 1e-6
        if any(record.output_at(c, t) > 0.0 for c in CHANNELS):
            return True
        await asyncio.sleep(0.001)
    return False


def _zero_seen_by_simulator(rig: WallRig, requested_s: float) -> float:
    """From when the simulator delivered nothing on any channel (NaN if it still delivers)."""

    def _ask() -> float:
        record = rig.sim.record
        times = [record.first_time_output_zero_after(c, requested_s) for c in CHANNELS]
        return math.nan if any(t is None for t in times) else max(t for t in times if t is not None)

    return rig.io.call(_ask)


def run(quick: bool = False) -> BenchReport:
    cycles = 15 if quick else 200
    profile = load_profile("coyote3")
    period_s = profile.limits.frame_period_s
    rng = random.Random(20_261_101)

    # Program and session long enough for every cycle (each takes about two frame periods).
    program = bench_program(max(120.0, cycles * 4 * period_s + 60.0), mixed=False)
    rig = open_rig(profile, program, levels_du={}, name="bench-io-estop")
    wire_s: list[float] = []
    device_s: list[float] = []
    failed = 0
    not_live = 0
    zero_before_wire = 0  # the device was silent before the zero frame: a stop not measured
    load = GilLoad(spin_s=0.006, sleep_s=0.004)
    start = time.perf_counter()
    try:
        stream = rig.io.submit(rig.streamer.run())
        with load.in_background():
            for _ in range(cycles):
                live = rig.io.run(_raise_until_delivered(rig, 3.0), timeout_s=10.0)
                if not live:
                    not_live += 1
                    continue
                time.sleep(rng.uniform(0.0, period_s))
                rig.link.arm_zero_watch()
                requested_s = rig.io.loop.time()
                rig.io.call_soon(rig.streamer.emergency_stop)
                if not rig.link.zero_written.wait(STOP_TIMEOUT_S):
                    failed += 1
                    continue
                wire_s.append(rig.link.zero_written_s - requested_s)
                zero_s = _zero_seen_by_simulator(rig, requested_s)
                if math.isnan(zero_s):
                    failed += 1
                else:
                    device_s.append(zero_s - requested_s)
                    if zero_s < rig.link.zero_written_s - 1e-4:
                        zero_before_wire += 1
        in_loop_s = list(rig.streamer.stats.stop_latencies_s)
        outcome = "running" if not stream.done() else stream.result().outcome
        rig.io.call(lambda: rig.streamer.end(Outcome.COMPLETED, "bench: stop cycles done"))
        stream.result(timeout=10.0)
    finally:
        rig.close()
    wall_s = time.perf_counter() - start

    figures: dict[str, float] = {
        "stops": len(wire_s),
        **spread_ms("", wire_s),
        **spread_ms("sim_zero_", device_s),
        **spread_ms("in_loop_", in_loop_s),
        "failed_stops": failed,
        "cycles_without_output": not_live,
        "sim_zero_before_wire": zero_before_wire,
        "busy_duty": load.duty,
    }
    notes = [
        "p50/p99/max_ms: request (main thread, loop clock) -> zero B0 handed to the link",
        "sim_zero_*: request -> simulator output zero on every channel "
        "(DeliveryRecord.first_time_output_zero_after, simulator clock = loop clock)",
        "sim_zero_before_wire: stops where the simulator was already silent (playing a "
        "zero-intensity block still queued from the previous cycle) before the zero frame "
        "arrived; they count in sim_zero_* with the time the output actually ended",
        "in_loop_*: the streamer's own stop_latencies_s (from the call on the loop to the write "
        "done), i.e. without the hop from the other thread",
        "busy load: a separate thread spinning in pure Python "
        f"{load.spin_s * 1000:g} ms then sleeping {load.sleep_s * 1000:g} ms; the requests come "
        "from the main thread, which otherwise waits",
    ]
    return report(
        NAME,
        "emergency stop from another thread to the zero frame on the link, busy GUI-like thread",
        figures,
        [("p99_ms", "<=", TARGET_P99_MS)],
        {
            "cycles_requested": cycles,
            "frame_period_s": period_s,
            "profile": profile.id,
            "stop_path": "IoThread.call_soon(Streamer.emergency_stop)",
            "level_du": LEVEL_DU,
            "clock": "wall (IoThread, asyncio default loop)",
            "busy_spin_ms": load.spin_s * 1000.0,
            "busy_sleep_ms": load.sleep_s * 1000.0,
            "busy_thread": "background thread",
            "switch_interval_s": sys.getswitchinterval(),
            "stream_outcome_during_cycles": outcome,
            "wall_s": wall_s,
        },
        notes,
    )
