"""Property tests: whatever the program and whatever the practitioner does, the guard's output
never exceeds a limit, never rises faster than the ramp, and is zero after stop until the
practitioner raises a level again."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from safety import Guard, LimitError, resolve_limits
from safety import guard as G
from safety import limits as L
from tests.safety.helpers import calibrated, device, program
from waveforms.program import ChannelDemand

CHANNELS = ("A", "B")
FRAME_S = 0.1


@dataclass(frozen=True)
class Step:
    dt_s: float
    command: tuple[str, ...]  # ("level", ch, n) | ("stop",) | ("pause",) | ("reconnect",) | ...
    demand: tuple[ChannelDemand, ...]


samples = st.lists(
    st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=4, max_size=4
).map(tuple)


@st.composite
def steps(draw: st.DrawFn) -> Step:
    dt = draw(st.sampled_from([0.0, 0.001, 0.05, 0.1, 0.1, 0.1, 0.3, 2.0]))
    command = draw(
        st.one_of(
            st.just(("none",)),
            st.just(("none",)),
            st.tuples(st.just("level"), st.sampled_from(CHANNELS), st.integers(-5, 260)).map(
                lambda t: (t[0], t[1], str(t[2]))
            ),
            st.just(("stop",)),
            st.just(("link_lost",)),
            st.just(("limits_written",)),
            st.tuples(st.just("device"), st.sampled_from(CHANNELS), st.integers(-5, 260)).map(
                lambda t: (t[0], t[1], str(t[2]))
            ),
            st.just(("finish",)),
        )
    )
    demand = tuple(
        ChannelDemand(
            ch,
            draw(samples),
            draw(samples),
            draw(samples),
        )
        for ch in CHANNELS
        if draw(st.booleans())
    )
    return Step(dt, command, demand)


def check_run(guard: Guard, plan: list[Step]) -> None:
    limits = guard.limits
    rate = limits.rise_du_per_s
    now = 0.0
    guard.start(now)
    guard.confirm_limits_written()
    last_level = dict.fromkeys(CHANNELS, 0)
    # delivered output (level x intensity) per frame: (time, du), since the last stop
    delivered: dict[str, list[tuple[float, float]]] = {c: [] for c in CHANNELS}
    last_t = now
    stopped = dict.fromkeys(CHANNELS, True)  # start: zero until the practitioner raises
    link_ok = True
    for step in plan:
        now += step.dt_s
        cmd = step.command
        if cmd[0] == "level":
            try:
                guard.set_level(cmd[1], int(cmd[2]), now)
                if int(cmd[2]) > 0:
                    stopped[cmd[1]] = False
            except LimitError:
                pass
        elif cmd[0] == "stop":
            guard.stop(now)
            stopped = dict.fromkeys(CHANNELS, True)
            delivered = {c: [] for c in CHANNELS}
        elif cmd[0] == "link_lost":
            guard.link_lost(now)
            link_ok = False
            stopped = dict.fromkeys(CHANNELS, True)
            delivered = {c: [] for c in CHANNELS}
        elif cmd[0] == "limits_written":
            guard.confirm_limits_written()
            link_ok = True
        elif cmd[0] == "device":
            guard.device_level(cmd[1], int(cmd[2]), now)  # followed, but rises ramp
        elif cmd[0] == "finish":
            guard.finish(now)

        frame = guard.vet(step.demand, now)
        elapsed = now - last_t
        for ch in frame.channels:
            lim = limits.channel(ch.name)
            # within every limit
            assert 0 <= ch.level_du <= lim.ceiling_du
            assert all(0.0 <= i <= 1.0 for i in ch.intensity)
            lo, hi = limits.device.frequency_range_hz
            assert all(lo <= f <= hi for f in ch.frequency_hz)
            wlo, whi = limits.device.pulse_width_range_us
            assert all(wlo <= w <= whi for w in ch.pulse_width_us)
            if ch.rms_current_ma is not None:
                assert ch.rms_current_ma <= lim.max_rms_current_ma + 1e-9
                if limits.electrode_area_cm2 is not None:
                    assert (
                        ch.rms_current_ma / limits.electrode_area_cm2
                        <= L.ABS_MAX_CURRENT_DENSITY_MA_PER_CM2 + 1e-9
                    )
            # never faster than the ramp (one du of rounding)
            step_s = min(max(elapsed, 0.0), G.MAX_RAMP_STEP_S)
            assert ch.level_du - last_level[ch.name] <= math.floor(rate * step_s) + 1
            # delivered output rises at most at the ramp rate from the last frame, or comes
            # back to a level delivered within the envelope memory, never higher
            output = ch.level_du * max(ch.intensity)
            history = delivered[ch.name]
            previous = history[-1][1] if history else 0.0
            recent_peak = max(
                (du for t, du in history if now - t <= G.ENVELOPE_MEMORY_S), default=0.0
            )
            assert output <= max(recent_peak, previous + rate * step_s) + 1e-6
            if ch.level_du == 0:
                assert max(ch.intensity) == 0.0  # a channel at level 0 is silent
            history.append((now, output))
            # zero after stop / link loss until raised again
            if stopped[ch.name] or not link_ok:
                assert ch.level_du == 0
            # a channel without demand this frame is silent but keeps its level
            last_level[ch.name] = max(ch.level_du, guard.level_du(ch.name))
        last_t = now
        assert frame.zero == all(c.level_du == 0 or max(c.intensity) == 0 for c in frame.channels)


@settings(max_examples=300, deadline=None)
@given(plan=st.lists(steps(), min_size=1, max_size=80))
def test_uncalibrated_output_respects_every_limit(plan: list[Step]) -> None:
    guard = Guard(resolve_limits(device(), program(fraction=0.75), ceilings_du={"A": 120}))
    check_run(guard, plan)


@settings(max_examples=300, deadline=None)
@given(
    plan=st.lists(steps(), min_size=1, max_size=80),
    area=st.one_of(st.none(), st.floats(0.5, 30.0)),
    ma_per_du=st.floats(0.05, 2.0),
    max_ma=st.one_of(st.none(), st.floats(0.5, 50.0)),
)
def test_calibrated_output_respects_current_and_density_limits(
    plan: list[Step], area: float | None, ma_per_du: float, max_ma: float | None
) -> None:
    limits = resolve_limits(
        calibrated(peak_ma_per_du=ma_per_du), program(area=area, max_current_ma=max_ma)
    )
    check_run(Guard(limits), plan)
