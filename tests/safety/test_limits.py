"""The limit hierarchy: a child can lower a limit, never raise it above its parent."""

from __future__ import annotations

import pytest

from safety import Calibration, LimitError, resolve_limits
from safety import limits as L
from tests.safety.helpers import device, program


def test_defaults_take_the_program_ceiling_and_the_default_ramp() -> None:
    limits = resolve_limits(device(), program(fraction=0.5))
    assert [c.ceiling_du for c in limits.channels] == [100, 100]
    assert limits.rise_du_per_s == pytest.approx(L.DEFAULT_RISE_FRACTION_PER_S * 200)
    assert limits.max_session_s == 600.0
    assert limits.channel("B").max_rms_current_ma == L.ABS_MAX_RMS_CURRENT_MA


def test_practitioner_ceiling_may_lower_the_program_ceiling() -> None:
    limits = resolve_limits(device(), program(fraction=0.5), ceilings_du={"A": 40})
    assert limits.channel("A").ceiling_du == 40
    assert limits.channel("B").ceiling_du == 100


def test_practitioner_ceiling_above_the_program_ceiling_is_refused() -> None:
    with pytest.raises(LimitError, match=r"ceiling A=101 du .* allowed 0\.\.100 du"):
        resolve_limits(device(), program(fraction=0.5), ceilings_du={"A": 101})


def test_negative_ceiling_is_refused() -> None:
    with pytest.raises(LimitError, match=r"allowed 0\.\.200"):
        resolve_limits(device(), program(), ceilings_du={"A": -1})


def test_ceiling_for_a_channel_the_program_lacks_is_refused() -> None:
    with pytest.raises(LimitError, match="ceiling for channel C"):
        resolve_limits(device(), program(), ceilings_du={"C": 10})


def test_program_channel_missing_on_the_device_is_refused() -> None:
    with pytest.raises(LimitError, match="channel C does not exist on testdev"):
        resolve_limits(device(), program(("A", "C")))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.01])
def test_program_fraction_outside_0_1_is_refused(fraction: float) -> None:
    with pytest.raises(LimitError, match="max_level_fraction"):
        resolve_limits(device(), program(fraction=fraction))


@pytest.mark.parametrize("ma", [0.0, 50.01])
def test_program_current_cap_must_lower_the_iec_limit(ma: float) -> None:
    with pytest.raises(LimitError, match="max_current_ma"):
        resolve_limits(device(), program(max_current_ma=ma))


def test_program_current_cap_lowers_the_channel_rms_limit() -> None:
    limits = resolve_limits(device(), program(max_current_ma=8.0))
    assert limits.channel("A").max_rms_current_ma == 8.0


def test_needles_need_a_charge_balanced_device() -> None:
    with pytest.raises(LimitError, match="not charge-balanced"):
        resolve_limits(device(biphasic=False), program(electrode="needle"))
    assert resolve_limits(device(biphasic=True), program(electrode="needle")).electrode == "needle"


def test_ramp_rate_can_only_be_lowered() -> None:
    slow = resolve_limits(device(), program(), rise_fraction_per_s=0.01)
    assert slow.rise_du_per_s == pytest.approx(2.0)
    with pytest.raises(LimitError, match="ramp rate"):
        resolve_limits(device(max_rise_fraction_per_s=0.01), program(), rise_fraction_per_s=0.02)
    with pytest.raises(LimitError, match="ramp rate"):
        resolve_limits(device(), program(), rise_fraction_per_s=0.0)


def test_device_rate_below_default_wins_over_the_default() -> None:
    limits = resolve_limits(device(max_rise_fraction_per_s=0.01), program())
    assert limits.rise_du_per_s == pytest.approx(2.0)


def test_session_length_is_capped_by_device_and_absolute_limit() -> None:
    assert resolve_limits(device(), program(), session_s=60).max_session_s == 60
    with pytest.raises(LimitError, match="session length"):
        resolve_limits(device(max_session_s=1200), program(), session_s=1201)
    with pytest.raises(LimitError, match="session length"):
        resolve_limits(device(), program(), session_s=0)
    with pytest.raises(LimitError, match="session length"):
        resolve_limits(device(), program(duration_s=3601))


def test_electrode_area_from_program_or_caller_and_must_be_positive() -> None:
    assert resolve_limits(device(), program(area=4.0)).electrode_area_cm2 == 4.0
    assert (
        resolve_limits(device(), program(area=4.0), electrode_area_cm2=2.0).electrode_area_cm2 == 2
    )
    with pytest.raises(LimitError, match="electrode area"):
        resolve_limits(device(), program(), electrode_area_cm2=0.0)


def test_unknown_channel_lookup_names_the_channels() -> None:
    limits = resolve_limits(device(), program())
    assert limits.channel_names == ("A", "B")
    with pytest.raises(LimitError, match="has A, B"):
        limits.channel("Z")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"channels": ()}, "unique"),
        ({"channels": ("A", "A")}, "unique"),
        ({"max_level_du": 0}, "max_level_du"),
        ({"frequency_range_hz": (0.1, 100.0)}, "frequency_range_hz"),
        ({"frequency_range_hz": (1.0, 300.0)}, "frequency_range_hz"),
        ({"frequency_range_hz": (50.0, 10.0)}, "frequency_range_hz"),
        ({"pulse_width_range_us": (50.0, 2000.0)}, "pulse_width_range_us"),
        ({"samples_per_frame": 0}, "frame layout"),
        ({"sample_period_s": 0.0}, "frame layout"),
        ({"max_rise_fraction_per_s": 0.06}, "a file can only lower it"),
        ({"max_rise_fraction_per_s": 0.0}, "max_rise_fraction_per_s"),
        ({"max_session_s": 3601.0}, "max_session_s"),
        ({"calibration": Calibration(peak_ma_per_du=0.0)}, "calibration"),
        ({"calibration": Calibration(peak_ma_per_du=1.0, load_ohm=0.0)}, "calibration"),
    ],
)
def test_a_profile_cannot_raise_an_absolute_limit(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(LimitError, match=message):
        device(**overrides).check()


def test_frame_period_is_samples_times_sample_period() -> None:
    assert device().frame_period_s == pytest.approx(0.1)


def test_program_file_ranges_stay_inside_the_absolute_ranges() -> None:
    from waveforms import files

    lo, hi = files.FREQUENCY_RANGE_HZ
    assert L.ABS_FREQUENCY_RANGE_HZ[0] <= lo <= hi <= L.ABS_FREQUENCY_RANGE_HZ[1]
    lo, hi = files.PULSE_WIDTH_RANGE_US
    assert L.ABS_PULSE_WIDTH_RANGE_US[0] <= lo <= hi <= L.ABS_PULSE_WIDTH_RANGE_US[1]
    assert files.MAX_PROGRAM_DURATION_S <= L.ABS_MAX_SESSION_S
    assert files.ELECTRODE_AREA_CM2.hi == L.ABS_MAX_ELECTRODE_AREA_CM2


@pytest.mark.parametrize("ceiling", [50.7, 50.0, "50", True, float("nan")])
def test_a_ceiling_that_is_not_a_whole_number_of_device_units_is_refused(ceiling: object) -> None:
    with pytest.raises(LimitError, match="ceiling A="):
        resolve_limits(device(), program(), ceilings_du={"A": ceiling})  # type: ignore[dict-item]


@pytest.mark.parametrize("area", [float("inf"), float("nan"), 1e9, 500.0001, 0.0, -1.0, True, "4"])
def test_an_implausible_electrode_area_is_refused_with_the_range(area: object) -> None:
    with pytest.raises(LimitError, match=r"allowed 0 < x <= 500 cm\^2"):
        resolve_limits(device(), program(), electrode_area_cm2=area)  # type: ignore[arg-type]


def test_a_plausible_electrode_area_is_kept() -> None:
    assert resolve_limits(device(), program(), electrode_area_cm2=500).electrode_area_cm2 == 500
    assert resolve_limits(device(), program(), electrode_area_cm2=0.02).electrode_area_cm2 == 0.02


@pytest.mark.parametrize("seconds", [float("nan"), -1.0, float("inf"), 3600.5, True, "5"])
def test_a_bad_reconnect_time_is_refused(seconds: object) -> None:
    with pytest.raises(LimitError, match=r"reconnect time .* allowed 0 <= x <= 3600 s"):
        L.check_reconnect_s(seconds)  # type: ignore[arg-type]


def test_a_reconnect_time_in_range_is_kept() -> None:
    assert L.check_reconnect_s(0) == 0.0
    assert L.check_reconnect_s(600) == 600.0


def test_an_uncalibrated_device_on_the_head_gets_our_policy_ceiling() -> None:
    from safety.limits import UNCALIBRATED_HEAD_MAX_LEVEL_FRACTION, uncalibrated_head_fraction

    assert UNCALIBRATED_HEAD_MAX_LEVEL_FRACTION == 0.25  # our policy, stated
    assert uncalibrated_head_fraction(False, True) == UNCALIBRATED_HEAD_MAX_LEVEL_FRACTION
    assert uncalibrated_head_fraction(True, True) is None  # calibrated: the current caps apply
    assert uncalibrated_head_fraction(False, False) is None  # no site on the head
