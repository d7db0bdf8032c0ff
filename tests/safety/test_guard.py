"""The guard, rule by rule."""

from __future__ import annotations

import copy
import itertools
import math
import pickle

import pytest

from safety import (
    Guard,
    LimitError,
    Phase,
    SafetyError,
    UnvettedFrameError,
    VettedChannel,
    VettedFrame,
    require_vetted,
    resolve_limits,
)
from safety import guard as G
from safety import limits as L
from tests.safety.helpers import calibrated, demand, device, program

FRAME_S = 0.1


def running(limits_kwargs: dict[str, object] | None = None, **prog: object) -> Guard:
    g = Guard(resolve_limits(device(), program(**prog), **(limits_kwargs or {})))  # type: ignore[arg-type]
    g.start(0.0)
    g.confirm_limits_written()
    return g


def levels(frame: VettedFrame) -> dict[str, int]:
    return {c.name: c.level_du for c in frame.channels}


def run_frames(g: Guard, start_s: float, n: int, **d: object) -> list[VettedFrame]:
    return [
        g.vet([demand("A", **d), demand("B", **d)], start_s + i * FRAME_S)  # type: ignore[arg-type]
        for i in range(n)
    ]


# --- start at zero ---------------------------------------------------------------------------
def test_output_is_zero_before_start() -> None:
    g = Guard(resolve_limits(device(), program()))
    g.confirm_limits_written()
    g.set_level("A", 50, 0.0)
    frame = g.vet([demand("A")], 1.0)
    assert frame.zero and levels(frame) == {"A": 0, "B": 0}
    assert g.phase is Phase.READY


def test_output_is_zero_until_device_limits_are_written() -> None:
    g = Guard(resolve_limits(device(), program()))
    g.set_level("A", 50, 0.0)  # chosen before the session starts
    g.start(0.0)
    assert all(f.zero for f in run_frames(g, 0.0, 30))
    with pytest.raises(LimitError, match="reconnecting"):
        g.set_level("A", 60, 3.0)  # no raising while the device's limits are not written
    g.set_level("A", 40, 3.0)  # lowering is always allowed
    g.confirm_limits_written()
    assert g.limits_written
    # the ramp starts from zero when output becomes possible (4 du/s), not from where time says
    frames = run_frames(g, 3.0, 3)
    assert [f.channel("A").level_du for f in frames] == [0, 0, 1]


def test_level_starts_at_zero_and_rises_at_the_ramp_rate() -> None:
    g = running()
    g.set_level("A", 40, 0.0)
    frames = run_frames(g, 0.0, 101)  # 10 s at 0.1 s
    a = [f.channel("A").level_du for f in frames]
    assert a[0] == 0
    rate = L.DEFAULT_RISE_FRACTION_PER_S * 200  # 4 du/s
    for i, level in enumerate(a):
        assert level <= rate * i * FRAME_S + 1e-9
    assert a[-1] == 40
    assert a[50] == 20  # 5 s at 4 du/s


def test_falls_apply_at_once() -> None:
    g = running()
    g.set_level("A", 10, 0.0)
    run_frames(g, 0.0, 40)
    assert g.level_du("A") == 10
    g.set_level("A", 2, 4.0)
    assert g.level_du("A") == 2  # before the next frame
    assert g.vet([demand("A")], 4.05).channel("A").level_du == 2


def test_clock_jump_does_not_jump_the_level() -> None:
    g = running()
    g.set_level("A", 100, 0.0)
    g.vet([demand("A")], 0.0)
    frame = g.vet([demand("A")], 9.0)  # 9 s without a frame
    assert frame.channel("A").level_du <= math.floor(4 * G.MAX_RAMP_STEP_S) + 1


def test_clock_going_backwards_does_not_raise_the_level() -> None:
    g = running()
    g.set_level("A", 100, 0.0)
    g.vet([demand("A")], 1.0)
    before = g.level_du("A")
    g.vet([demand("A")], 0.5)
    assert g.level_du("A") == before


# --- ceilings and commands ---------------------------------------------------------------------
def test_level_above_the_ceiling_is_refused_with_the_range() -> None:
    g = running({"ceilings_du": {"A": 30}})
    with pytest.raises(LimitError, match=r"A=31 du .* allowed 0\.\.30 du"):
        g.set_level("A", 31, 0.0)
    with pytest.raises(LimitError, match=r"allowed 0\.\.30"):
        g.set_level("A", -1, 0.0)
    assert g.ceiling_du("A") == 30 and g.target_du("A") == 0


@pytest.mark.parametrize("bad", [True, 1.5, "10"])
def test_level_must_be_a_whole_number(bad: object) -> None:
    g = running()
    with pytest.raises(LimitError, match="whole number"):
        g.set_level("A", bad, 0.0)  # type: ignore[arg-type]


def test_unknown_channel_command_is_refused() -> None:
    g = running()
    with pytest.raises(LimitError, match="unknown channel 'Z'"):
        g.set_level("Z", 1, 0.0)


def test_elapsed_time_counts_from_start() -> None:
    g = Guard(resolve_limits(device(), program()))
    assert g.elapsed_s(5.0) == 0.0
    g.start(1.0)
    assert g.elapsed_s(5.0) == 4.0 and g.elapsed_s(0.0) == 0.0


def test_start_twice_is_refused() -> None:
    g = running()
    with pytest.raises(SafetyError, match="already running"):
        g.start(1.0)


# --- stop, pause, never resume by itself ----------------------------------------------------
def test_stop_returns_zero_and_nothing_resumes_until_raised_again() -> None:
    g = running()
    g.set_level("A", 20, 0.0)
    g.set_level("B", 20, 0.0)
    run_frames(g, 0.0, 80)
    assert g.level_du("A") == 20
    zero = g.stop(8.0)
    assert zero.zero and levels(zero) == {"A": 0, "B": 0}
    later = run_frames(g, 8.1, 100)
    assert all(f.zero for f in later)
    g.set_level("A", 20, 18.0)
    after = run_frames(g, 18.1, 3)
    assert after[0].channel("A").level_du <= 1  # starts again from zero
    kinds = [n.kind for n in g.drain_notices()]
    assert "stop" in kinds
    assert g.drain_notices() == []


def test_link_lost_zeroes_and_requires_limits_again() -> None:
    g = running()
    g.set_level("A", 20, 0.0)
    run_frames(g, 0.0, 80)
    g.link_lost(8.0, "radio gone")
    assert not g.limits_written and g.target_du("A") == 0
    assert all(f.zero for f in run_frames(g, 8.1, 10))
    g.confirm_limits_written()
    assert all(f.zero for f in run_frames(g, 9.1, 10))  # no automatic resume
    assert [n.message for n in g.drain_notices() if n.kind == "link_lost"] == [
        "device link lost (radio gone): levels reset to zero"
    ]


# --- session time limit ------------------------------------------------------------------------
def test_time_limit_ramps_down_then_ends_for_ever() -> None:
    g = running({"session_s": 20.0})
    g.set_level("A", 30, 0.0)
    frames = run_frames(g, 0.0, 400)  # 40 s
    a = [f.channel("A").level_du for f in frames]
    assert a[199] == 30  # at 19.9 s
    ending = a[200 : 200 + int(L.END_RAMP_DOWN_S / FRAME_S) + 2]
    assert all(x >= y for x, y in itertools.pairwise(ending))  # never rises
    assert 0 < a[205] < 30  # a gentle ramp, not a jump
    assert g.phase is Phase.ENDED
    assert all(f.zero for f in frames[240:])
    with pytest.raises(LimitError, match="session has ended"):
        g.set_level("A", 1, 40.0)
    kinds = [n.kind for n in g.drain_notices()]
    assert kinds.count("time_limit") == 1 and "ended" in kinds


def test_finish_ramps_down_and_a_second_finish_is_harmless() -> None:
    g = running()
    g.set_level("A", 10, 0.0)
    run_frames(g, 0.0, 40)
    g.finish(4.0)
    g.finish(4.0)
    assert g.phase is Phase.ENDING
    run_frames(g, 4.0, 40)
    assert g.phase is Phase.ENDED


def test_ending_also_reaches_zero_on_channels_without_demand() -> None:
    g = running()
    g.set_level("A", 10, 0.0)
    g.set_level("B", 10, 0.0)
    run_frames(g, 0.0, 40)
    g.finish(4.0)
    for i in range(50):
        g.vet([demand("A")], 4.0 + i * FRAME_S)  # B's program has ended: no demand
    assert g.phase is Phase.ENDED and g.level_du("B") == 0


def test_end_is_immediate_and_permanent() -> None:
    g = running()
    g.set_level("A", 10, 0.0)
    run_frames(g, 0.0, 40)
    assert g.end(4.0).zero
    assert g.phase is Phase.ENDED and all(f.zero for f in run_frames(g, 4.1, 5))


# --- following the device ----------------------------------------------------------------------
def test_device_wheel_down_is_followed() -> None:
    g = running()
    g.set_level("A", 30, 0.0)
    run_frames(g, 0.0, 100)
    g.device_level("A", 12, 10.0)
    assert g.level_du("A") == 12 and g.target_du("A") == 12
    assert g.vet([demand("A")], 10.1).channel("A").level_du == 12


def test_device_wheel_up_is_followed_at_the_ramp_rate_never_above_the_ceiling() -> None:
    g = running({"ceilings_du": {"A": 25}})
    g.set_level("A", 5, 0.0)
    run_frames(g, 0.0, 20)
    assert g.level_du("A") == 5
    g.device_level("A", 20, 2.0)
    assert g.target_du("A") == 20
    assert g.level_du("A") == 5  # no jump: the rise is ramped
    levels = [f.channel("A").level_du for f in run_frames(g, 2.1, 60)]
    assert levels[0] <= 6
    assert levels[-1] == 20
    g.device_level("A", 90, 9.0)
    assert g.target_du("A") == 25
    messages = [n.message for n in g.drain_notices()]
    assert any("above the ceiling" in m for m in messages)


def test_device_rise_is_ignored_after_a_stop() -> None:
    g = running()
    g.set_level("A", 10, 0.0)
    run_frames(g, 0.0, 40)
    g.stop(4.0)
    g.device_level("A", 10, 4.01)  # a wheel report that crossed the stop on the radio
    assert g.target_du("A") == 0
    assert all(f.zero for f in run_frames(g, 4.1, 20))


def test_device_level_cannot_raise_output_outside_a_running_session() -> None:
    g = Guard(resolve_limits(device(), program()))
    g.device_level("A", 50, 0.0)
    assert g.level_du("A") == 0
    g.device_level("A", -5, 0.0)
    assert g.level_du("A") == 0


# --- device ranges -----------------------------------------------------------------------------
def test_demands_are_clamped_to_device_ranges_with_a_notice() -> None:
    g = running()
    g.set_level("A", 10, 0.0)
    run_frames(g, 0.0, 100)  # level and delivered output ramped up to 10 du
    frame = g.vet([demand("A", frequency_hz=150.0, pulse_width_us=900.0, intensity=1.5)], 10.1)
    a = frame.channel("A")
    assert a.frequency_hz == (100.0,) * 4
    assert a.pulse_width_us == (500.0,) * 4
    assert a.intensity == (1.0,) * 4
    low = g.vet([demand("A", frequency_hz=0.5, pulse_width_us=10.0, intensity=-1)], 10.2)
    assert low.channel("A").frequency_hz == (1.0,) * 4
    assert low.channel("A").pulse_width_us == (50.0,) * 4
    assert low.channel("A").intensity == (0.0,) * 4
    assert [n.kind for n in g.drain_notices()].count("clamped") == 1


def test_non_finite_demand_becomes_silence() -> None:
    g = running()
    g.set_level("A", 10, 0.0)
    run_frames(g, 0.0, 30)
    frame = g.vet([demand("A", intensity=math.nan)], 3.0)
    assert frame.channel("A").intensity == (0.0,) * 4
    frame = g.vet([demand("A", frequency_hz=math.inf)], 3.1)
    assert frame.channel("A").intensity == (0.0,) * 4


def test_wrong_sample_count_and_unknown_channel_are_errors() -> None:
    g = running()
    with pytest.raises(SafetyError, match="frames hold 4"):
        g.vet([demand("A", n=3)], 0.1)
    with pytest.raises(SafetyError, match="not in this session"):
        g.vet([demand("C")], 0.1)


def test_device_channels_outside_the_session_stay_silent() -> None:
    g = Guard(resolve_limits(device(), program(("A",))))
    g.start(0.0)
    g.confirm_limits_written()
    frame = g.vet([demand("A")], 0.1)
    assert frame.channel("B").level_du == 0 and frame.channel("B").intensity == (0.0,) * 4


def test_zero_flag_reflects_effective_output() -> None:
    g = running()
    g.set_level("A", 10, 0.0)
    frames = run_frames(g, 0.0, 100)
    assert frames[0].zero and not frames[-1].zero
    assert frames[-1].channel("A").output_du == frames[-1].channel("A").level_du
    silent = g.vet([demand("A", intensity=0.0)], 10.0)
    assert silent.zero


# --- calibrated devices ------------------------------------------------------------------------
def calibrated_guard(area: float | None, max_current_ma: float | None = None) -> Guard:
    limits = resolve_limits(
        calibrated(peak_ma_per_du=0.5), program(area=area, max_current_ma=max_current_ma)
    )
    g = Guard(limits)
    g.start(0.0)
    g.confirm_limits_written()
    return g


def test_calibrated_frames_report_current_and_charge() -> None:
    g = calibrated_guard(area=25.0)
    g.set_level("A", 20, 0.0)
    frames = run_frames(g, 0.0, 60, frequency_hz=100.0, pulse_width_us=200.0)
    a = frames[-1].channel("A")
    assert a.level_du == 20
    assert a.peak_current_ma == pytest.approx(10.0)
    assert a.rms_current_ma == pytest.approx(2.0)  # duty 0.04 -> 0.2 x peak
    assert a.current_density_ma_per_cm2 == pytest.approx(0.08)
    assert a.charge_per_phase_uc == pytest.approx(2.0)


def test_rms_current_is_capped_by_the_program_limit() -> None:
    g = calibrated_guard(area=None, max_current_ma=2.0)
    g.set_level("A", 200, 0.0)
    frames = run_frames(g, 0.0, 600, frequency_hz=100.0, pulse_width_us=200.0)
    for f in frames:
        rms = f.channel("A").rms_current_ma
        assert rms is not None and rms <= 2.0 + 1e-9
    assert frames[-1].channel("A").level_du == 20
    assert any(n.kind == "limited" for n in g.drain_notices())
    assert frames[-1].channel("A").current_density_ma_per_cm2 is None


def test_density_warns_at_2_and_caps_at_the_hard_limit() -> None:
    g = calibrated_guard(area=1.0)  # 1 cm^2: warn at 2 mA rms, cap at 2.5 mA rms
    g.set_level("A", 200, 0.0)
    frames = run_frames(g, 0.0, 600, frequency_hz=100.0, pulse_width_us=200.0)
    densities = [f.channel("A").current_density_ma_per_cm2 or 0.0 for f in frames]
    assert max(densities) <= L.ABS_MAX_CURRENT_DENSITY_MA_PER_CM2 + 1e-9
    kinds = [n.kind for n in g.drain_notices()]
    assert kinds.count("density_warning") == 1 and kinds.count("limited") == 1
    # back under the threshold: the warning clears and can be raised again later
    g.set_level("A", 5, 60.0)
    g.vet([demand("A", frequency_hz=100.0, pulse_width_us=200.0)], 60.1)
    assert g.drain_notices() == []


def test_silent_calibrated_frame_has_zero_current() -> None:
    g = calibrated_guard(area=4.0)
    g.set_level("A", 20, 0.0)
    run_frames(g, 0.0, 60)
    a = g.vet([demand("A", intensity=0.0)], 6.0).channel("A")
    assert a.rms_current_ma == 0.0 and a.peak_current_ma == 0.0


# --- only the guard makes frames ---------------------------------------------------------------
def test_frames_cannot_be_made_outside_the_guard() -> None:
    with pytest.raises(UnvettedFrameError):
        VettedFrame(seal=object(), channels=(), t_s=0.0, zero=True)
    with pytest.raises(UnvettedFrameError):
        VettedChannel(
            seal=None, name="A", level_du=200, frequency_hz=(), pulse_width_us=(), intensity=()
        )


def test_frames_are_immutable_and_not_copyable_into_new_frames() -> None:
    frame = running().zero_frame()
    with pytest.raises(AttributeError):
        frame.zero = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del frame.t_s
    with pytest.raises(AttributeError):
        frame.channels[0].level_du = 200  # type: ignore[misc]
    with pytest.raises(TypeError):
        pickle.dumps(frame)
    assert copy.copy(frame) is frame and copy.deepcopy(frame) is frame
    assert "zero=True" in repr(frame) and "level=0du" in repr(frame.channels[0])
    with pytest.raises(KeyError):
        frame.channel("Z")


def test_require_vetted_refuses_look_alikes_and_subclasses() -> None:
    frame = running().zero_frame()
    assert require_vetted(frame) is frame

    class Fake(VettedFrame):
        def __init__(self) -> None:
            pass

    for bogus in (object(), Fake(), "B0..."):
        with pytest.raises(UnvettedFrameError, match="only frames made by the safety guard"):
            require_vetted(bogus)


def test_check_levels_refuses_what_the_guard_would_and_makes_no_frame() -> None:
    limits = resolve_limits(device(), program(fraction=0.5))
    G.check_levels(limits, {"A": 100, "B": 0})
    with pytest.raises(LimitError, match=r"allowed 0\.\.100 du"):
        G.check_levels(limits, {"A": 101})
    with pytest.raises(LimitError, match="whole number"):
        G.check_levels(limits, {"A": 1.5})  # type: ignore[dict-item]


def test_time_running_out_while_the_link_is_down_ends_at_once_and_says_so() -> None:
    g = running(limits_kwargs={"session_s": 10.0})
    g.set_level("A", 20, 0.0)
    run_frames(g, 0.0, 50)
    g.link_lost(5.0)
    assert not g.ended_while_link_down
    frame = g.vet([demand("A")], 10.5)  # the cap passes while the link is down
    assert frame.zero and g.phase is Phase.ENDED and g.ended_while_link_down
    g.confirm_limits_written()  # the link comes back: nothing resumes
    assert g.vet([demand("A")], 11.0).zero
