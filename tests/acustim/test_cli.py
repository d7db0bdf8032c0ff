"""The ``acustim`` command line: in-process for speed, in a subprocess for signals."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acustim.cli import main
from acustim.commands.run import status_line
from acustim.records import RecordStore
from acustim.runner import ChannelStatus, SessionStatus

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_run_on_the_simulator_completes_and_records(tmp_path: Path) -> None:
    store = tmp_path / "r.sqlite3"
    code, out, err = run_cli(
        "run",
        "migraine-prophylaxis-left",
        "--device",
        "sim:coyote3",
        "--level",
        "A=20",
        "--duration",
        "30",
        "--virtual-time",
        "--store",
        str(store),
    )
    assert code == 0, err
    assert "migraine-prophylaxis-left" in out
    assert "soft start 4 du/s" in out
    assert "completed: session completed" in out
    assert "recorded as session 1" in out
    assert "session time limit reached" in err  # the guard's notice, shown live
    with RecordStore.open(store) as records:
        (info,) = records.sessions()
        assert info.outcome == "completed"
        assert len(records.frames(info.id)) > 300


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "nosuch"], 'program name = "nosuch" is unknown'),
        # tmj-jaw-pain-left's ceiling is 40 % of the Coyote 3's 200 du, lowered to 25 % (face
        # sites on an uncalibrated device)
        (["run", "tmj-jaw-pain-left", "--level", "A=201"], r"allowed 0..50 du"),
        (["run", "tmj-jaw-pain-left", "--level", "A=x"], "write CHANNEL=WHOLE_NUMBER"),
        (["run", "tmj-jaw-pain-left", "--level", "B=3"], "has channel A"),
        (["run", "tmj-jaw-pain-left", "--level", "A=3", "--level", "A=4"], "given twice"),
        (["run", "tmj-jaw-pain-left", "--ceiling", "A=300"], r"allowed 0..50 du"),
        (["run", "tmj-jaw-pain-left", "--duration", "-5"], "must be > 0"),
        (["run", "tmj-jaw-pain-left", "--duration", "99999"], "session length"),
        (["run", "tmj-jaw-pain-left", "--ramp", "0.5"], "ramp rate"),
        (["run", "tmj-jaw-pain-left", "--device", "nosuch"], "use sim:<device>"),
        (["run", "tmj-jaw-pain-left", "--device", "sim:nosuch"], "unknown device"),
        (["run"], "the following arguments are required: program"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    extra = ["--no-record"] if argv[0] == "run" and len(argv) > 1 else []
    code, _, err = run_cli(*argv, *extra)
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith("acustim: ")
    assert message.replace("..", ".") in err.replace("..", ".")
    assert "Traceback" not in err


def test_bad_program_file_is_refused_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[program]\nname = "bad"\ntitle = "Bad"\nindication = "x"\nelectrode = "pad"\n\n'
        '[[segments]]\nkind = "continuous"\nduration_s = 10\nfrequency_hz = 500\n'
        'pulse_width_us = 200\nintensity = 0.5\n\n[[channels]]\nname = "A"\nsites = ["ST6-L"]\n'
    )
    code, _, err = run_cli("run", str(bad), "--no-record")
    assert code == 2
    assert f"{bad}:10:" in err
    assert "frequency_hz = 500" in err
    code, _, err = run_cli("validate", str(bad))
    assert code == 2
    assert f"{bad}:10:" in err


def test_programs_and_validate_list_and_check() -> None:
    code, out, _ = run_cli("programs")
    assert code == 0
    assert "tmj-jaw-pain-left" in out
    assert "ST7-L" in out
    lib = ROOT / "waveforms" / "library" / "tmj-jaw-pain-left.toml"
    code, out, _ = run_cli("validate", str(lib))
    assert code == 0
    assert ": ok (tmj-jaw-pain-left" in out


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "Not a medical device" in " ".join(capsys.readouterr().out.split())
    assert main(["run", "--help"]) == 0
    assert "Ctrl-C stops output at once" in " ".join(capsys.readouterr().out.split())
    assert main(["--version"]) == 0


def test_status_line_shows_time_segment_levels_and_lateness() -> None:
    status = SessionStatus(
        state="running",
        elapsed_s=75,
        total_s=600,
        channels=(
            # level 16 at intensity 0.75: 12 du delivered
            ChannelStatus("A", 16, 20, 200, "warm-up", delivered_du=12.0),
            ChannelStatus("B", 10, 10, 200, "warm-up", rms_current_ma=1.234, delivered_du=9.99),
        ),
        lateness_ms=0.4,
        lateness_p99_ms=1.2,
        battery_percent=80,
    )
    line = status_line(status)
    assert line.startswith("[01:15/10:00] warm-up")
    assert "A  12/20 du" in line  # what is delivered, never the level before the intensity
    assert "B   9/10 du (1.23 mA rms)" in line
    assert "late 0.4 ms (p99 1.2)" in line
    assert "battery 80%" in line


# --- real processes and real signals ---------------------------------------------------------
def start_cli(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, ACUSTIM_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "acustim.cli",
            "run",
            "tmj-jaw-pain-left",
            "--level",
            "A=50",
            "--ramp",
            "0.05",
            "--quiet",
            "--trace",
            "-",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def read_frames(proc: subprocess.Popen[str], count: int) -> list[dict[str, object]]:
    assert proc.stdout is not None
    frames: list[dict[str, object]] = []
    deadline = time.monotonic() + 30
    while len(frames) < count and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("{"):
            frames.append(json.loads(line))
    assert len(frames) == count
    return frames


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_terminate_put_zero_on_the_wire_and_exit(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    proc = start_cli(tmp_path)
    frames = read_frames(proc, 25)
    assert frames[-1]["channels"]["A"]["level_du"] > 0  # type: ignore[index]
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    last = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert last["zero"] is True
    assert last["channels"]["A"]["level_du"] == 0
    assert "output set to zero" in err
    assert "Traceback" not in err


def test_sigkill_loses_at_most_one_frame_period_of_records(tmp_path: Path) -> None:
    proc = start_cli(tmp_path)
    frames = read_frames(proc, 30)
    proc.kill()
    proc.communicate(timeout=10)
    announced = int(frames[-1]["i"])  # type: ignore[arg-type]
    db = tmp_path / "records.sqlite3"
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT MAX(frame_index) FROM frames").fetchone()
    conn.close()
    # the trace line is printed after the frame went to the device; at most the frame of the
    # last period can be missing from the store (one 100 ms frame period)
    assert stored >= announced - 1
    with RecordStore.open(db) as records:
        (info,) = records.sessions()
        assert info.outcome is None  # killed: it never ended, and the store says so


def test_the_yes_prompt_takes_end_of_input_as_no(monkeypatch: pytest.MonkeyPatch) -> None:
    """At a terminal, Ctrl-D at "Start the session? [y/N]" is a no: one line, never a
    traceback."""
    import argparse

    from acustim.commands._common import UsageError
    from acustim.commands.run import _require_yes
    from acustim.prestart import ItemKind, PlanItem

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal(""))  # nothing to read: EOF
    item = PlanItem(ItemKind.RUNS_ON, "keeps stimulating", confirm=True)
    out = io.StringIO()
    with pytest.raises(UsageError, match="not confirmed"):
        _require_yes([item], argparse.Namespace(yes=False), out)
    assert "[y/N]" in out.getvalue()
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    _require_yes([item], argparse.Namespace(yes=False), io.StringIO())  # a yes: no refusal
