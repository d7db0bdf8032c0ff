"""``acustim sessions``, ``acustim report`` and ``acustim export`` through ``acustim.cli.main``:
what they print, the files they write (0600), their one-line errors, and that they never
change the store."""

from __future__ import annotations

import hashlib
import io
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from acustim import Engine, cli
from acustim.commands import records as records_command
from acustim.export import load_csv, load_json
from acustim.records import DATA_DIR_ENV, STORE_FILE_NAME, RecordStore
from tests.programs import continuous

#: the recorded session's program; the listings and the report show its name and title
CLI_TEST = continuous(
    name="cli-test",
    title="CLI test",
    duration_s=8,
    frequency_hz=50,
    channels={"A": ("ST7-L", "ST6-L")},
)


@pytest.fixture(autouse=True)
def records_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command module in the CLI, whether or not acustim.cli lists it yet."""
    if records_command not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, records_command))


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def one_line(err: str) -> str:
    assert err.startswith("acustim: ") and err.endswith("\n") and err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a real session (the Pulse Pal simulator) and three made through the API."""
    path = tmp_path_factory.mktemp("cli") / STORE_FILE_NAME
    with Engine(virtual_time=True, records=path) as engine:
        session = engine.connect("sim:pulsepal").start(CLI_TEST, levels={"A": 900})
        assert session.wait(60).outcome == "completed"
    with RecordStore.open(path) as store:
        for patient, outcome in (("P-0042", "stopped"), ("Q-7", "fault"), ("P-0042", None)):
            session_id = store.start_session(
                program="tmj-jaw-pain-left",
                device="sim:coyote3",
                profile="coyote3",
                patient=patient,
            )
            if outcome:
                store.end_session(session_id, outcome=outcome, reason=f"{outcome} for a test")
    return path


@pytest.fixture
def store_arg(recorded: Path) -> list[str]:
    return ["--store", str(recorded)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- acustim sessions -------------------------------------------------------------------------


def test_sessions_lists_every_session_oldest_first(store_arg: list[str]) -> None:
    code, out, err = run("sessions", *store_arg)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID",
        "STARTED",
        "LENGTH",
        "PATIENT",
        "PROGRAM",
        "DEVICE",
        "OUTCOME",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4"]
    assert "cli-test" in lines[1] and "sim:pulsepal" in lines[1] and "completed" in lines[1]
    assert "stopped: stopped for a test" in lines[2]
    assert "P-0042" in lines[2] and "Q-7" in lines[3]
    assert lines[4].endswith("unfinished (no recorded end)")


def test_sessions_filter_by_patient_in_any_case_and_by_date(store_arg: list[str]) -> None:
    code, out, _ = run("sessions", *store_arg, "--patient", "p-0042")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["2", "4"]
    today = datetime.now(UTC).astimezone().date()
    code, out, _ = run("sessions", *store_arg, "--since", str(today), "--until", str(today))
    assert code == 0 and len(out.splitlines()) == 5
    tomorrow = today + timedelta(days=1)
    assert run("sessions", *store_arg, "--since", str(tomorrow)) == (0, "no sessions match\n", "")
    code, out, _ = run("sessions", *store_arg, "--until", f"{tomorrow}T00:00")
    assert code == 0 and len(out.splitlines()) == 5


def test_sessions_refuses_a_name_and_a_bad_date_in_one_line(store_arg: list[str]) -> None:
    code, out, err = run("sessions", *store_arg, "--patient", "Jane Doe")
    assert (code, out) == (2, "")
    assert "patient code 'Jane Doe' has a space in it and looks like a name" in one_line(err)
    code, _, err = run("sessions", *store_arg, "--since", "last week")
    assert code == 2 and "'last week' is not a date: write YYYY-MM-DD" in one_line(err)


def test_sessions_without_a_store_says_none_were_recorded(tmp_path: Path) -> None:
    path = tmp_path / "none" / STORE_FILE_NAME
    code, out, err = run("sessions", "--store", str(path))
    assert (code, err) == (0, "")
    assert out == f"no sessions recorded yet (no records store at {path})\n"
    assert not path.parent.exists()


def test_sessions_reads_the_default_store(monkeypatch: pytest.MonkeyPatch, recorded: Path) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(recorded.parent))
    code, out, _ = run("sessions")
    assert code == 0 and len(out.splitlines()) == 5


def test_a_damaged_store_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    path.write_text("not a database")
    for argv in (("sessions",), ("report", "1", "--html", str(tmp_path / "r.html"))):
        code, out, err = run(*argv, "--store", str(path))
        assert (code, out) == (2, "")
        assert "not an acustim records store" in one_line(err)


# --- acustim report ---------------------------------------------------------------------------


def test_report_writes_private_html_and_pdf(
    store_arg: list[str], recorded: Path, tmp_path: Path, qapp: QApplication
) -> None:
    before = digest(recorded)
    html, pdf = tmp_path / "s1.html", tmp_path / "s1.pdf"
    code, out, err = run("report", "1", *store_arg, "--html", str(html), "--pdf", str(pdf))
    assert (code, err) == (0, "")
    assert out == f"wrote {html} (session 1, HTML)\nwrote {pdf} (session 1, PDF)\n"
    assert stat.S_IMODE(html.stat().st_mode) == stat.S_IMODE(pdf.stat().st_mode) == 0o600
    page = html.read_text(encoding="utf-8")
    assert "<h1>Session 1: CLI test</h1>" in page and "STRICTA items" in page
    assert "recorded frames x calibrated profile (0.002 mA/du)" in page
    assert pdf.read_bytes().startswith(b"%PDF")
    assert digest(recorded) == before  # the store is only read


def test_report_last_is_the_newest_session(store_arg: list[str], tmp_path: Path) -> None:
    html = tmp_path / "last.html"
    assert run("report", "last", *store_arg, "--html", str(html))[0] == 0
    assert "<h1>Session 4: tmj-jaw-pain-left</h1>" in html.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["99", "--html", "{tmp}/r.html"], "has no session 99 ('acustim sessions' lists them)"),
        (["abc", "--html", "{tmp}/r.html"], "SESSION must be a session number"),
        (["1"], "give --html FILE, --pdf FILE or both"),
        (["1", "--html", "{tmp}/missing/r.html"], "the directory {tmp}/missing does not exist"),
        (["1", "--pdf", "{tmp}"], "it is a directory; give a file name"),
        (["1", "--html", "{tmp}/a-file/r.html"], "{tmp}/a-file is not a directory"),
    ],
    ids=["unknown-session", "not-a-number", "no-output", "no-directory", "a-directory", "a-file"],
)
def test_report_errors_are_one_line(
    store_arg: list[str], tmp_path: Path, argv: list[str], says: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    code, out, err = run("report", *(a.format(tmp=tmp_path) for a in argv), *store_arg)
    assert (code, out) == (2, "")
    assert says.format(tmp=tmp_path) in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_report_of_a_missing_store_says_where_it_looked(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    code, _, err = run("report", "1", "--html", str(tmp_path / "r.html"), "--store", str(path))
    assert code == 2 and f"no records store at {path}" in one_line(err)


# --- acustim export ---------------------------------------------------------------------------


def test_export_writes_private_csv_and_json_that_read_back(
    store_arg: list[str], recorded: Path, tmp_path: Path
) -> None:
    csv_path, json_path = tmp_path / "f.csv", tmp_path / "f.json"
    code, out, err = run(
        "export", "1", *store_arg, "--csv", str(csv_path), "--json", str(json_path)
    )
    assert (code, err) == (0, "")
    with RecordStore.open(recorded, read_only=True) as store:
        frames = store.frames(1)
    assert out == (
        f"wrote {csv_path} (session 1, {len(frames)} frames, CSV)\n"
        f"wrote {json_path} (session 1, {len(frames)} frames, JSON)\n"
    )
    assert load_csv(csv_path) == frames and load_json(json_path) == frames
    assert {stat.S_IMODE(p.stat().st_mode) for p in (csv_path, json_path)} == {0o600}


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["7", "--csv", "{tmp}/f.csv"], "has no session 7"),
        (["1"], "give --csv FILE, --json FILE or both"),
        (["1", "--json", "{tmp}/nowhere/f.json"], "the directory {tmp}/nowhere does not exist"),
    ],
    ids=["unknown-session", "no-output", "no-directory"],
)
def test_export_errors_are_one_line(
    store_arg: list[str], tmp_path: Path, argv: list[str], says: str
) -> None:
    code, out, err = run("export", *(a.format(tmp=tmp_path) for a in argv), *store_arg)
    assert (code, out) == (2, "")
    assert says.format(tmp=tmp_path) in one_line(err)


# --- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("sessions", ["--patient CODE", "--since DATE", "--until DATE", "--store PATH"]),
        ("report", ["SESSION", "--html FILE", "--pdf FILE", "STRICTA", "0600", "examples:"]),
        ("export", ["SESSION", "--csv FILE", "--json FILE", "frequency_hz", "examples:"]),
    ],
)
def test_help_says_what_each_command_does(
    command: str, says: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(command, "--help")[0] == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in says:
        assert phrase in text
