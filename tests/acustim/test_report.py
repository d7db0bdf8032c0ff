"""Session reports, built from real sessions run through the engine on virtual time: the
Coyote 3 simulator (its profile is not calibrated to mA) and the Pulse Pal simulator (its
profile is: 0.002 mA per du into a nominal 500 ohm)."""

from __future__ import annotations

import math
import os
import re
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QByteArray
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from acustim import Engine
from acustim.records import EventRow, RecordStore
from acustim.report import (
    Report,
    ReportError,
    build_report,
    render_html,
    render_pdf,
    write_html,
    write_pdf,
    write_private_file,
)
from device_profiles.profile import load_profile
from safety import electrical
from safety.guard import VettedFrame
from waveforms.files import parse_program

#: 5 s ramp at 2 Hz, 30 s of 2/100 Hz dense-disperse, 20 s of 20 Hz in 4 s on / 2 s off bursts
PROGRAM = """
[program]
name = "report-test"
title = "Report test"
indication = "tests of the session report"
electrode = "pad"

[[segments]]
kind = "ramp"
duration_s = 5
frequency_hz = 2
pulse_width_us = 300
intensity_from = 0.0
intensity_to = 1.0

[[segments]]
kind = "dense_disperse"
duration_s = 30
low_hz = 2
high_hz = 100
low_s = 3
high_s = 3
pulse_width_us = 300
intensity = 1.0

[[segments]]
kind = "intermittent"
duration_s = 20
frequency_hz = 20
pulse_width_us = 200
intensity = 1.0
on_s = 4
off_s = 2

[[channels]]
name = "A"
sites = ["ST7-L", "ST6-L"]

[[channels]]
name = "B"
sites = ["SI19-L", "ST5-L"]
"""
STRICTA = {"style": "TCM", "practitioner": "licensed acupuncturist, 12 years"}
SCREENING = {"pacemaker": False, "pregnant": False, "epilepsy": None}
NOTES = "jaw tender on the left <script>alert('x')</script>"
AREA_CM2 = 4.0


@dataclass
class GuardSeen:
    """The maxima the guard computed live, frame by frame, per channel."""

    peak_ma: dict[str, float] = field(default_factory=dict)
    rms_ma: dict[str, float] = field(default_factory=dict)
    charge_uc: dict[str, float] = field(default_factory=dict)
    density: dict[str, float] = field(default_factory=dict)

    def __call__(self, index: int, frame: VettedFrame) -> None:
        for c in frame.channels:
            for seen, value in (
                (self.peak_ma, c.peak_current_ma),
                (self.rms_ma, c.rms_current_ma),
                (self.charge_uc, c.charge_per_phase_uc),
                (self.density, c.current_density_ma_per_cm2),
            ):
                if value is not None:
                    seen[c.name] = max(seen.get(c.name, 0.0), value)


@dataclass
class Recorded:
    path: Path
    coyote: int
    pulsepal: int
    stopped: int
    other_patient: int
    unfinished: int
    guard: GuardSeen


@contextmanager
def session_details(meta: dict[str, Any] | None = None, **details: Any) -> Iterator[None]:
    """Give the sessions the engine starts a patient code, notes and screening answers (what
    the runner passes once the CLI and the GUI ask for them)."""
    original = RecordStore.start_session

    def start_session(self: RecordStore, **kwargs: Any) -> int:
        kwargs["meta"] = {**(kwargs.get("meta") or {}), **(meta or {})}
        return original(self, **{**kwargs, **details})

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RecordStore, "start_session", start_session)
        yield


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    path = tmp_path_factory.mktemp("report") / "records.sqlite3"
    program = parse_program(PROGRAM)
    guard = GuardSeen()
    with Engine(virtual_time=True, records=path) as engine:
        with session_details(patient="P-0042"):
            coyote = engine.connect("sim:coyote3").start(program, levels={"A": 30, "B": 10})
            assert coyote.wait(60).outcome == "completed"
        with session_details(
            meta={"stricta": STRICTA}, patient="P-0042", notes=NOTES, screening=SCREENING
        ):
            pulsepal = engine.connect("sim:pulsepal")
            calibrated = pulsepal.start(
                program,
                levels={"A": 3000, "B": 1500},
                electrode_area_cm2=AREA_CM2,
                on_frame=guard,
            )
            assert calibrated.wait(60).outcome == "completed"
            sessions: list[Any] = []

            def stop_soon(index: int, frame: VettedFrame) -> None:
                if index >= 50 and sessions and not sessions[0].done:
                    sessions[0].stop("stopped by the practitioner")

            sessions.append(pulsepal.start(program, levels={"A": 2000}, on_frame=stop_soon))
            assert sessions[0].wait(60).outcome == "stopped"
        with session_details(patient="Q-7"):
            other = engine.connect("sim:coyote3").start(program, duration_s=10.0)
            assert other.wait(60).outcome == "completed"
        ids = [coyote.session_id, calibrated.session_id, sessions[0].session_id, other.session_id]
    with RecordStore.open(path) as store:
        # a session whose process died: no end; and what a device reports about itself
        frames = store.frames(ids[1])[:30]
        unfinished = store.start_session(
            program="report-test", device="sim:pulsepal", profile="pulsepal", patient="P-0042"
        )
        for row in frames:
            store.add_frame(unfinished, row)
        for event in (
            EventRow(0.0, "firmware", "Pulse Pal 2, firmware 22", {"version": 22}),
            EventRow(0.5, "battery", "battery 80 %", {"percent": 80}),
            EventRow(1.0, "device_level", "device changed its levels", {"A": 10}),
        ):
            store.add_event(unfinished, event)
    coyote_id, pulsepal_id, stopped_id, other_id = (int(i) for i in ids if i is not None)
    return Recorded(path, coyote_id, pulsepal_id, stopped_id, other_id, unfinished, guard)


@pytest.fixture(scope="module")
def reports(recorded: Recorded) -> dict[str, Report]:
    with RecordStore.open(recorded.path, read_only=True) as store:
        return {
            name: build_report(store, getattr(recorded, name))
            for name in ("coyote", "pulsepal", "stopped", "other_patient", "unfinished")
        }


@pytest.fixture(scope="module")
def html(reports: dict[str, Report]) -> dict[str, str]:
    return {name: render_html(report) for name, report in reports.items()}


def rows(page: str, label: str) -> list[tuple[str, str]]:
    """The value and source cells of every table row whose first cell is ``label``."""
    pattern = rf"<tr><td>{re.escape(label)}</td><td>(.*?)</td><td[^>]*>(.*?)</td>"
    return [(m.group(1), m.group(2)) for m in re.finditer(pattern, page)]


# --- STRICTA and the session ------------------------------------------------------------------


def test_the_report_lists_the_stricta_items_that_apply(
    reports: dict[str, Report], html: dict[str, str]
) -> None:
    items = {i.code: i for i in reports["pulsepal"].stricta}
    assert list(items) == [
        *("1a", "1b", "1c", "2a", "2b", "2c", "2d", "2e", "2f", "2g"),
        *("3a", "3b", "4a", "4b", "5", "6a-b"),
    ]
    assert items["1a"].value == "TCM"
    assert "report-test (Report test): tests of the session report" in items["1b"].value
    assert items["2b"].value == "A: ST7-L - ST6-L; B: SI19-L - ST5-L (unilateral, left)"
    assert items["2e"].value.startswith("electrical, sim:pulsepal")
    assert items["5"].value == "licensed acupuncturist, 12 years"
    # needle items do not apply to pads, and say so
    for code in ("2a", "2c", "2g"):
        assert not items[code].applies
        assert items[code].value == "not applicable: surface electrodes (pads)"
    # the regimen counts this patient's sessions in the store
    assert items["3a"].value == "session 2 of 4 recorded for patient P-0042 in this store"
    assert reports["other_patient"].stricta[10].value.startswith("session 1 of 1")
    page = html["pulsepal"]
    assert '<h2 id="stricta">STRICTA items</h2>' in page
    assert '<tr class="na"><td>2c</td><td>Depth of insertion</td>' in page


def test_the_report_shows_patient_screening_notes_and_how_the_session_ended(
    reports: dict[str, Report], html: dict[str, str]
) -> None:
    page = html["pulsepal"]
    assert "patient P-0042" in page
    # each question in words, never its key (the screening section, in words)
    assert "<tr><td>Does the patient have a cardiac pacemaker?</td><td>no</td>" in page
    assert "<tr><td>Does the patient have epilepsy?</td><td>not answered</td>" in page
    assert "<td>pacemaker</td>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert reports["pulsepal"].outcome_text == "completed: session completed"
    assert reports["stopped"].outcome_text == "stopped: stopped by the practitioner"
    unfinished = reports["unfinished"]
    assert unfinished.outcome_text.startswith("did not end: the record stops with the last")
    assert "the session has no recorded end (see 'Outcome')" in unfinished.caveats
    assert "No practitioner notes recorded." in html["coyote"]


# --- the electrical characterisation ----------------------------------------------------------


def test_an_uncalibrated_profile_gives_device_units_only(
    reports: dict[str, Report], html: dict[str, str]
) -> None:
    report = reports["coyote"]
    assert not report.calibration.calibrated
    assert report.calibration.source.startswith("uncalibrated: device units only")
    assert [c.name for c in report.channels] == ["A", "B"]
    for ch in report.channels:
        assert ch.peak_current_ma is None and ch.rms_current_ma is None
        assert ch.charge_per_phase_uc is None and ch.current_density_ma_per_cm2 is None
        assert not ch.pulse_width_delivered  # the Coyote 3 chooses its own pulse width
    assert [c.level_max_du for c in report.channels] == [30, 10]
    page = html["coyote"]
    for label in ("Peak current (max)", "rms current (max)", "Charge per phase (max)"):
        ((value, source),) = rows(page, label)[:1]
        assert "uncalibrated: device units only" in value
        assert "uncalibrated profile" in source
    assert " mA<" not in page
    assert "chosen by the device firmware" in page
    # the delivered output to one decimal, rounded down (the codecs round down): never more
    # than the device can have delivered, never a figure like 6.69167
    for ch in report.channels:
        shown = math.floor(ch.output_max_du * 10 + 1e-9) / 10
        assert f"(max output {shown:g} du)" in page
    assert not re.search(r"max output \d+\.\d{2,} du", page)


def test_a_calibrated_profile_gives_currents_charge_and_density_from_the_frames(
    recorded: Recorded, reports: dict[str, Report], html: dict[str, str]
) -> None:
    report = reports["pulsepal"]
    cal = load_profile("pulsepal").limits.calibration
    assert cal is not None and report.calibration.calibrated
    assert (report.calibration.peak_ma_per_du, report.calibration.load_ohm) == (0.002, 500.0)
    assert report.biphasic is True
    a, b = report.channels
    assert (a.level_max_du, b.level_max_du) == (3000, 1500)
    for ch, level in ((a, 3000), (b, 1500)):
        peak = level * cal.peak_ma_per_du
        assert ch.peak_current_ma == pytest.approx(peak)
        # the highest rms is at 100 Hz, 300 us per phase, biphasic
        rms = electrical.rms_current_ma(peak, 300.0, 100.0, biphasic=True)
        assert ch.rms_current_ma == pytest.approx(rms)
        assert ch.charge_per_phase_uc == pytest.approx(electrical.charge_per_phase_uc(peak, 300))
        assert ch.current_density_ma_per_cm2 == pytest.approx(rms / AREA_CM2)
        assert ch.electrode_area_cm2 == AREA_CM2
        assert ch.rms_current_mean_ma is not None and 0 < ch.rms_current_mean_ma < rms
        # and they agree with what the safety guard computed live for the same frames
        assert ch.peak_current_ma == pytest.approx(recorded.guard.peak_ma[ch.name])
        assert ch.rms_current_ma == pytest.approx(recorded.guard.rms_ma[ch.name])
        assert ch.charge_per_phase_uc == pytest.approx(recorded.guard.charge_uc[ch.name])
        assert ch.current_density_ma_per_cm2 == pytest.approx(recorded.guard.density[ch.name])
    assert report.unused_channels == ("C", "D")
    page = html["pulsepal"]
    ((value, source),) = rows(page, "Peak current (max)")[:1]
    assert value == "6 mA" and source == "recorded frames x calibrated profile (0.002 mA/du)"
    ((value, _),) = rows(page, "rms current (max)")[:1]
    assert value == f"{electrical.rms_current_ma(6.0, 300, 100, biphasic=True):.3g} mA"
    ((value, _),) = rows(page, "Charge per phase (max)")[:1]
    assert value == "1.8 µC"
    ((value, _),) = rows(page, "Net charge per pulse")[:1]
    assert value.startswith("0 (symmetric biphasic")
    ((value, source),) = rows(page, "Frequency (share of output time)")[:1]
    assert source == "recorded frames"


def test_waveform_frequency_pulse_width_and_level_history_come_from_the_frames(
    reports: dict[str, Report],
) -> None:
    a = reports["pulsepal"].channels[0]
    modes = [(p.mode, p.frequencies_hz) for p in a.phases]
    assert modes == [("dense-disperse", (2.0, 100.0)), ("continuous", (20.0,))]
    assert a.phases[0].bursts < 2 and a.phases[1].bursts >= 2  # 20 Hz in on/off bursts
    assert "continuous 20 Hz in on/off bursts (intermittent)" in a.waveform
    assert [s.frequency_hz for s in a.frequencies] == [2.0, 20.0, 100.0]
    assert math.fsum(s.share for s in a.frequencies) == pytest.approx(1.0)
    assert a.pulse_widths_us == (200.0, 300.0) and a.pulse_width_delivered
    # soft start: 3000 du is reached after 15 s at 200 du/s, held to the ramp down at 55 s
    first = a.level_history[0]
    assert first.level_du == 3000 and first.start_s == pytest.approx(15.0, abs=0.2)
    assert a.level_history[-1].end_s == pytest.approx(55.0, abs=0.2)
    assert {s.level_du for s in a.level_history} == {3000}  # off bursts keep the level
    assert 45.0 < a.output_s < 55.0


# --- plots, events, device reports ------------------------------------------------------------


def test_the_plots_are_inline_svg_of_output_and_frequency(
    reports: dict[str, Report], html: dict[str, str]
) -> None:
    report = reports["pulsepal"]
    titles = [p.title for p in report.plots]
    assert titles[0].startswith("Output over the session (peak mA")
    assert titles[1].startswith("Pulse frequency over the session")
    assert reports["coyote"].plots[0].title.startswith("Output over the session (du")
    page = html["pulsepal"]
    assert page.count("<svg ") == 2
    for plot in report.plots:
        root = ET.fromstring(plot.svg)  # well-formed
        paths = root.findall("{http://www.w3.org/2000/svg}path")
        assert {p.get("stroke") for p in paths} >= {"#0072B2", "#D55E00"}  # channels A and B
        assert plot.svg in page
    assert "time_limit: session finished" in report.plots[0].svg  # an event marker


def test_the_report_lists_the_events_and_the_devices_own_reports(
    reports: dict[str, Report], html: dict[str, str]
) -> None:
    kinds = [e.kind for e in reports["pulsepal"].events]
    levels = [k for k in kinds if k not in ("placement", "pulse_width")]
    assert levels[:3] == ["start", "level", "level"] and kinds[-1] == "end"
    assert "<td>time_limit</td><td>session finished; ramping down</td>" in html["pulsepal"]
    assert "The device reported nothing during the session." in html["pulsepal"]
    unfinished = reports["unfinished"]
    assert [e.kind for e in unfinished.device_reports] == ["firmware", "battery", "device_level"]
    page = html["unfinished"]
    assert "<td>0:00.5</td><td>battery</td><td>battery 80 %</td>" in page


def test_the_html_is_self_contained_and_loads_nothing(html: dict[str, str]) -> None:
    for page in html.values():
        assert "Content-Security-Policy" in page and "default-src 'none'" in page
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
        assert "<link" not in page and "@import" not in page


def test_a_profile_that_cannot_be_loaded_makes_the_report_uncalibrated(tmp_path: Path) -> None:
    with RecordStore.open(tmp_path / "r.sqlite3") as store:
        session_id = store.start_session(
            program="p", device="lab@/dev/ttyUSB9", profile="lab-box", meta={"calibrated": True}
        )
        report = build_report(store, session_id)
    assert not report.calibration.calibrated
    assert "profile lab-box not available" in report.calibration.source
    assert any("could not be loaded" in c for c in report.caveats)


def test_a_calibration_recorded_with_the_session_is_used_first(tmp_path: Path) -> None:
    with RecordStore.open(tmp_path / "r.sqlite3") as store:
        session_id = store.start_session(
            program="p",
            device="sim:coyote3",
            profile="coyote3",
            meta={"calibration": {"peak_ma_per_du": 0.1, "load_ohm": 1000.0}},
        )
        report = build_report(store, session_id)
    assert report.calibration.calibrated
    assert (report.calibration.peak_ma_per_du, report.calibration.load_ohm) == (0.1, 1000.0)
    assert "recorded with the session" in report.calibration.source


# --- files: HTML, PDF, modes ------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("permissive_umask")
def test_html_and_pdf_reports_are_private_files(
    reports: dict[str, Report], tmp_path: Path, qapp: QApplication
) -> None:
    html_path, pdf_path = tmp_path / "report.html", tmp_path / "report.pdf"
    pdf_path.write_bytes(b"an older file, readable by all")
    pdf_path.chmod(0o644)
    write_html(reports["pulsepal"], html_path)
    write_pdf(reports["pulsepal"], pdf_path)
    assert mode(html_path) == 0o600 and mode(pdf_path) == 0o600
    assert html_path.read_text(encoding="utf-8") == render_html(reports["pulsepal"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.pdf"]


def test_the_pdf_is_made_by_qt_and_has_pages(
    reports: dict[str, Report], qapp: QApplication
) -> None:
    for plot in reports["pulsepal"].plots:
        assert QSvgRenderer(QByteArray(plot.svg.encode())).isValid()
    data = render_pdf(reports["pulsepal"])
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", data))
    count = re.search(rb"/Type\s*/Pages\b.*?/Count (\d+)", data, re.S)
    assert count is not None and int(count.group(1)) == pages >= 2
    assert b"/Image" in data  # the plots


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("missing/report.html", "the directory {tmp}/missing does not exist"),
        (".", "it is a directory; give a file name"),
        ("a-file/report.html", "{tmp}/a-file is not a directory"),
    ],
    ids=["missing-directory", "a-directory", "under-a-file"],
)
def test_an_unwritable_report_path_is_one_clear_error(
    tmp_path: Path, where: str, says: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ReportError) as excinfo:
        write_private_file(tmp_path / where, b"data")
    message = str(excinfo.value)
    assert says.format(tmp=tmp_path) in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
