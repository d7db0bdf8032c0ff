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


# --- the code a profile names, and its GATT table ---------------------------------------------

ET312 = (Path(__file__).resolve().parents[2] / "device_profiles" / "et312.toml").read_text()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'codec = "coyote3"',
            'codec = "firmware_bridge/codecs/coyote3.py"',
            r"\[device\] codec = 'firmware_bridge/codecs/coyote3.py' is not a module's name or "
            r"import path; allowed a module that defines Driver",
        ),
        (
            'simulator = "coyote3"',
            'simulator = "simulators.coyote3:Coyote3Simulator"',
            r"\[device\] simulator = 'simulators.coyote3:Coyote3Simulator' is not a module's "
            r"name or import path; allowed a module with the simulator class",
        ),
        (
            'simulator_class = "Coyote3Simulator"',
            'simulator_class = "Coyote3Simulator()"',
            r"\[device\] simulator_class = 'Coyote3Simulator\(\)' is not a class name",
        ),
        (
            'simulator_class = "Coyote3Simulator"\n',
            "",
            r"\[device\] simulator_class is missing; a profile with a simulator names its class",
        ),
        (
            'simulator = "coyote3"',
            "",
            r"\[device\] simulator_class is set without a simulator",
        ),
        (
            '[[gatt]]\nservice = "0000180c',
            '[[gatz]]\nservice = "0000180c',
            r"unknown table \[gatz\]",
        ),
        (
            'service = "0000180c-0000-1000-8000-00805f9b34fb"',
            'service = "180c"',
            r"\[gatt #1\] service = '180c' is not a 128-bit UUID; allowed 8-4-4-4-12 hex digits",
        ),
        (
            'properties = ["notify"] }',
            'properties = ["notify", "subscribe"] }',
            r"\[gatt #1 characteristic #2\] properties: 'subscribe' is not a GATT property; "
            r"allowed read, write, write-without-response, notify, indicate",
        ),
        (
            'properties = ["notify"] }',
            "properties = [] }",
            r"\[gatt #1 characteristic #2\] properties is empty",
        ),
        (
            'properties = ["notify"] }',
            'properties = ["notify"], handle = 3 }',
            r"\[gatt #1 characteristic #2\] unknown field 'handle'",
        ),
        (
            '"0000150b-0000-1000-8000-00805f9b34fb"',
            '"0000150A-0000-1000-8000-00805f9b34fb"',
            r"\[gatt #1 characteristic #2\] uuid = '0000150a-0000-1000-8000-00805f9b34fb' is "
            "listed twice",
        ),
    ],
)
def test_bad_code_names_and_gatt_tables_give_one_clear_line(
    old: str, new: str, message: str
) -> None:
    assert COYOTE3.count(old) == 1
    with pytest.raises(ProfileError, match=message) as info:
        parse_profile(COYOTE3.replace(old, new), "bad.toml")
    assert str(info.value).startswith("bad.toml: ")
    assert "\n" not in str(info.value)


def test_a_ble_profile_needs_a_gatt_table_and_a_serial_one_has_none() -> None:
    without = COYOTE3.partition("\n[[gatt]]\n")[0]
    with pytest.raises(ProfileError, match=r"^bad\.toml: \[\[gatt\]\] is missing; a BLE device"):
        parse_profile(without, "bad.toml")
    with pytest.raises(
        ProfileError,
        match=r"^bad\.toml: \[gatt\] must be one or more services, each written as a \[\[gatt\]\]",
    ):
        parse_profile(
            without + '\n[gatt]\nservice = "0000180c-0000-1000-8000-00805f9b34fb"\n', "bad.toml"
        )
    table = COYOTE3[COYOTE3.index("\n[[gatt]]\n") :]
    with pytest.raises(
        ProfileError, match=r"^bad\.toml: \[\[gatt\]\] is for BLE devices; this profile has "
    ):
        parse_profile(ET312 + table, "bad.toml")


def test_the_code_a_profile_names_is_imported_and_checked() -> None:
    from dataclasses import replace

    from device_profiles.profile import codec_module, simulator_class
    from firmware_bridge.codecs import coyote3 as codec
    from simulators.coyote3 import Coyote3Simulator

    p = load_profile("coyote3")
    assert p.codec_module_path == "firmware_bridge.codecs.coyote3"
    assert p.simulator_module_path == "simulators.coyote3"
    assert codec_module(p) is codec
    assert simulator_class(p) is Coyote3Simulator
    full = replace(p, codec="firmware_bridge.codecs.coyote3", simulator="simulators.coyote3")
    assert codec_module(full) is codec and simulator_class(full) is Coyote3Simulator
    with pytest.raises(
        ProfileError,
        match=r"^coyote3\.toml: \[device\] codec = 'nosuch': no codec called 'nosuch' \(there is "
        r"no module firmware_bridge\.codecs\.nosuch\); allowed a module that defines Driver",
    ):
        codec_module(replace(p, codec="nosuch"))
    with pytest.raises(ProfileError, match=r"module safety\.limits defines no class Driver"):
        codec_module(replace(p, codec="safety.limits"))
    with pytest.raises(ProfileError, match=r"no simulator called 'nosuch\.sim'"):
        simulator_class(replace(p, simulator="nosuch.sim"))
    with pytest.raises(
        ProfileError,
        match=r"^coyote3\.toml: \[device\] simulator_class = 'Nosuch': module simulators\.coyote3 "
        r"defines no class 'Nosuch'",
    ):
        simulator_class(replace(p, simulator_class="Nosuch"))
    with pytest.raises(ProfileError, match=r"\[device\] simulator is not set"):
        simulator_class(replace(p, simulator=None, simulator_class=None))


def test_a_built_in_profile_naming_a_missing_module_does_not_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import device_profiles.profile

    monkeypatch.setattr(device_profiles.profile, "builtin_folder", lambda: tmp_path)
    (tmp_path / "coyote9.toml").write_text(
        COYOTE3.replace('id = "coyote3"', 'id = "coyote9"').replace(
            'simulator = "coyote3"', 'simulator = "coyote9"'
        )
    )
    assert builtin_profile_ids() == ["coyote9"]
    with pytest.raises(
        ProfileError,
        match=r"^coyote9\.toml: \[device\] simulator = 'coyote9': no simulator called 'coyote9' "
        r"\(there is no module simulators\.coyote9\)",
    ):
        load_profile("coyote9")


def test_each_profile_says_whether_its_outputs_are_isolated_and_why() -> None:
    isolated = {ident: load_profile(ident).isolated_outputs for ident in builtin_profile_ids()}
    # the ET-312 has one output transformer per channel; the rest: not isolated or unknown
    assert isolated == {"coyote2": False, "coyote3": False, "et312": True, "pulsepal": False}
    for ident in builtin_profile_ids():
        assert load_profile(ident).isolated_outputs_source.strip(), ident
    assert "BOM-full.csv: TR1, TR2" in load_profile("et312").isolated_outputs_source
    assert "unknown counts as not isolated" in load_profile("coyote3").isolated_outputs_source


def test_isolation_unknown_counts_as_not_isolated_and_a_claim_needs_its_source() -> None:
    without = COYOTE3.replace("isolated_outputs = false\n", "").replace(
        "isolated_outputs_source", "# isolated_outputs_source"
    )
    assert "isolated_outputs" not in without.replace("# isolated_outputs_source", "")
    assert parse_profile(without).isolated_outputs is False
    claimed = without.replace("biphasic = false", "biphasic = false\nisolated_outputs = true")
    with pytest.raises(ProfileError) as info:
        parse_profile(claimed, "c.toml")
    assert str(info.value) == (
        "c.toml: [output] isolated_outputs = true without isolated_outputs_source; allowed "
        "only with the source of the fact (a claim of isolated outputs needs one), or "
        "isolated_outputs = false"
    )
