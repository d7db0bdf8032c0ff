"""Treatment courses, outcomes, adverse events and STRICTA entries: the store's API and the
``acustim course / outcome / adverse / stricta`` commands and ``acustim run --course``, on a
real SQLite store. Every bad value is one line naming the option and what is allowed, exit 2,
and nothing is stored (or sent)."""

from __future__ import annotations

import hashlib
import io
import sqlite3
from pathlib import Path

import pytest

from acustim import cli
from acustim.commands import course as course_command
from acustim.records import (
    CONDITIONS,
    MEASURES,
    STORE_FILE_NAME,
    STRICTA_ITEMS,
    RecordsError,
    RecordStore,
    condition_of,
    measures_for,
)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def one_line(err: str) -> str:
    assert err.startswith("acustim: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def session(store: RecordStore, program: str = "tmj-jaw-pain-left", patient: str = "P-0042") -> int:
    sid = store.start_session(
        program=program, device="sim:coyote3", profile="coyote3", patient=patient
    )
    store.end_session(sid, outcome="completed")
    store.flush()
    return sid


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / STORE_FILE_NAME


@pytest.fixture
def tmd(store_path: Path) -> Path:
    """A store with a TMD course for P-0042 and two of its sessions, and one of Bell's palsy."""
    with RecordStore.open(store_path) as store:
        course = store.create_course(
            patient="P-0042", indication="tmd", planned_sessions=6, interval_days=7
        )
        for _ in range(2):
            store.link_session(session(store), course)
        bells = store.create_course(
            patient="B-7", indication="bells-palsy", planned_sessions=10, interval_days=2
        )
        store.link_session(session(store, "bells-palsy-subacute-left", "B-7"), bells)
        session(store, "han-2-100-analgesia", "Q-1")  # session 4: in no course
    return store_path


# --- the tables ---------------------------------------------------------------------------------


def test_the_outcome_table_maps_indications_and_programs_and_unknown_is_vas_only() -> None:
    def keys(indication: str) -> list[str]:
        return [m.key for m in measures_for(indication)]

    assert keys("tmd") == keys("tmj-jaw-pain-left") == ["vas", "mouth_mm"]
    assert keys("bells-palsy-chronic-right") == ["vas", "house_brackmann", "sunnybrook"]
    assert keys("tension-headache") == keys("migraine") == ["vas", "headache_days"]
    assert keys("Migraine") == ["vas", "headache_days"]
    assert keys("migraine-prophylaxis-left") == ["vas", "headache_days"]  # added to the library
    assert keys("facial-rejuvenation") == keys("something new") == ["vas"]
    assert condition_of("something new") is None
    # every built-in program either maps or is VAS only, and every condition's measures exist
    library = Path(__file__).resolve().parents[2] / "waveforms" / "library"
    for toml in library.glob("*.toml"):
        assert measures_for(toml.stem)[0].key == "vas"
    assert all(set(c.measures) <= set(MEASURES) for c in CONDITIONS.values())


def test_the_command_options_are_the_measures_and_stricta_items_of_the_store() -> None:
    assert [(k, o) for k, o, *_ in course_command.MEASURE_OPTIONS] == [
        (m.key, m.option) for m in MEASURES.values()
    ]
    assert [k for k, _ in course_command.STRICTA_OPTIONS] == list(STRICTA_ITEMS)


# --- courses --------------------------------------------------------------------------------------


def test_course_new_list_and_show(store_path: Path) -> None:
    code, out, err = run(
        "course", "new", "--patient", "P-0042", "--indication", "tmj-jaw-pain-left",
        "--sessions", "6", "--interval-days", "7", "--notes", "Kiefer — 6 Sitzungen",
        "--store", str(store_path),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.startswith("course 1 for patient P-0042: tmd: temporomandibular disorder")
    assert "outcomes VAS pain, maximal mouth opening; 6 sessions, 7 days apart" in out
    code, out, _ = run(
        "course", "new", "--patient", "M-1", "--indication", "cluster headache",
        "--sessions", "4", "--interval-days", "0", "--store", str(store_path),
    )  # fmt: skip
    assert code == 0
    assert "not in the outcome table, so only VAS pain applies" in out
    code, out, _ = run("course", "list", "--store", str(store_path))
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "ID", "PATIENT", "INDICATION", "SESSIONS", "INTERVAL", "CREATED"
    ]  # fmt: skip
    assert lines[1].split()[:5] == ["1", "P-0042", "tmd", "0/6", "7"]
    assert lines[2].split()[:4] == ["2", "M-1", "cluster", "headache"]
    code, out, _ = run("course", "list", "--patient", "m-1", "--store", str(store_path))
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["2"]
    code, out, _ = run("course", "show", "1", "--store", str(store_path))
    assert code == 0 and "notes Kiefer — 6 Sitzungen" in out and "no sessions yet" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--sessions", "0"],
            "--sessions '0': sessions planned is not a whole number in range; allowed 1..100",
        ),
        (["--sessions", "101"], "allowed 1..100"),
        (["--sessions", "-3"], "--sessions '-3'"),
        (["--interval-days", "366"], "--interval-days '366': days between sessions"),
        (["--interval-days", "7.5"], "allowed 0..365"),
        (["--patient", "Anna Muster"], "looks like a name"),
        (["--indication", ""], "--indication is empty; allowed 1..80 characters"),
        (["--indication", "x" * 81], "--indication is 81 characters long; allowed at most 80"),
        (["--notes", "a\x00b"], "--notes: control characters are not allowed"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_a_bad_course_is_one_line_and_nothing_is_stored(
    store_path: Path, argv: list[str], expected: str
) -> None:
    given = {"--patient": "P-1", "--indication": "tmd", "--sessions": "6", "--interval-days": "7"}
    given.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    flat = [x for pair in given.items() for x in pair]
    code, out, err = run("course", "new", *flat, "--store", str(store_path))
    assert code == 2 and out == ""
    assert expected in one_line(err)
    if store_path.exists():
        with RecordStore.open(store_path, read_only=True) as store:
            assert store.courses() == []


def test_sessions_join_a_course_with_numbers_and_only_of_its_patient(tmd: Path) -> None:
    with RecordStore.open(tmd) as store:
        assert [(s.id, s.course_number) for s in store.course_sessions(1)] == [(1, 1), (2, 2)]
        # the next session recorded joins in the same commit
        store.link_next_session(1)
        new = session(store)
        assert (store.session(new).course_id, store.session(new).course_number) == (1, 3)
        later = session(store)  # the link was for one session only
        assert store.session(later).course_id is None
        assert store.link_session(later, 1) == 4
        assert store.course(1).session_count == 4
        with pytest.raises(RecordsError, match=r"session 1 is already session 1 of course 1"):
            store.link_session(1, 1)
        with pytest.raises(RecordsError, match=r"session 3 is for patient B-7, but course 1"):
            store.link_session(3, 1)
        with pytest.raises(RecordsError, match=r"has no course 9"):
            store.link_session(4, 9)
        no_patient = store.start_session(program="p", device="d", profile="f")
        with pytest.raises(RecordsError, match=r"has no patient code; course 1 is for"):
            store.link_session(no_patient, 1)
        # a pending link for another patient's session is refused before it is recorded
        store.link_next_session(1)
        with pytest.raises(RecordsError, match=r"the session is for patient Q-1, but course 1"):
            store.start_session(program="p", device="d", profile="f", patient="Q-1")
    with sqlite3.connect(tmd) as conn:  # the file holds the numbers, unique per course
        rows = conn.execute(
            "SELECT id, course_number FROM sessions WHERE course_id = 1 ORDER BY course_number"
        ).fetchall()
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE sessions SET course_number = 1 WHERE id = 2")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE sessions SET course_number = NULL WHERE id = 2")
    conn.close()
    assert rows == [(1, 1), (2, 2), (5, 3), (6, 4)]


def test_course_link_command(tmd: Path) -> None:
    with RecordStore.open(tmd) as store:
        sid = session(store)
    code, out, err = run(
        "course", "link", "--session", str(sid), "--course", "1", "--store", str(tmd)
    )
    assert (code, out, err) == (0, f"session {sid} is session 3 of course 1\n", "")
    code, out, err = run("course", "link", "--session", "3", "--course", "1", "--store", str(tmd))
    assert code == 2 and "is for patient B-7, but course 1 is for patient P-0042" in one_line(err)
    code, _, err = run("course", "link", "--session", "x1", "--course", "1", "--store", str(tmd))
    assert code == 2 and "--session 'x1': not a session number; allowed 1.." in one_line(err)


# --- acustim run --course -------------------------------------------------------------------


@pytest.fixture
def screening_file(tmp_path: Path) -> Path:
    code, out, _ = run("screening")
    assert code == 0
    path = tmp_path / "answers.toml"
    path.write_text(out.replace('"?"', "false"), encoding="utf-8")
    return path


def test_run_with_a_course_links_and_numbers_the_session(tmd: Path, screening_file: Path) -> None:
    argv = (
        "run", "tmj-jaw-pain-left", "--device", "sim:coyote3", "--level", "A=10",
        "--duration", "3", "--virtual-time", "--quiet", "--store", str(tmd),
        "--screening", str(screening_file), "--course", "1",
    )  # fmt: skip
    code, out, err = run(*argv)
    assert code == 0, err
    assert "recorded as session 5" in out
    with RecordStore.open(tmd, read_only=True) as store:
        info = store.session(5)
        assert (info.patient, info.course_id, info.course_number) == ("P-0042", 1, 3)
        assert info.outcome == "completed"
    code, out, err = run(*argv, "--patient", "p-0042")  # the same code, any case
    assert code == 0, err
    with RecordStore.open(tmd, read_only=True) as store:
        assert store.session(6).course_number == 4


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--course", "1", "--patient", "Q-1"], "course 1 is for patient P-0042; allowed"),
        (["--course", "9"], "has no course 9"),
        (["--course", "one"], "--course 'one': not a course number"),
        (["--course", "1", "--no-record"], "--course with --no-record"),
    ],
    ids=["other patient", "no such course", "not a number", "no record"],
)
def test_run_with_a_bad_course_sends_nothing_and_records_nothing(
    tmd: Path, screening_file: Path, extra: list[str], expected: str
) -> None:
    before = digest(tmd)
    code, out, err = run(
        "run", "tmj-jaw-pain-left", "--device", "sim:coyote3", "--level", "A=10",
        "--duration", "3", "--virtual-time", "--quiet", "--store", str(tmd),
        "--screening", str(screening_file), *extra,
    )  # fmt: skip
    assert code == 2 and out == ""
    assert expected in one_line(err)
    assert digest(tmd) == before


# --- outcomes ---------------------------------------------------------------------------------


def test_outcomes_are_entered_before_and_after_and_shown_by_course(tmd: Path) -> None:
    store = str(tmd)
    assert run("outcome", "add", "--session", "1", "--before", "--vas", "7", "--mouth-mm", "31",
               "--store", store) == (0, "session 1, before: VAS pain 7, maximal mouth opening"
                                        " 31 mm\n", "")  # fmt: skip
    assert (
        run("outcome", "add", "--session", "1", "--after", "--vas", "3.5", "--store", store)[0] == 0
    )
    assert run("outcome", "add", "--session", "3", "--before", "--house-brackmann", "iv",
               "--sunnybrook", "45", "--store", store)[1] == (
        "session 3, before: House-Brackmann grade IV, Sunnybrook composite score 45\n"
    )  # fmt: skip
    # a value entered again is refused, and --replace corrects it
    code, _, err = run(
        "outcome", "add", "--session", "1", "--after", "--vas", "2", "--store", store
    )
    assert code == 2 and "already has VAS pain after it (3.5); give --replace" in one_line(err)
    assert run("outcome", "add", "--session", "1", "--after", "--vas", "2", "--replace",
               "--store", store)[0] == 0  # fmt: skip
    with RecordStore.open(tmd, read_only=True) as reader:
        rows = [(o.session_id, o.timing, o.measure, o.value) for o in reader.outcomes(course_id=1)]
        assert rows == [(1, "before", "vas", 7.0), (1, "before", "mouth_mm", 31.0),
                        (1, "after", "vas", 2.0)]  # fmt: skip
        assert [(o.measure, o.value) for o in reader.outcomes(session_id=3)] == [
            ("house_brackmann", 4.0), ("sunnybrook", 45.0)
        ]  # fmt: skip
    code, out, _ = run("course", "show", "1", "--store", store)
    assert code == 0
    row = next(line for line in out.splitlines() if line.split()[:2] == ["1", "1"])
    assert "7/2" in row and "31 mm/-" in row


@pytest.mark.parametrize(
    ("session_id", "option", "value", "expected"),
    [
        ("1", "--vas", "11", "--vas '11': VAS pain is out of range; allowed 0..10"),
        ("1", "--vas", "-1", "--vas '-1': VAS pain is out of range"),
        ("1", "--vas", "nan", "--vas 'nan'"),
        ("1", "--vas", "1e3", "--vas '1e3'"),
        ("1", "--vas", "٣", "allowed 0..10"),  # an Arabic-Indic digit
        (
            "1",
            "--mouth-mm",
            "81",
            "--mouth-mm '81': maximal mouth opening is out of range; allowed 0..80 mm",
        ),
        ("1", "--mouth-mm", "38mm", "allowed 0..80 mm"),
        ("3", "--house-brackmann", "VII", "House-Brackmann grade is out of range; allowed I..VI"),
        ("3", "--house-brackmann", "0", "allowed I..VI"),
        ("3", "--house-brackmann", "2.5", "allowed I..VI"),
        ("3", "--sunnybrook", "101", "Sunnybrook composite score is out of range; allowed 0..100"),
        ("3", "--sunnybrook", "50.5", "allowed 0..100 (whole number"),
        (
            "1",
            "--house-brackmann",
            "II",
            "--house-brackmann: House-Brackmann grade is not an"
            " outcome measure of course 1 (tmd); allowed --vas, --mouth-mm",
        ),
        ("3", "--headache-days", "3", "not an outcome measure of course 2 (bells-palsy)"),
        (
            "4",
            "--mouth-mm",
            "30",
            "not an outcome measure of program han-2-100-analgesia; allowed --vas",
        ),
        ("99", "--vas", "3", "has no session 99"),
        ("0", "--vas", "3", "--session '0': not a session number"),
    ],
)
def test_a_bad_outcome_is_one_line_naming_the_option_and_nothing_is_stored(
    tmd: Path, session_id: str, option: str, value: str, expected: str
) -> None:
    code, out, err = run(
        "outcome", "add", "--session", session_id, "--before", "--vas", "5", option, value,
        "--store", str(tmd),
    )  # fmt: skip
    assert code == 2 and out == ""
    assert expected in one_line(err)
    with sqlite3.connect(tmd) as conn:  # not even the good --vas 5
        assert conn.execute("SELECT count(*) FROM outcomes").fetchone() == (0,)
    conn.close()


def test_outcome_needs_a_measure_and_a_timing(tmd: Path) -> None:
    code, _, err = run("outcome", "add", "--session", "1", "--before", "--store", str(tmd))
    assert code == 2 and "give at least one outcome: --vas X, --mouth-mm MM" in one_line(err)
    code, _, err = run("outcome", "add", "--session", "1", "--vas", "3", "--store", str(tmd))
    assert code == 2 and "one of the arguments --before --after is required" in one_line(err)
    code, _, err = run("outcome", "add", "--session", "1", "--before", "--after", "--vas", "3",
                       "--store", str(tmd))  # fmt: skip
    assert code == 2 and "not allowed with argument" in one_line(err)
    missing = tmd.parent / "elsewhere.sqlite3"
    code, _, err = run("outcome", "add", "--session", "1", "--before", "--vas", "3",
                       "--store", str(missing))  # fmt: skip
    assert code == 2 and "no records store at" in one_line(err) and not missing.exists()


# --- adverse events -----------------------------------------------------------------------------


def test_adverse_events_with_severity(tmd: Path) -> None:
    code, out, err = run("adverse", "add", "--session", "2", "--severity", "Moderate", "--what",
                         "Rötung unter Pad A — 2 cm ✓", "--action", "pads moved",
                         "--store", str(tmd))  # fmt: skip
    assert (code, err) == (0, "") and out == "adverse event 1 recorded for session 2 (moderate)\n"
    code, out, _ = run("adverse", "add", "--session", "1", "--severity", "serious", "--what",
                       "fainted, admitted", "--store", str(tmd))  # fmt: skip
    assert code == 0 and "a serious adverse event" in out
    with RecordStore.open(tmd, read_only=True) as store:
        rows = [
            (a.session_id, a.severity, a.what, a.action) for a in store.adverse_events(course_id=1)
        ]
    assert rows == [(1, "serious", "fainted, admitted", ""),
                    (2, "moderate", "Rötung unter Pad A — 2 cm ✓", "pads moved")]  # fmt: skip
    code, out, _ = run("course", "show", "1", "--store", str(tmd))
    assert "#2 session 2: moderate: Rötung unter Pad A — 2 cm ✓; action: pads moved" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--severity", "bad", "--what", "x"],
            "--severity 'bad': adverse-event severity is not"
            " one of ours; allowed mild, moderate, severe, serious",
        ),
        (["--severity", "mild", "--what", "  "], "--what is empty; allowed 1..500 characters"),
        (["--severity", "mild", "--what", "y" * 501], "--what is 501 characters long"),
        (["--severity", "mild"], "the following arguments are required: --what"),
    ],
    ids=["severity", "empty", "long", "missing"],
)
def test_a_bad_adverse_event_is_one_line(tmd: Path, argv: list[str], expected: str) -> None:
    code, out, err = run("adverse", "add", "--session", "1", *argv, "--store", str(tmd))
    assert code == 2 and out == "" and expected in one_line(err)
    with RecordStore.open(tmd, read_only=True) as store:
        assert store.adverse_events(session_id=1) == []


# --- STRICTA ------------------------------------------------------------------------------------


def test_stricta_defaults_apply_to_sessions_started_after_and_a_session_entry_wins(
    store_path: Path,
) -> None:
    with RecordStore.open(store_path) as store:
        early = session(store)
    code, out, err = run("stricta", "set-defaults", "--style", "TCM (Zangfu)", "--practitioner",
                         "Akupunkteurin, 12 Jahre", "--needle-count", "6", "--store",
                         str(store_path))  # fmt: skip
    assert (code, err) == (0, "") and "default style: TCM (Zangfu)" in out
    with RecordStore.open(store_path) as store:
        late = session(store)
    code, _, _ = run("stricta", "set", "--session", str(late), "--style", "Western medical",
                     "--response", "de qi sought", "--practitioner", "", "--store",
                     str(store_path))  # fmt: skip
    assert code == 0
    code, out, _ = run("stricta", "show", "--session", str(late), "--store", str(store_path))
    assert "style: Western medical (this session)" in out
    assert "needle_count: 6 (default)" in out
    assert "practitioner: not recorded" in out  # '' for this session
    code, out, _ = run("stricta", "show", "--session", str(early), "--store", str(store_path))
    assert "style: not recorded" in out  # set after it started: not its default
    # a default changed later does not change the session
    run("stricta", "set-defaults", "--needle-count", "8", "--store", str(store_path))
    with RecordStore.open(store_path, read_only=True) as store:
        info = store.session(late)
        assert store.stricta_defaults(at=info.started_at)["needle_count"] == "6"
        assert store.stricta_defaults()["needle_count"] == "8"
        assert store.session_stricta(late) == {
            "practitioner": "", "response": "de qi sought", "style": "Western medical"
        }  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--needle-count", "101"],
            "--needle-count '101': needle insertions per session is not"
            " a whole number in range; allowed 0..100 (our policy)",
        ),
        (["--needle-count", "six"], "allowed 0..100"),
        (["--style", "z" * 501], "--style is 501 characters long; allowed at most 500"),
        (["--depth", "1\x1b[31mcm"], "--depth: control characters are not allowed"),
        ([], "give at least one STRICTA item"),
    ],
    ids=["count", "word", "long", "escape", "none"],
)
def test_a_bad_stricta_item_is_one_line(store_path: Path, argv: list[str], expected: str) -> None:
    code, out, err = run("stricta", "set-defaults", *argv, "--store", str(store_path))
    assert code == 2 and out == "" and expected in one_line(err)
    if store_path.exists():
        with RecordStore.open(store_path, read_only=True) as store:
            assert store.stricta_defaults() == {}


def test_every_new_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["course", "new"], ["course", "list"], ["course", "show"], ["course", "link"],
        ["outcome", "add"], ["adverse", "add"], ["stricta", "set-defaults"], ["stricta", "set"],
        ["stricta", "show"],
    ):  # fmt: skip
        code, _, _ = run(*argv, "--help")
        out = capsys.readouterr().out  # argparse prints help to the process's stdout
        assert code == 0 and "example" in out and f"acustim {argv[0]} " in out, argv
