"""The course view (``acustim report --course``): the plan, one SVG plot per outcome measure
over the sessions (before and after), the sessions table and the adverse events, built from a
real store; escaped, self-contained, written 0600. And the session report's STRICTA items read
what ``acustim stricta`` entered and the session's course."""

from __future__ import annotations

import io
import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from acustim import cli
from acustim.records import STORE_FILE_NAME, RecordStore
from acustim.report import build_report, render_html
from acustim.report.course import build_course_report, render_course_html

HOSTILE = '<script>alert("x")</script> & Rötung ✓'


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def new_session(
    store: RecordStore, patient: str = "P-0042", meta: dict[str, object] | None = None
) -> int:
    sid = store.start_session(
        program="tmj-jaw-pain-left", device="sim:coyote3", profile="coyote3", patient=patient,
        meta=meta,
    )  # fmt: skip
    store.end_session(sid, outcome="completed")
    store.flush()
    return sid


@pytest.fixture
def course_store(tmp_path: Path) -> Path:
    """A TMD course of 6 planned: 3 sessions with VAS before and after, mouth opening after
    two of them, an adverse event; and a session still running (no end) as number 4."""
    path = tmp_path / STORE_FILE_NAME
    with RecordStore.open(path) as store:
        course = store.create_course(
            patient="P-0042", indication="tmd", planned_sessions=6, interval_days=7,
            notes=HOSTILE,
        )  # fmt: skip
        for number, (before, after, mouth) in enumerate(
            [(7, 4, 30), (6, 3.5, None), (5, 2, 38)], start=1
        ):
            sid = new_session(store)
            assert store.link_session(sid, course) == number
            store.add_outcomes(sid, timing="before", values={"vas": before})
            store.add_outcomes(
                sid, timing="after", values={"vas": after, **({"mouth_mm": mouth} if mouth else {})}
            )
        store.add_adverse_event(2, severity="mild", what=HOSTILE, action="pads moved")
        running = store.start_session(
            program="tmj-jaw-pain-left", device="sim:coyote3", profile="coyote3", patient="P-0042"
        )
        store.flush()
        store.link_session(running, course)
    return path


def test_the_course_view_plots_each_measure_over_the_sessions(course_store: Path) -> None:
    with RecordStore.open(course_store, read_only=True) as store:
        report = build_course_report(store, 1)
    assert [s.course_number for s in report.sessions] == [1, 2, 3, 4]
    assert report.measures == ("vas", "mouth_mm")
    assert [p.title for p in report.plots] == [
        "VAS pain over the course", "maximal mouth opening (mm) over the course"
    ]  # fmt: skip
    vas = ET.fromstring(report.plots[0].svg)  # well-formed SVG
    ns = "{http://www.w3.org/2000/svg}"
    before = [c for c in vas.iter(f"{ns}circle") if c.find(f"{ns}title") is not None]
    after = [r for r in vas.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]
    assert len(before) == 3 and len(after) == 3  # one marker per value entered
    assert [c.find(f"{ns}title").text for c in before] == [  # type: ignore[union-attr]
        "session 1, before: 7", "session 2, before: 6", "session 3, before: 5"
    ]  # fmt: skip
    # higher values are drawn higher: 7 above 6 above 5
    ys = [float(c.get("cy", "0")) for c in before]
    assert ys[0] < ys[1] < ys[2]
    # the x axis runs to the plan (6 sessions), not only to what was recorded
    labels = [t.text for t in vas.iter(f"{ns}text")]
    assert "6" in labels
    mouth = ET.fromstring(report.plots[1].svg)
    assert len([r for r in mouth.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]) == 2
    assert "no recorded end for session #4" in report.caveats


def test_the_course_view_page_has_plan_sessions_and_adverse_events(course_store: Path) -> None:
    with RecordStore.open(course_store, read_only=True) as store:
        page = render_course_html(build_course_report(store, 1))
    assert "<h1>Course 1: tmd: temporomandibular disorder (TMJ and jaw pain)</h1>" in page
    assert "patient P-0042 · 4 of 6 sessions recorded" in page
    assert page.count("<svg") == 2
    sessions = page.split('<h2 id="sessions">')[1].split("<h2")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", sessions, flags=re.S)
    assert len(rows) == 1 + 4
    first = re.findall(r"<td>(.*?)</td>", rows[1])
    assert first[0] == "1" and first[-3:] == ["7 / 4", "- / 30 mm", "none"]
    second = re.findall(r"<td>(.*?)</td>", rows[2])
    assert second[-1] == "1"  # one adverse event
    assert "no recorded end" in rows[4]
    adverse = page.split('<h2 id="adverse">')[1]
    assert "mild" in adverse and "pads moved" in adverse
    # everything from the record is escaped; the page loads nothing
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Rötung ✓" in page
    assert "default-src 'none'" in page
    assert not re.search(r"(src|href)=\"(https?:|//)", page)


def test_a_course_with_an_unknown_indication_and_no_values(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    with RecordStore.open(path) as store:
        store.create_course(
            patient="M-1", indication="cluster headache", planned_sessions=3, interval_days=1
        )
        report = build_course_report(store, 1)
    assert report.measures == ("vas",) and report.plots == ()
    assert any("not in acustim's outcome table: only VAS pain" in c for c in report.caveats)
    page = render_course_html(report)
    assert "No outcome values entered yet" in page and "No sessions recorded" in page


def test_report_course_writes_a_private_html_file(
    course_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.umask", lambda mask: 0)  # a permissive umask must not matter
    target = tmp_path / "course.html"
    code, out, err = run(
        "report", "--course", "1", "--html", str(target), "--store", str(course_store)
    )
    assert (code, err) == (0, "")
    assert out == f"wrote {target} (course 1, 4 sessions, HTML)\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text(encoding="utf-8").count("<svg") == 2


def test_report_course_writes_a_pdf_made_by_qt(
    course_store: Path, tmp_path: Path, qapp: object
) -> None:
    target = tmp_path / "course.pdf"
    code, out, err = run(
        "report", "--course", "1", "--pdf", str(target), "--store", str(course_store)
    )
    assert (code, err) == (0, "")
    assert out == f"wrote {target} (course 1, 4 sessions, PDF)\n"
    data = target.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", data)) >= 1
    assert b"/Image" in data  # the two plots
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--course", "2", "--html", "x.html"], "has no course 2"),
        (["--course", "1"], "give --html FILE, --pdf FILE or both"),
        (["--course", "0", "--html", "x.html"], "--course '0': not a course number"),
        (["1", "--course", "1", "--html", "x.html"], "give a SESSION or --course ID, not both"),
        (["--html", "x.html"], "give a SESSION or --course ID"),
    ],
)
def test_a_bad_course_report_is_one_line(
    course_store: Path,
    argv: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run("report", *argv, "--store", str(course_store))
    assert code == 2 and out == ""
    assert err.startswith("acustim: ") and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "x.pdf").exists()


def test_the_session_report_reads_the_stricta_entries_and_the_course(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    with RecordStore.open(path) as store:
        course = store.create_course(
            patient="P-0042", indication="tmd", planned_sessions=6, interval_days=7
        )
        store.set_stricta_defaults(
            {
                "style": "TCM",
                "practitioner": "Akupunkteurin, 12 Jahre",
                "co_interventions": "x",
                "depth": "default depth",
                "setting": "default setting",
            }
        )
        needles = {
            "electrode": "needle",
            "channels": [{"name": "A", "sites": ["ST7-L", "ST6-L"]}],
            "stricta": {"depth": "from meta", "style": "meta"},
        }
        store.link_next_session(course)
        sid = new_session(store, meta=needles)
        store.set_session_stricta(
            sid,
            {
                "style": "Western medical",
                "needle_count": "4",
                "needle_type": "Seirin J, 30 mm",
                "needle_gauge": "0.20 mm",
                "manual_points": "LI4 bilateral",
                "co_interventions": "",
            },
        )
        items = {i.code: i.value for i in build_report(store, sid).stricta}
        page = render_html(build_report(store, sid))
    assert items["1a"] == "Western medical"  # the session's entry over meta and the default
    assert items["2a"] == "4"
    assert items["2c"] == "from meta"  # meta where nothing was entered, over the default
    assert items["4b"] == "default setting"  # the default where neither says anything
    assert items["2g"] == "Seirin J, 30 mm; 0.20 mm"
    assert items["2b"] == "A: ST7-L - ST6-L (unilateral, left); by hand: LI4 bilateral"
    assert items["4a"] == "not recorded"  # cleared for this session
    assert items["5"] == "Akupunkteurin, 12 Jahre"  # the default when it started
    assert items["3a"] == "session 1 of 6 planned in course 1 (tmd; 1 recorded)"
    assert items["3b"].startswith("planned every 7 days; ")
    assert "Akupunkteurin, 12 Jahre" in page
