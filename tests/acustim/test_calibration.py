"""Calibration (issue 13), end to end on the simulators with their virtual meters.

Real parts: the engine on virtual time, real sessions through ``Device.start`` (every frame
through the guard), the simulators' output stages and meters, real files in the data dir
(``ACUSTIM_DATA_DIR``, a temporary directory per test: ``tests/conftest.py``). Each test judges
what the simulator delivered (its record, its meter), not what the host believes.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acustim import Engine
from acustim.calibration import (
    CALIBRATION_VALID_DAYS,
    FIT_TOLERANCE,
    CalibrationError,
    calibrate,
    calibration_path,
    configured_valid_days,
    device_key,
    fit_through_origin,
    virtual_meter,
)
from acustim.engine import Device
from acustim.prestart import ItemKind, UnconfirmedError, prepare
from acustim.report import build_report
from firmware_bridge.link import ByteStreamLink
from safety.electrical import duty_cycle
from safety.errors import LimitError
from simulators.et312 import Et312Simulator
from simulators.record import DeliveryRecord
from waveforms.builtin import load_builtin
from waveforms.program import Channel, Continuous, Program

Read = Callable[[int, str], float]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine(virtual_time=True, records=tmp_path / "records.sqlite3") as e:
        yield e


def connect(engine: Engine, name: str, *, unit: int = 0) -> Device:
    """A simulator device; the ET-312 with its front knobs fully up (a calibration needs it)."""
    if name == "et312":
        link = ByteStreamLink(
            factory=lambda clock: Et312Simulator(clock, knob_a=255, knob_b=255, unit=unit),
            url="sim:et312",
        )
        return engine.connect(link, profile="et312")
    assert unit == 0
    return engine.connect(f"sim:{name}")


#: the meter each simulator is calibrated with: rms where the profile counts one phase per
#: pulse (the box may deliver more: the ET-312's biphasic gates)
METER = {"pulsepal": "peak", "et312": "rms"}


def true_gain(device: Device, kind: str) -> float:
    """What the calibration should find, from the simulator's own output stage: the largest
    channel gain, for an rms meter scaled by what the device puts in a pulse beyond the
    guard's one-phase model (at the calibration waveform)."""
    stage = device.simulator.output_stage
    gain = max(g for _ch, g in stage.gains_ma_per_du)
    if kind == "rms" and device.profile.id == "et312":
        gain *= math.sqrt(2)  # biphasic gates: two phases per pulse
    return gain


def test_the_fit_goes_through_the_origin() -> None:
    gain, worst = fit_through_origin([10, 20, 30], [1.0, 2.0, 3.0])
    assert gain == pytest.approx(0.1) and worst == pytest.approx(0.0)
    gain, worst = fit_through_origin([10, 20, 30], [1.0, 2.0, 4.0])
    assert gain == pytest.approx((10 + 40 + 120) / (100 + 400 + 900))
    assert worst == pytest.approx(abs(1.0 - gain * 10) / (gain * 10))


@pytest.mark.parametrize("name", ["pulsepal", "et312"])
def test_calibration_end_to_end_then_a_session_enforces_the_rms_cap(
    engine: Engine, name: str
) -> None:
    kind = METER[name]
    device = connect(engine, name)
    assert device.calibration is None
    record = calibrate(
        device,
        read=virtual_meter(device, kind),
        by="A. Tester",
        no_person_connected=True,
        meter=kind,
    )
    expected = true_gain(device, kind)
    # the fit finds the simulator's gain (the ET-312 rounds its strength down: within 3 %)
    assert record.fitted_ma_per_du == pytest.approx(expected, rel=0.03)
    assert all(c.worst_residual <= FIT_TOLERANCE for c in record.channels)
    path = Path(record.source)
    assert path == calibration_path(device_key(device))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["by"] == "A. Tester" and data["meter"] == kind and data["load_ohm"] == 500.0
    assert data["device_key"] == f"sim:{name}#unit-0"
    assert len(data["channels"]) == len(device.profile.channels)
    assert datetime.fromisoformat(data["date"]).tzinfo is not None

    # a later connect of the same unit applies it
    device.close()
    again = connect(engine, name)
    assert again.calibration is not None and again.profile.calibrated
    assert again.profile.limits.calibration.peak_ma_per_du == record.peak_ma_per_du
    lim = again.profile.limits
    width = min(max(200.0, lim.pulse_width_range_us[0]), lim.pulse_width_range_us[1])
    cap_ma = (
        0.3
        * record.peak_ma_per_du
        * (0.25 * lim.max_level_du)
        * math.sqrt(duty_cycle(width, 50.0, biphasic=lim.biphasic))
    )
    program = Program(
        name="rms-cap",
        title="rms cap",
        indication="tests",
        channels=(
            Channel(
                "A",
                ("LI4-L", "LI11-L"),
                (Continuous(600, 50.0, width, 1.0),),
                max_level_fraction=0.25,
                max_current_ma=cap_ma,
            ),
        ),
    )
    plan = prepare(again, program, levels={"A": int(0.25 * lim.max_level_du)})
    assert not plan.of_kind(ItemKind.UNCALIBRATED)  # calibrated: no such caveat
    sim = again.simulator
    rms_seen: list[float] = []
    peak_seen: list[tuple[float, float | None]] = []

    def on_frame(index: int, frame: object) -> None:  # on the IO loop, where the sim lives
        rms_seen.append(sim.meter("A", "rms"))
        peak_seen.append((sim.meter("A", "peak"), frame.channel("A").peak_current_ma))  # type: ignore[attr-defined]

    session = again.start(
        program,
        levels={"A": int(0.25 * lim.max_level_du)},
        duration_s=40,
        on_frame=on_frame,
        confirmed=plan.items,
    )
    assert session.wait(60).outcome == "completed"
    # judged on the delivered output: never above the cap, and the cap did bind
    assert max(rms_seen) <= cap_ma * 1.001
    assert max(rms_seen) >= cap_ma * 0.9
    meta = engine.store.session(session.session_id).meta  # type: ignore[union-attr]
    cal = meta["calibration"]
    assert cal["by"] == "A. Tester" and cal["date"] == record.date
    assert cal["source"] == record.source and cal["peak_ma_per_du"] == record.peak_ma_per_du
    report = build_report(engine.store, session.session_id)  # type: ignore[arg-type]
    assert report.calibration.source.startswith(f"calibrated on {record.day} by A. Tester")


def test_a_device_that_writes_bursts_is_refused_for_calibration(engine: Engine) -> None:
    """The Coyote 2 codec writes X pulses per period (2 at 50 Hz, 11 at 2 Hz) where the guard
    counts one: with a calibration, its rms caps would be too lenient (measured before this
    refusal: 2.3 times the cap at 2 Hz on the simulator's meter). Refused; nothing is run or
    stored and the device stays uncalibrated."""
    device = connect(engine, "coyote2")
    with pytest.raises(CalibrationError, match="bursts of several pulses per period"):
        calibrate(
            device, read=virtual_meter(device, "rms"), by="T", no_person_connected=True,
            meter="rms",
        )  # fmt: skip
    assert engine.store is not None and engine.store.sessions() == []
    assert not calibration_path(device_key(device)).exists()
    assert device.calibration is None


def test_a_peak_meter_is_refused_where_the_guard_counts_one_phase(engine: Engine) -> None:
    device = connect(engine, "et312")
    with pytest.raises(CalibrationError, match="allowed --meter rms"):
        calibrate(device, read=virtual_meter(device), by="T", no_person_connected=True)
    assert not calibration_path(device_key(device)).exists()


def test_a_device_that_sets_its_own_pulse_width_is_refused(engine: Engine) -> None:
    device = connect(engine, "coyote3")
    with pytest.raises(CalibrationError, match="sets its pulse width itself"):
        calibrate(device, read=virtual_meter(device), by="T", no_person_connected=True)
    assert engine.store is not None and engine.store.sessions() == []  # nothing was started


def test_an_et312_knob_below_full_is_refused_at_zero(engine: Engine) -> None:
    device = engine.connect(
        ByteStreamLink(factory=lambda c: Et312Simulator(c, knob_a=128), url="sim:et312"),
        profile="et312",
    )
    with pytest.raises(CalibrationError, match="knob of A is at 128/255"):
        calibrate(
            device, read=virtual_meter(device, "rms"), by="T", no_person_connected=True, meter="rms"
        )
    record = played_on(device)
    assert record.first_time_output_zero_after("A", 0.0) is not None
    assert not calibration_path(device_key(device)).exists()


def played_on(device: Device, seconds: float = 0.1) -> DeliveryRecord:
    """The simulator's record, played on a little past the session's end (a box applies the
    last zero on its next pass: the ET-312 every 4 ms)."""
    sim = device.simulator
    engine = device.engine
    engine.io.call(lambda: sim.advance_to(sim.now_s + seconds))
    record: DeliveryRecord = sim.record
    return record


# --- a wrong calibration is caught ---------------------------------------------------------------
def scaled(read: Read, factor: Callable[[int, str], float]) -> Read:
    return lambda level, ch: read(level, ch) * factor(level, ch)


def refused(device: Device, read: Read, match: str, **kw: object) -> None:
    with pytest.raises(CalibrationError, match=match) as info:
        calibrate(device, read=read, by="T", no_person_connected=True, **kw)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)  # one line
    assert not calibration_path(device_key(device)).exists()
    record = played_on(device)
    for ch in device.profile.channels:  # the run ended at zero
        assert record.first_time_output_zero_after(ch, 0.0) is not None


def test_readings_of_the_wrong_channel_are_refused(engine: Engine) -> None:
    device = connect(engine, "pulsepal")
    meter = virtual_meter(device)
    # the meter on B while the run steps A: B is at zero
    refused(device, lambda level, ch: meter(level, "B" if ch == "A" else "A"), "allowed > 0 mA")


def test_readings_that_do_not_rise_with_the_level_are_refused(engine: Engine) -> None:
    device = connect(engine, "pulsepal")
    meter = virtual_meter(device)
    dips = {1875: 0.5}  # the third level reads half
    refused(device, scaled(meter, lambda lv, ch: dips.get(lv, 1.0)), "must rise with the level")


def test_a_gain_three_times_too_low_is_refused_by_the_built_in_figure(engine: Engine) -> None:
    device = connect(engine, "pulsepal")
    refused(device, scaled(virtual_meter(device), lambda lv, ch: 1 / 3), "below .*built-in")
    assert device.profile.limits.calibration.peak_ma_per_du == 0.002  # still the built-in


def test_a_fit_slightly_below_the_built_in_is_stored_at_the_built_in(engine: Engine) -> None:
    device = connect(engine, "pulsepal")
    record = calibrate(
        device,
        read=scaled(virtual_meter(device), lambda lv, ch: 0.95),
        by="T",
        no_person_connected=True,
    )
    assert record.fitted_ma_per_du < 0.002 and record.peak_ma_per_du == 0.002
    assert "built-in figure is stored" in record.notes[0]


def test_a_verification_reading_that_disagrees_is_refused(engine: Engine) -> None:
    device = connect(engine, "pulsepal")
    # the readings of the fit are right; the last one (the verification level) is 30 % high:
    # e.g. the meter moved to another output, or the box's gain drifted during the run
    refused(
        device,
        scaled(virtual_meter(device), lambda lv, ch: 1.3 if lv == 2188 else 1.0),
        "verification reading at 2188 du",
    )


def test_a_device_not_linear_enough_is_refused(engine: Engine) -> None:
    device = connect(engine, "pulsepal")
    refused(
        device,
        scaled(virtual_meter(device), lambda lv, ch: (lv / 2500) ** 0.6),
        "off the linear fit",
    )


def test_implausible_gains_are_refused(engine: Engine) -> None:
    device = connect(engine, "et312")
    meter = virtual_meter(device, "rms")
    refused(device, scaled(meter, lambda lv, ch: 1000.0), "allowed at most 50 mA rms", meter="rms")
    refused(device, scaled(meter, lambda lv, ch: 1e-4), "implausibly small", meter="rms")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"levels": [100, 200]}, "at least 3"),
        ({"levels": [100, 300, 200]}, "strictly increasing"),
        ({"levels": [100, 200, 3000]}, "above the cap"),
        ({"cap_du": 20000}, "allowed 1..10000"),
        ({"load_ohm": 1000.0}, "allowed 100..500 ohm"),
        ({"meter": "avg"}, "allowed 'peak'"),
        ({"frequency_hz": 500.0}, "allowed 1..100 Hz"),
        ({"channels": ["A"]}, "covers every channel"),
        ({"by": "  "}, "who measured"),
        ({"no_person_connected": False}, "no person is connected"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(
    engine: Engine, kw: dict[str, object], match: str
) -> None:
    device = connect(engine, "pulsepal")
    args: dict[str, object] = {"by": "T", "no_person_connected": True, **kw}
    with pytest.raises(CalibrationError, match=match):
        calibrate(device, read=virtual_meter(device), **args)  # type: ignore[arg-type]
    assert engine.store is not None and engine.store.sessions() == []  # no session started


def test_the_cap_is_never_exceeded_during_the_run(engine: Engine) -> None:
    device = connect(engine, "et312")
    calibrate(
        device,
        [20, 40, 60],
        read=virtual_meter(device, "rms"),
        by="T",
        no_person_connected=True,
        meter="rms",
        cap_du=60,
    )
    record = played_on(device)
    for ch in ("A", "B"):
        # reached (the ET-312's knobs at 255/256 scale 60 to 59.8, delivered as 59), never above
        assert 59 <= record.max_output(ch) <= 60
        assert record.first_time_output_zero_after(ch, 0.0) is not None


def test_ctrl_c_during_a_reading_stops_at_zero_and_stores_nothing(engine: Engine) -> None:
    device = connect(engine, "pulsepal")
    meter = virtual_meter(device)
    calls: list[int] = []

    def read(level: int, ch: str) -> float:
        calls.append(level)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return meter(level, ch)

    with pytest.raises(KeyboardInterrupt):
        calibrate(device, read=read, by="T", no_person_connected=True)
    assert device.session is not None and device.session.done
    assert device.session.wait(1).outcome == "stopped"
    record = played_on(device)
    assert device.engine.io.call(lambda: device.simulator.meter("A")) == 0.0
    assert record.first_time_output_zero_after("A", 0.0) is not None
    assert not calibration_path(device_key(device)).exists()


# --- expiry, bad files ---------------------------------------------------------------------------
def _calibrated_at(engine: Engine, when: datetime) -> str:
    device = connect(engine, "pulsepal")
    record = calibrate(
        device, read=virtual_meter(device), by="T", no_person_connected=True, now=when
    )
    device.close()
    return record.source


def test_an_expired_calibration_is_not_applied_and_the_plan_says_so(engine: Engine) -> None:
    _calibrated_at(engine, datetime.now(UTC) - timedelta(days=CALIBRATION_VALID_DAYS + 1))
    device = connect(engine, "pulsepal")
    assert device.calibration is None
    assert device.calibration_note is not None and "expired" in device.calibration_note
    assert device.profile.limits.calibration.peak_ma_per_du == 0.002  # the built-in again
    plan = prepare(device, load_builtin("tmj-jaw-pain-left"))
    notes = plan.of_kind(ItemKind.CALIBRATION_NOTE)
    assert len(notes) == 1 and "expired" in notes[0].text


def test_a_calibration_inside_its_year_is_applied(engine: Engine) -> None:
    _calibrated_at(engine, datetime.now(UTC) - timedelta(days=CALIBRATION_VALID_DAYS - 1))
    assert connect(engine, "pulsepal").calibration is not None


def test_a_shorter_validity_may_be_configured_never_a_longer(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _calibrated_at(engine, datetime.now(UTC) - timedelta(days=40))
    monkeypatch.setenv("ACUSTIM_CALIBRATION_VALID_DAYS", "30")
    assert configured_valid_days() == 30
    assert connect(engine, "pulsepal").calibration is None
    monkeypatch.setenv("ACUSTIM_CALIBRATION_VALID_DAYS", "400")
    with pytest.raises(CalibrationError, match=r"allowed a whole number of days 1\.\.365"):
        configured_valid_days()
    device = connect(engine, "pulsepal")  # a bad setting: not applied, one line, no traceback
    assert device.calibration is None and "1..365" in (device.calibration_note or "")


@pytest.mark.parametrize(
    "content",
    [
        b"not json at all",
        b"\xff\xfe",
        b'{"format": "acustim-calibration", "version": 1}',
        b"[]",
        b'{"format": "acustim-calibration", "version": 1, "date": "2026-01-01T00:00:00+00:00",'
        b' "meter": "peak", "channels": [{"channel": "A", "verify": 3, "peak_ma_per_du": 1}]}',
        b"[" * 100000,
    ],
)
def test_a_corrupted_file_is_one_line_and_the_device_uncalibrated(
    engine: Engine, content: bytes
) -> None:
    source = Path(_calibrated_at(engine, datetime.now(UTC)))
    source.write_bytes(content)
    device = connect(engine, "pulsepal")
    assert device.calibration is None
    note = device.calibration_note or ""
    assert "unreadable" in note and "\n" not in note and str(source) in note


def test_a_file_edited_to_a_weaker_gain_is_not_applied(engine: Engine) -> None:
    source = Path(_calibrated_at(engine, datetime.now(UTC)))
    data = json.loads(source.read_text())
    data["peak_ma_per_du"] = 0.001
    for c in data["channels"]:
        c["peak_ma_per_du"] = 0.001
    source.write_text(json.dumps(data))
    device = connect(engine, "pulsepal")
    assert device.calibration is None
    assert "not what channel A's readings give" in (device.calibration_note or "")


def test_an_uncalibrated_model_cannot_be_calibrated_by_editing_its_file(engine: Engine) -> None:
    """The ET-312 has no built-in figure to compare with: a file edited to a gain its own
    readings do not give is still refused (a weaker gain would lift the 25 % face ceiling and
    the rms caps would let more through)."""
    device = connect(engine, "et312")
    record = calibrate(
        device, read=virtual_meter(device, "rms"), by="T", no_person_connected=True, meter="rms"
    )
    device.close()
    assert connect(engine, "et312").calibration is not None  # as measured: applied
    source = Path(record.source)
    data = json.loads(source.read_text())
    data["peak_ma_per_du"] = data["fitted_ma_per_du"] = 0.01
    for c in data["channels"]:
        c["peak_ma_per_du"] = 0.01
    source.write_text(json.dumps(data))
    again = connect(engine, "et312")
    assert again.calibration is None
    assert "not applied" in (again.calibration_note or "")
    plan = prepare(again, load_builtin("facial-muscle-tension"))
    assert plan.of_kind(ItemKind.CURRENT_UNKNOWN)  # the 25 % face ceiling is back


def test_a_file_measured_on_another_model_is_not_applied(engine: Engine) -> None:
    source = Path(_calibrated_at(engine, datetime.now(UTC)))
    data = json.loads(source.read_text())
    assert data["identity"].startswith("Pulse Pal 2")
    data["identity"] = "Pulse Pal 1, firmware 3"
    source.write_text(json.dumps(data))
    device = connect(engine, "pulsepal")
    assert device.calibration is None and "Pulse Pal 1" in (device.calibration_note or "")


def test_a_file_of_another_unit_is_not_applied(engine: Engine) -> None:
    device = connect(engine, "et312", unit=1)
    record = calibrate(
        device, read=virtual_meter(device, "rms"), by="T", no_person_connected=True, meter="rms"
    )
    device.close()
    assert connect(engine, "et312", unit=2).calibration is None  # another box
    back = connect(engine, "et312", unit=1).calibration
    assert back is not None and back.peak_ma_per_du == record.peak_ma_per_du  # as written
    assert (back.date, back.by, back.device_key) == (record.date, record.by, record.device_key)


# --- the load test is never a patient's session ------------------------------------------------
def test_a_load_test_refuses_a_patient_code_screening_and_other_programs(engine: Engine) -> None:
    from acustim.calibration import load_program_for

    device = connect(engine, "pulsepal")
    load = load_program_for(device.profile, device.profile.channels, 50.0, 200.0)
    with pytest.raises(LimitError, match="no patient code"):
        prepare(device, load, patient="P-0042", load_test=True)
    with pytest.raises(LimitError, match="no patient code"):
        prepare(device, load, screening={}, load_test=True)
    with pytest.raises(LimitError, match="cannot run as a load test"):
        prepare(device, load_builtin("han-2-100-analgesia"), load_test=True)
    with pytest.raises(LimitError, match="no patient code"):
        device.start(load, patient="P-0042", load_test=True, confirmed=())
    with pytest.raises(UnconfirmedError, match="no person is connected"):
        device.start(load, load_test=True)  # a script must confirm the plan
    with pytest.raises(UnconfirmedError, match="not confirmed"):
        device.start(load, load_test=True, confirmed=())
    plan = prepare(device, load, load_test=True)
    item = plan.of_kind(ItemKind.LOAD_TEST)
    assert len(item) == 1 and item[0].confirm and "no person" in item[0].text
    assert plan.ready  # no screening asked for a resistor
    assert engine.store is not None and engine.store.sessions() == []


def test_the_data_dir_is_the_records_one() -> None:
    assert calibration_path("x").parent == Path(os.environ["ACUSTIM_DATA_DIR"]) / "calibrations"


def test_the_facial_programs_state_their_ceiling_in_ma(engine: Engine) -> None:
    """Every built-in pad program on the face, head or neck states an rms ceiling in mA (the
    IEC attention threshold on a 2 x 2 cm pad, our policy), which applies on a calibrated
    device: the Pulse Pal's profile is."""
    device = connect(engine, "pulsepal")
    plan = prepare(device, load_builtin("tmj-jaw-pain-left"))
    assert plan.limits.channel("A").max_rms_current_ma == 8.0
    # on an uncalibrated device the mA figure cannot be checked: the 25 % face ceiling holds
    uncal = connect(engine, "coyote3")
    limits = prepare(uncal, load_builtin("tmj-jaw-pain-left")).limits
    assert limits.channel("A").ceiling_du == 50 and not uncal.profile.calibrated
