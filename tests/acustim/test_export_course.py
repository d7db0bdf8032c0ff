"""``acustim export --course``: a treatment course for research, as CSV (one row per session,
outcomes before and after, adverse events) and JSON (everything), from a real store; numbers
read back exactly, text in any script survives, files are 0600."""

from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path

import pytest

from acustim import cli
from acustim.export import course_csv_columns, course_to_csv, course_to_json
from acustim.records import STORE_FILE_NAME, RecordStore

WHAT = 'Rötung unter Pad A, 2 cm — 发红 ✓, "quoted", comma'


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def bells(tmp_path: Path) -> Path:
    """A Bell's palsy course: two sessions with grades and scores, one with VAS too (and a
    value of 0), adverse events in the second; a session of another course is left out."""
    path = tmp_path / STORE_FILE_NAME
    with RecordStore.open(path) as store:
        course = store.create_course(
            patient="B-7", indication="bells-palsy", planned_sessions=10, interval_days=2
        )
        other = store.create_course(
            patient="B-7", indication="tmd", planned_sessions=2, interval_days=7
        )
        store.set_stricta_defaults({"style": "TCM"})
        for values in (
            {"house_brackmann": "IV", "sunnybrook": 41, "vas": 0},
            {"house_brackmann": "III", "sunnybrook": 58},
        ):
            sid = store.start_session(
                program="bells-palsy-subacute-left", device="sim:coyote3", profile="coyote3",
                patient="B-7",
            )  # fmt: skip
            store.end_session(sid, outcome="completed")
            store.flush()
            store.link_session(sid, course)
            store.add_outcomes(sid, timing="before", values=values)
        store.add_outcomes(2, timing="after", values={"sunnybrook": 60})
        store.add_adverse_event(2, severity="mild", what=WHAT)
        store.add_adverse_event(2, severity="severe", what="pain", action="stopped")
        stray = store.start_session(program="p", device="d", profile="f", patient="B-7")
        store.flush()
        store.link_session(stray, other)
        store.add_outcome(stray, timing="before", measure="mouth_mm", value=30)
    return path


def test_the_csv_is_one_row_per_session_with_outcomes_and_adverse_events(bells: Path) -> None:
    with RecordStore.open(bells, read_only=True) as store:
        text, count = course_to_csv(store, 1)
    assert count == 2
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == course_csv_columns(["vas", "house_brackmann", "sunnybrook"])
    assert [r["course_number"] for r in rows] == ["1", "2"]
    assert [r["session_id"] for r in rows] == ["1", "2"]
    assert [r["house_brackmann_before"] for r in rows] == ["4.0", "3.0"]  # I..VI as 1..6
    assert [r["sunnybrook_before"] for r in rows] == ["41.0", "58.0"]
    assert [r["sunnybrook_after"] for r in rows] == ["", "60.0"]
    assert [r["vas_before"] for r in rows] == ["0.0", ""]  # 0 is a value, not missing
    assert "mouth_mm_before" not in rows[0]  # another course's measure is not here
    assert [r["adverse_events"] for r in rows] == ["0", "2"]
    assert rows[1]["adverse_worst_severity"] == "severe"
    assert rows[1]["adverse_descriptions"] == f"mild: {WHAT} | severe: pain"
    assert {r["patient"] for r in rows} == {"B-7"} and {r["indication"] for r in rows} == {
        "bells-palsy"
    }


def test_the_json_holds_the_course_its_measures_and_every_session(bells: Path) -> None:
    with RecordStore.open(bells, read_only=True) as store:
        text, count = course_to_json(store, 1)
        started = store.session(1).started_at
    document = json.loads(text)
    assert (document["format"], document["version"], count) == ("acustim-course", 1, 2)
    assert document["course"]["planned_sessions"] == 10
    assert [m["key"] for m in document["measures"]] == ["vas", "house_brackmann", "sunnybrook"]
    assert document["measures"][1]["max"] == 6
    first, second = document["sessions"]
    assert first["started_at"] == started and first["course_number"] == 1
    assert first["outcomes"] == {
        "before": {"house_brackmann": 4.0, "sunnybrook": 41.0, "vas": 0.0},
        "after": {},
    }
    assert second["outcomes"]["after"] == {"sunnybrook": 60.0}
    assert [a["what"] for a in second["adverse_events"]] == [WHAT, "pain"]
    assert first["stricta"] == {"style": "TCM"}
    assert "Rötung unter Pad A, 2 cm — 发红 ✓" in text  # written as text, not \\u escapes


def test_export_course_writes_private_files(bells: Path, tmp_path: Path) -> None:
    csv_path, json_path = tmp_path / "c.csv", tmp_path / "c.json"
    code, out, err = run(
        "export", "--course", "1", "--csv", str(csv_path), "--json", str(json_path),
        "--store", str(bells),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"wrote {csv_path} (course 1, 2 sessions, CSV)",
        f"wrote {json_path} (course 1, 2 sessions, JSON)",
    ]
    for path in (csv_path, json_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(json_path.read_text(encoding="utf-8"))["course"]["id"] == 1
    with csv_path.open(encoding="utf-8", newline="") as fh:
        assert len(list(csv.reader(fh))) == 3


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--course", "5", "--csv", "x.csv"], "has no course 5"),
        (["--course", "1"], "give --csv FILE, --json FILE or both"),
        (["--course", "-1", "--csv", "x.csv"], "--course '-1': not a course number"),
        (["2", "--course", "1", "--csv", "x.csv"], "give a SESSION or --course ID, not both"),
    ],
)
def test_a_bad_course_export_is_one_line(
    bells: Path, argv: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run("export", *argv, "--store", str(bells))
    assert code == 2 and out == ""
    assert err.startswith("acustim: ") and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "x.csv").exists()
