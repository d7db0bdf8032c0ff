"""Profiles load, are checked, and can only lower the absolute limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_profiles import ProfileError, builtin_profile_ids, load_profile, parse_profile

COYOTE3 = (Path(__file__).resolve().parents[2] / "device_profiles" / "coyote3.toml").read_text()


def test_every_builtin_profile_loads_and_checks() -> None:
    assert "coyote3" in builtin_profile_ids()
    for ident in builtin_profile_ids():
        profile = load_profile(ident)
        assert profile.id == ident
        profile.limits.check()


def test_coyote3_profile_states_what_the_reference_says() -> None:
    p = load_profile("coyote3")
    assert p.link == "ble"
    assert p.ble_names == ("47L121000",)
    assert p.channels == ("A", "B")
    assert p.limits.max_level_du == 200
    assert p.limits.frequency_range_hz == (1.0, 100.0)  # periods 10..1000 ms
    assert p.limits.frame_period_s == pytest.approx(0.1)
    assert p.stops_when_host_silent
    assert not p.calibrated
    assert not p.limits.biphasic  # undocumented: treated as not charge-balanced
    assert p.device_settings == {"frequency_balance": 160, "intensity_balance": 0}


def test_profile_by_path(tmp_path: Path) -> None:
    # a file names a built-in model and may lower its limits (tests in test_profile_lowering)
    path = tmp_path / "mine.toml"
    path.write_text(COYOTE3.replace("level_max_du = 200", "level_max_du = 100"))
    profile = load_profile(path)
    assert profile.id == "coyote3"
    assert profile.limits.max_level_du == 100
    assert profile.source_path == str(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("level_max_du = 200", "level_max_du = 0", r"level_max_du = 0 is out of range"),
        ("frequency_max_hz = 100.0", "frequency_max_hz = 500.0", "frequency_range_hz"),
        (
            "max_rise_fraction_per_s = 0.05",
            "max_rise_fraction_per_s = 0.5",
            r"max_rise_fraction_per_s = 0.5 is out of range",
        ),
        ('link = "ble"', 'link = "usb"', "allowed 'ble' or 'serial'"),
        ("biphasic = false", 'biphasic = "no"', "biphasic = 'no' is not true or false"),
        ("samples_per_frame = 4", "samples_per_frame = 4\nsamples = 3", "unknown field 'samples'"),
        ("[limits]", "[limitz]", r"unknown table \[limitz\]"),
        ('id = "coyote3"\n', "", r"\[device\] id is missing"),
        ("frequency_balance = 160", "frequency_balance = 70000", "out of range"),
    ],
)
def test_bad_profiles_give_one_clear_line(old: str, new: str, message: str) -> None:
    assert old in COYOTE3
    with pytest.raises(ProfileError, match=message) as info:
        parse_profile(COYOTE3.replace(old, new, 1), "bad.toml")
    assert str(info.value).startswith("bad.toml: ")
    assert "\n" not in str(info.value)


def test_syntax_errors_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="TOML syntax error"):
        parse_profile("[device\n", "x.toml")
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.toml")
    with pytest.raises(ProfileError, match=r"unknown device 'nosuch'; built-in devices: .*coyote3"):
        load_profile("nosuch")
    big = tmp_path / "big.toml"
    big.write_text("#" * 70_000)
    with pytest.raises(ProfileError, match="larger than"):
        load_profile(big)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(binary)


def test_calibration_table_is_read() -> None:
    text = COYOTE3 + "\n[calibration]\npeak_ma_per_du = 0.4\nload_ohm = 500\n"
    p = parse_profile(text)
    assert p.calibrated
    assert p.limits.calibration is not None
    assert p.limits.calibration.peak_ma_per_du == 0.4
