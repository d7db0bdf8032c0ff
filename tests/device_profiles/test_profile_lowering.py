"""A user profile names a built-in model and may only lower what its built-in profile allows.

Unit tests: one per field and direction (raised: refused with one line naming file, field,
built-in value and what is allowed; lowered: accepted). End to end: the profile copies of the
outside review, run through the CLI, exit 2 with one line and the device receives nothing; a
lowered copy runs, and the simulator's record never exceeds the lowered limit.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import device_profiles.profile
import firmware_bridge.link
from acustim import Engine
from acustim.cli import main
from device_profiles import ProfileError, builtin_profile_ids, load_profile
from device_profiles.lowering import _show as show
from device_profiles.lowering import check_lowers
from device_profiles.profile import DeviceProfile, load_builtin_profile, parse_user_profile
from safety import LimitError
from safety.limits import Calibration, DeviceLimits
from tests.programs import continuous

FOLDER = Path(__file__).resolve().parents[2] / "device_profiles"


def builtin_text(ident: str) -> str:
    return (FOLDER / f"{ident}.toml").read_text(encoding="utf-8")


def builtin_value(ident: str, table: str, key: str) -> Any:
    return tomllib.loads(builtin_text(ident))[table][key]


def edit(ident: str, key: str, value: str | None) -> str:
    """The built-in profile's text with ``key = value`` (the key's line removed for None)."""
    text = builtin_text(ident)
    line = re.compile(rf"^{re.escape(key)}\s*=\s*(.*?)(\s+#.*)?$", re.MULTILINE)
    assert len(line.findall(text)) == 1, f"{key} is not once in {ident}.toml"
    if value is None:
        return line.sub("", text, count=1)
    return line.sub(lambda m: f"{key} = {value}{m.group(2) or ''}", text, count=1)


def without_calibration(ident: str) -> str:
    text = builtin_text(ident)
    head, sep, tail = text.partition("\n[calibration]\n")
    assert sep and "\n[" not in tail, f"{ident}.toml: [calibration] is not its last table"
    return head + "\n"


def toml(value: Any) -> str:
    """A Python value written as TOML (for the few kinds profiles use)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return repr(value)


# --- raised: refused --------------------------------------------------------------------------

#: (field of DeviceProfile / DeviceLimits / Calibration, model, [table], key, a raised value
#:  from the built-in's)
RAISED: list[tuple[str, str, str, str, Callable[[Any], Any]]] = [
    ("name", "coyote3", "device", "name", lambda v: "Mine"),
    ("link", "coyote3", "device", "link", lambda v: "serial"),
    ("codec", "coyote3", "device", "codec", lambda v: "coyote2"),
    ("simulator", "coyote3", "device", "simulator", lambda v: "coyote2"),
    ("simulator", "coyote3", "device", "simulator", lambda v: "simulators.coyote2"),
    ("simulator_class", "coyote3", "device", "simulator_class", lambda v: "Coyote2Simulator"),
    ("codec", "coyote2", "device", "codec", lambda v: "tests.contract.fakedev.codec"),
    ("serial_baud", "et312", "device", "serial_baud", lambda v: v // 2),
    ("ble_names", "coyote3", "device", "ble_names", lambda v: [*v, "OTHER"]),
    ("stops_when_host_silent", "et312", "device", "stops_when_host_silent", lambda v: True),
    (
        "stops_when_host_silent_note",
        "et312",
        "device",
        "stops_when_host_silent_note",
        lambda v: "it stops; " + v,
    ),
    ("channels", "coyote3", "output", "channels", lambda v: [*v, "C"]),
    ("max_level_du", "coyote3", "output", "level_max_du", lambda v: v + 1),
    ("level_unit", "pulsepal", "output", "level_unit", lambda v: "du"),
    ("frequency_range_hz", "et312", "output", "frequency_min_hz", lambda v: v / 2),
    ("frequency_range_hz", "coyote3", "output", "frequency_max_hz", lambda v: v + 50.0),
    ("pulse_width_controlled", "coyote3", "output", "pulse_width_controlled", lambda v: not v),
    ("pulse_width_range_us", "et312", "output", "pulse_width_min_us", lambda v: v - 10.0),
    ("pulse_width_range_us", "coyote2", "output", "pulse_width_max_us", lambda v: v + 50.0),
    ("biphasic", "coyote3", "output", "biphasic", lambda v: True),
    # a file cannot claim isolated outputs (which lets cross-channel paths run)
    ("isolated_outputs", "coyote3", "output", "isolated_outputs", lambda v: True),
    ("isolated_outputs", "pulsepal", "output", "isolated_outputs", lambda v: True),
    (
        "isolated_outputs_source",
        "et312",
        "output",
        "isolated_outputs_source",
        lambda v: "my own measurement",
    ),
    ("samples_per_frame", "coyote3", "frame", "samples_per_frame", lambda v: v * 2),
    ("sample_period_s", "coyote3", "frame", "sample_period_s", lambda v: 5.0),
    ("frames_ahead", "coyote3", "frame", "frames_ahead", lambda v: v + 1),
    ("device_settings", "coyote3", "device_settings", "frequency_balance", lambda v: v - 60),
    ("peak_ma_per_du", "pulsepal", "calibration", "peak_ma_per_du", lambda v: v / 2),
    ("load_ohm", "pulsepal", "calibration", "load_ohm", lambda v: v * 2),
]


@pytest.mark.parametrize(
    ("attr", "ident", "table", "key", "raise_"), RAISED, ids=[f"{r[0]}-{r[3]}" for r in RAISED]
)
def test_a_raised_field_is_refused_with_one_line(
    attr: str, ident: str, table: str, key: str, raise_: Callable[[Any], Any]
) -> None:
    value = builtin_value(ident, table, key)
    with pytest.raises(ProfileError) as info:
        parse_user_profile(edit(ident, key, toml(raise_(value))), "mine.toml")
    message = str(info.value)
    assert "\n" not in message
    if table == "device_settings":
        field = "[device_settings] = "
        shown = show(tomllib.loads(builtin_text(ident))[table])
    else:
        field, shown = f"[{table}] {key} = {show(raise_(value))}: ", show(value)
    assert message.startswith(f"mine.toml: {field}"), message
    assert f"the built-in {ident} profile has {shown}; allowed " in message, message


def test_a_calibration_cannot_be_dropped() -> None:
    with pytest.raises(ProfileError) as info:
        parse_user_profile(without_calibration("pulsepal"), "mine.toml")
    assert str(info.value).startswith(
        "mine.toml: [calibration] is missing: the built-in pulsepal profile has [calibration] "
        "peak_ma_per_du = 0.002, load_ohm = 500; allowed a [calibration] table with "
        "peak_ma_per_du >= 0.002 and load_ohm = 500"
    ), info.value


#: more refusals of the same fields, in the other ways a file could widen them
MORE_RAISED: list[tuple[str, str, Callable[[Any], str | None], str]] = [
    ("coyote3", "channels", lambda v: '["B", "A"]', r"\[output\] channels"),
    ("coyote3", "channels", lambda v: '["A"]', r"\[output\] channels"),
    ("coyote3", "simulator", lambda v: None, r"\[device\] simulator = \(not set\)"),
    ("coyote3", "sample_period_s", lambda v: toml(v / 2), r"\[frame\] sample_period_s"),
    ("coyote3", "frames_ahead", lambda v: toml(max(0, v - 1)), r"\[frame\] frames_ahead"),
    ("coyote2", "level_max_du", lambda v: toml(v + 47), r"\[output\] level_max_du"),
    ("pulsepal", "level_max_du", lambda v: toml(v + 1), r"\[output\] level_max_du"),
    ("pulsepal", "stops_when_host_silent", lambda v: "true", r"stops_when_host_silent = true"),
    ("pulsepal", "serial_baud", lambda v: toml(v * 2), r"\[device\] serial_baud"),
    # calibrated: "not biphasic" would halve the duty the guard counts for rms current
    ("pulsepal", "biphasic", lambda v: "false", r"\[output\] biphasic = false"),
    ("pulsepal", "load_ohm", lambda v: toml(v / 2), r"\[calibration\] load_ohm"),
    ("et312", "mode", lambda v: toml(v + 1), r"\[device_settings\]"),
    ("et312", "mode", lambda v: f"{v}\nextra_setting = 5", r"\[device_settings\]"),
    ("coyote3", "intensity_balance", lambda v: None, r"\[device_settings\]"),
    ("et312", "frequency_max_hz", lambda v: toml(v + 1.0), r"\[output\] frequency_max_hz"),
    ("et312", "pulse_width_max_us", lambda v: toml(v + 4.0), r"\[output\] pulse_width_max_us"),
    (
        "coyote3",
        "stops_when_host_silent_note",
        lambda v: '"it stops"',
        r"\[device\] stops_when_host_silent_note",
    ),
]


@pytest.mark.parametrize(
    ("ident", "key", "raise_", "message"),
    MORE_RAISED,
    ids=[f"{r[0]}-{r[1]}-{i}" for i, r in enumerate(MORE_RAISED)],
)
def test_other_ways_of_widening_are_refused(
    ident: str, key: str, raise_: Callable[[Any], str | None], message: str
) -> None:
    data = tomllib.loads(builtin_text(ident))
    value = next(t[key] for t in data.values() if isinstance(t, dict) and key in t)
    with pytest.raises(ProfileError, match=message) as info:
        parse_user_profile(edit(ident, key, raise_(value)), "mine.toml")
    assert str(info.value).startswith("mine.toml: [")
    assert "\n" not in str(info.value)


def test_a_profile_must_name_a_built_in_model() -> None:
    with pytest.raises(ProfileError) as info:
        parse_user_profile(edit("coyote3", "id", '"mine"'), "mine.toml")
    message = str(info.value)
    assert message.startswith("mine.toml: [device] id = 'mine' is not a built-in device model")
    for ident in builtin_profile_ids():
        assert ident in message
    assert "\n" not in message


def test_naming_another_built_in_model_compares_with_that_model() -> None:
    # a Coyote 3 file that calls itself a Coyote 2 is compared with the Coyote 2
    with pytest.raises(ProfileError, match=r"the built-in coyote2 profile has"):
        parse_user_profile(edit("coyote3", "id", '"coyote2"'), "mine.toml")


#: a GATT table changed in the ways a file could change it: (model, old text, new text)
GATT_CHANGES = [
    (  # a property added
        "coyote3",
        'properties = ["notify"] }',
        'properties = ["notify", "read"] }',
    ),
    (  # a characteristic added
        "coyote3",
        '{ uuid = "0000150b-0000-1000-8000-00805f9b34fb", properties = ["notify"] },',
        '{ uuid = "0000150b-0000-1000-8000-00805f9b34fb", properties = ["notify"] },\n'
        '    { uuid = "0000150c-0000-1000-8000-00805f9b34fb", properties = ["write"] },',
    ),
    (  # another characteristic
        "coyote2",
        '"955a1507-0fe2-f5aa-a094-84b8d4f3e8ad"',
        '"955a1508-0fe2-f5aa-a094-84b8d4f3e8ad"',
    ),
    (  # a table on a serial device
        "et312",
        "[device_settings]",
        '[[gatt]]\nservice = "0000180c-0000-1000-8000-00805f9b34fb"\ncharacteristics = [\n'
        '    { uuid = "0000150a-0000-1000-8000-00805f9b34fb", properties = ["write"] },\n]\n\n'
        "[device_settings]",
    ),
]


@pytest.mark.parametrize(("ident", "old", "new"), GATT_CHANGES, ids=range(len(GATT_CHANGES)))
def test_a_changed_gatt_table_is_refused(ident: str, old: str, new: str) -> None:
    text = builtin_text(ident)
    assert text.count(old) == 1
    with pytest.raises(ProfileError) as info:
        parse_user_profile(text.replace(old, new), "mine.toml")
    message = str(info.value)
    assert message.startswith("mine.toml: [[gatt]] differs ("), message
    assert f"the built-in {ident} profile has " in message
    assert "allowed only the same services, characteristics and properties" in message
    assert "\n" not in message


def test_a_gatt_table_written_in_capitals_is_the_same_table() -> None:
    text = builtin_text("coyote3").replace("0000150a-0000", "0000150A-0000")
    assert parse_user_profile(text, "mine.toml").gatt == load_builtin_profile("coyote3").gatt


def test_a_copy_made_before_the_device_registry_fields_still_loads(tmp_path: Path) -> None:
    # simulator_class and [[gatt]] came with the device registry: a file without them takes
    # the built-in's (they describe the hardware, so there is nothing to lower)
    for ident in builtin_profile_ids():
        text = edit(ident, "simulator_class", None).partition("\n[[gatt]]\n")[0]
        assert "simulator_class" not in text and "[[gatt]]" not in text
        path = tmp_path / f"old-{ident}.toml"
        path.write_text(text, encoding="utf-8")
        loaded = load_profile(path)
        builtin = load_builtin_profile(ident)
        assert dataclasses.replace(loaded, source_path=builtin.source_path) == builtin


# --- the rules that no shipped profile can show through a file ------------------------------


def limits_of(profile: DeviceProfile, **changes: Any) -> DeviceProfile:
    return dataclasses.replace(profile, limits=dataclasses.replace(profile.limits, **changes))


def test_rise_rate_and_session_length_may_only_be_lowered() -> None:
    # every shipped profile sits at the absolute limits, so compare with a stricter built-in
    builtin = limits_of(
        load_builtin_profile("coyote3"), max_rise_fraction_per_s=0.02, max_session_s=1800.0
    )
    mine = dataclasses.replace(builtin, source_path="mine.toml")
    check_lowers(limits_of(mine, max_rise_fraction_per_s=0.01, max_session_s=600.0), builtin)
    with pytest.raises(
        ProfileError,
        match=r"^mine\.toml: \[limits\] max_rise_fraction_per_s = 0\.03: the built-in coyote3 "
        r"profile has 0\.02; allowed <= 0\.02",
    ):
        check_lowers(limits_of(mine, max_rise_fraction_per_s=0.03), builtin)
    with pytest.raises(
        ProfileError,
        match=r"^mine\.toml: \[limits\] max_session_s = 3600: the built-in coyote3 profile has "
        r"1800; allowed <= 1800",
    ):
        check_lowers(limits_of(mine, max_session_s=3600.0), builtin)


def test_biphasic_may_be_dropped_only_without_a_calibration() -> None:
    builtin = limits_of(load_builtin_profile("coyote3"), biphasic=True)
    mine = dataclasses.replace(builtin, source_path="mine.toml")
    check_lowers(limits_of(mine, biphasic=False), builtin)  # needles refused: safer
    with pytest.raises(ProfileError, match=r"\[output\] biphasic = false"):
        check_lowers(limits_of(mine, biphasic=False, calibration=Calibration(0.4)), builtin)


def test_the_limits_must_agree_with_the_profile() -> None:
    et312 = load_builtin_profile("et312")
    mine = dataclasses.replace(et312, source_path="mine.toml")
    with pytest.raises(ProfileError, match=r"\[device\] stops_when_host_silent = true"):
        check_lowers(limits_of(mine, stops_when_host_silent=True), et312)
    with pytest.raises(ProfileError, match=r"\[device\] id"):
        check_lowers(limits_of(mine, model="coyote3"), et312)


def test_every_field_has_a_rule() -> None:
    """A new field of DeviceProfile, DeviceLimits or Calibration needs a rule and a test."""
    covered = {r[0] for r in RAISED} | {
        "id",  # test_a_profile_must_name_a_built_in_model
        "model",  # test_the_limits_must_agree_with_the_profile
        "max_rise_fraction_per_s",  # test_rise_rate_and_session_length_may_only_be_lowered
        "max_session_s",
        "gatt",  # test_a_changed_gatt_table_is_refused
    }
    containers = {"limits", "calibration", "source_path"}
    fields = {
        f.name
        for cls in (DeviceProfile, DeviceLimits, Calibration)
        for f in dataclasses.fields(cls)
    }
    assert fields - containers <= covered, fields - containers - covered
    table = device_profiles.profile.__doc__
    assert table is not None
    for name in sorted(fields - {"model", "max_level_du", "frequency_range_hz"}):
        if name != "pulse_width_range_us":
            assert name in table, f"{name} is not in the table of device_profiles.profile"


# --- lowered: accepted ------------------------------------------------------------------------

#: (model, key, a lowered value from the built-in's, what the loaded profile then says)
LOWERED: list[tuple[str, str, Callable[[Any], str], Callable[[DeviceProfile, Any], bool]]] = [
    (
        "coyote3",
        "level_max_du",
        lambda v: toml(v // 2),
        lambda p, v: p.limits.max_level_du == v // 2,
    ),
    (
        "pulsepal",
        "level_max_du",
        lambda v: toml(v // 2),
        lambda p, v: p.limits.max_level_du == v // 2,
    ),
    (
        "coyote3",
        "frequency_min_hz",
        lambda v: toml(v * 2),
        lambda p, v: p.limits.frequency_range_hz[0] == v * 2,
    ),
    (
        "coyote3",
        "frequency_max_hz",
        lambda v: toml(v / 2),
        lambda p, v: p.limits.frequency_range_hz[1] == v / 2,
    ),
    (
        "et312",
        "pulse_width_min_us",
        lambda v: toml(v + 10.0),
        lambda p, v: p.limits.pulse_width_range_us[0] == v + 10.0,
    ),
    (
        "et312",
        "pulse_width_max_us",
        lambda v: toml(v - 10.0),
        lambda p, v: p.limits.pulse_width_range_us[1] == v - 10.0,
    ),
    (
        "coyote3",
        "stops_when_host_silent",
        lambda v: "false",
        lambda p, v: not p.stops_when_host_silent and not p.limits.stops_when_host_silent,
    ),
    ("coyote3", "ble_names", lambda v: "[]", lambda p, v: p.ble_names == ()),
    (
        "et312",
        "isolated_outputs",
        lambda v: "false",  # lowered: the outputs count as not isolated
        lambda p, v: not p.isolated_outputs,
    ),
    (
        "coyote3",
        "max_rise_fraction_per_s",
        lambda v: toml(v / 2),
        lambda p, v: p.limits.max_rise_fraction_per_s == v / 2,
    ),
    (
        "coyote3",
        "max_rise_fraction_per_s",
        lambda v: f"{v}\nmax_session_s = 1800",
        lambda p, v: p.limits.max_session_s == 1800.0,
    ),
    (
        "pulsepal",
        "peak_ma_per_du",
        lambda v: toml(v * 2),
        lambda p, v: p.limits.calibration == Calibration(v * 2, 500.0),
    ),
]


def test_a_calibration_cannot_be_added_by_a_file() -> None:
    """Being calibrated lifts the 25 % ceiling on face sites; a file's figure is unchecked (a
    review ran tmj-jaw-pain-left at 79 du instead of 49.5 with 0.0001 mA per du)."""
    text = builtin_text("coyote3") + "\n[calibration]\npeak_ma_per_du = 0.0001\n"
    with pytest.raises(ProfileError) as caught:
        parse_user_profile(text, "mine.toml")
    message = str(caught.value)
    assert message.startswith("mine.toml: [calibration] peak_ma_per_du = 0.0001")
    assert "acustim calibrate" in message and "\n" not in message


@pytest.mark.parametrize(
    ("ident", "key", "lower", "holds"),
    LOWERED,
    ids=[f"{r[0]}-{r[1]}-{i}" for i, r in enumerate(LOWERED)],
)
def test_a_lowered_field_is_accepted(
    ident: str,
    key: str,
    lower: Callable[[Any], str],
    holds: Callable[[DeviceProfile, Any], bool],
) -> None:
    data = tomllib.loads(builtin_text(ident))
    value = next(t[key] for t in data.values() if isinstance(t, dict) and key in t)
    profile = parse_user_profile(edit(ident, key, lower(value)), "mine.toml")
    assert profile.id == ident
    assert profile.source_path == "mine.toml"
    assert holds(profile, value)


def test_a_profile_that_says_the_device_keeps_going_may_say_why() -> None:
    text = edit("coyote3", "stops_when_host_silent", "false")
    old_note = builtin_value("coyote3", "device", "stops_when_host_silent_note")
    text = text.replace(json.dumps(old_note), '"mine keeps going: tested on the bench"')
    profile = parse_user_profile(text, "mine.toml")
    assert not profile.stops_when_host_silent
    assert profile.stops_when_host_silent_note == "mine keeps going: tested on the bench"


def test_built_in_profiles_load_as_before_and_a_copy_loads_the_same(tmp_path: Path) -> None:
    for ident in builtin_profile_ids():
        builtin = load_profile(ident)
        assert builtin == load_builtin_profile(ident)
        assert builtin.source_path == f"{ident}.toml"
        copy = tmp_path / f"copy-of-{ident}.toml"
        copy.write_text(builtin_text(ident), encoding="utf-8")
        loaded = load_profile(copy)
        assert dataclasses.replace(loaded, source_path=builtin.source_path) == builtin


# --- end to end -------------------------------------------------------------------------------


@pytest.fixture
def simulators(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every simulator created while the test runs: the devices that could receive output."""
    created: list[Any] = []
    real = firmware_bridge.link.simulator_factory

    def spy(name: str) -> Callable[..., Any]:
        make = real(name)

        def made(*args: Any, **kwargs: Any) -> Any:
            simulator = make(*args, **kwargs)
            created.append(simulator)
            return simulator

        return made

    monkeypatch.setattr(firmware_bridge.link, "simulator_factory", spy)
    return created


def delivered(simulators: list[Any]) -> float:
    """The largest output any simulator received on any channel (0 if none was created)."""
    return max(
        (s.record.max_output(c) for s in simulators for c in s.record.channels()), default=0.0
    )


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


#: The copies of the outside review: (model, the copy's text, program and levels, the message)
REVIEW_COPIES = [
    pytest.param(
        "coyote3",
        lambda: edit("coyote3", "level_max_du", "4000"),
        ["tmj-jaw-pain-left", "--level", "A=200", "--ceiling", "A=200", "--duration", "10"],
        r"\[output\] level_max_du = 4000: the built-in coyote3 profile has 200; allowed <= 200",
        id="coyote3-level_max_du-4000",
    ),
    pytest.param(
        "pulsepal",
        lambda: without_calibration("pulsepal"),
        ["han-2-100-analgesia", "--level", "A=6000", "--duration", "30"],
        r"\[calibration\] is missing: the built-in pulsepal profile has \[calibration\] "
        r"peak_ma_per_du = 0\.002",
        id="pulsepal-without-calibration",
    ),
    pytest.param(
        "coyote3",
        lambda: edit("coyote3", "sample_period_s", "5"),
        ["tmj-jaw-pain-left", "--level", "A=20", "--duration", "30"],
        r"\[frame\] sample_period_s = 5: the built-in coyote3 profile has 0\.025; "
        r"allowed only 0\.025",
        id="coyote3-sample_period_s-5",
    ),
    pytest.param(
        "et312",
        lambda: edit("et312", "stops_when_host_silent", "true"),
        ["facial-muscle-tension", "--level", "A=20", "--duration", "10"],
        r"\[device\] stops_when_host_silent = true: the built-in et312 profile has false; "
        "allowed only false",
        id="et312-stops_when_host_silent",
    ),
]


@pytest.mark.parametrize(("ident", "copy", "args", "message"), REVIEW_COPIES)
def test_the_review_copies_exit_2_with_one_line_and_nothing_delivered(
    tmp_path: Path,
    simulators: list[Any],
    ident: str,
    copy: Callable[[], str],
    args: list[str],
    message: str,
) -> None:
    path = tmp_path / f"my-{ident}.toml"
    path.write_text(copy(), encoding="utf-8")
    code, out, err = run_cli(
        "run", *args, "--device", f"sim:{path}", "--virtual-time", "--no-record"
    )
    assert code == 2, (out, err)
    assert err.count("\n") == 1, err
    assert err.startswith(f"acustim: {path}: "), err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert out == ""
    # judged on what the device received: no simulator was opened, so nothing was delivered
    assert delivered(simulators) == 0.0
    assert simulators == []


def test_a_real_device_spec_with_a_raising_profile_opens_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import acustim.engine

    opened: list[str] = []
    monkeypatch.setattr(acustim.engine, "make_transport", lambda url: opened.append(url))
    path = tmp_path / "my-et312.toml"
    top = builtin_value("et312", "output", "level_max_du")
    path.write_text(edit("et312", "level_max_du", toml(top * 2)), encoding="utf-8")
    code, _, err = run_cli(
        "run", "facial-muscle-tension", "--device", f"{path}@/dev/ttyUSB0", "--no-record"
    )
    assert code == 2, err
    assert f"[output] level_max_du = {top * 2}: the built-in et312 profile has {top}" in err
    assert opened == []


def test_simulate_refuses_a_raising_profile_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import acustim.commands.simulate

    def no_pty(*args: object, **kwargs: object) -> None:
        raise AssertionError("the simulator was served")

    monkeypatch.setattr(acustim.commands.simulate, "PtyHost", no_pty)
    path = tmp_path / "my-et312.toml"
    path.write_text(
        edit("et312", "stops_when_host_silent", "true"),
        encoding="utf-8",
    )
    code, out, err = run_cli("simulate", str(path), "--pty")
    assert code == 2
    assert err.count("\n") == 1, err
    assert "[device] stops_when_host_silent = true" in err
    assert out == ""


def test_the_engine_refuses_a_raising_profile_by_path(
    tmp_path: Path, simulators: list[Any]
) -> None:
    path = tmp_path / "my-coyote3.toml"
    path.write_text(edit("coyote3", "level_max_du", "4000"), encoding="utf-8")
    with Engine(virtual_time=True, records=False) as engine:
        with pytest.raises(ProfileError, match=r"level_max_du = 4000"):
            engine.connect(f"sim:{path}")
        assert engine.devices == []
    assert simulators == []


@pytest.mark.parametrize("ident", ["coyote3", "pulsepal"])
def test_a_lowered_profile_runs_and_never_delivers_more(tmp_path: Path, ident: str) -> None:
    lowered = builtin_value(ident, "output", "level_max_du") // 2  # halved
    path = tmp_path / f"low-{ident}.toml"
    path.write_text(edit(ident, "level_max_du", toml(lowered)), encoding="utf-8")
    # max_level_fraction 1: the ceiling is the device maximum
    # on the leg: the uncalibrated-device ceiling for the head (our policy) does not apply
    program = continuous(duration_s=40, frequency_hz=50, channels={"A": ("ST36-L", "SP6-L")})
    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect(f"sim:{path}")
        assert device.profile.limits.max_level_du == lowered
        with pytest.raises(LimitError, match=rf"allowed 0\.\.{lowered} du"):
            device.start(program, levels={"A": lowered + 1})
        session = device.start(
            program, levels={"A": lowered}, rise_fraction_per_s=0.05, duration_s=30
        )
        with pytest.raises(LimitError):
            session.set_level("A", lowered * 2)
        result = session.wait(60)
        assert result.outcome == "completed", result
        record = device.simulator.record
        assert record.max_output("A") == pytest.approx(lowered)  # it reached the lowered top
        assert all(iv.output_du <= lowered for iv in record.intervals())
