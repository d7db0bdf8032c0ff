"""``acustim calibrate``: in-process, with the virtual meter or readings typed on stdin."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from acustim.cli import main
from simulators.clock import VirtualClock
from simulators.pulsepal import PulsePalSimulator


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def stored() -> list[Path]:
    folder = Path(os.environ["ACUSTIM_DATA_DIR"]) / "calibrations"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def test_calibrate_with_the_virtual_meter_then_show(tmp_path: Path) -> None:
    store = str(tmp_path / "r.sqlite3")
    code, out, err = run_cli(
        "calibrate", "sim:pulsepal", "--by", "J. Smith", "--virtual-meter", "--virtual-time",
        "--no-person-connected", "--store", store,
    )  # fmt: skip
    assert code == 0, err
    assert "device key sim:pulsepal#unit-0" in out
    assert "A holds 625 mV: virtual meter" in out
    assert "stored: calibrated on" in out and "by J. Smith" in out
    assert "no person is connected" in err  # the load-test item, shown before anything is sent
    [path] = stored()
    assert json.loads(path.read_text())["by"] == "J. Smith"
    code, out, err = run_cli("calibrate", "sim:pulsepal", "--show", "--store", store)
    assert code == 0 and "calibrated on" in out and "by J. Smith" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sim:pulsepal", "--virtual-meter", "--no-person-connected"], "--by NAME"),
        (["pulsepal@/dev/ttyACM9", "--by", "x", "--virtual-meter"], "only a simulator"),
        (["sim:pulsepal", "--by", "x", "--virtual-time"], "needs --virtual-meter"),
        (["sim:pulsepal", "--by", "x", "--levels", "1,2,x"], "--levels"),
        (["sim:pulsepal", "--by", "x", "--meter", "avg"], "invalid choice"),
        (["sim:pulsepal", "--by", "x", "--virtual-meter"], "--no-person-connected"),
        (
            [
                "sim:coyote3",
                "--by",
                "x",
                "--virtual-meter",
                "--virtual-time",
                "--no-person-connected",
            ],
            "sets its pulse width itself",
        ),
        (
            [
                "sim:pulsepal",
                "--by",
                "x",
                "--virtual-meter",
                "--virtual-time",
                "--no-person-connected",
                "--cap-du",
                "99999",
            ],
            "allowed 1..10000 mV",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    code, _out, err = run_cli("calibrate", *argv, "--no-record")
    assert code == 2
    assert message in err and err.count("\n") == err.count("WARNING") + err.count("note:") + 1
    assert stored() == []


def _typed(levels: list[int], verify: int) -> str:
    """Peak readings, as a practitioner would type them from a scope on each Pulse Pal
    output in turn."""
    sim = PulsePalSimulator(VirtualClock())  # unit 0: the unit sim:pulsepal makes
    lines = []
    for ch in ("A", "B", "C", "D"):
        gain = sim.output_stage.gain_ma_per_du(ch)
        lines += [f"{gain * lv:.6f}" for lv in [*levels, verify]]
    return "\n".join(lines) + "\n"


def test_readings_typed_on_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    # low levels: the readings are typed in real time, and each level is reached at the soft
    # start's 200 mV/s
    monkeypatch.setattr("sys.stdin", io.StringIO(_typed([50, 100, 150], 125)))
    code, out, err = run_cli(
        "calibrate", "sim:pulsepal", "--by", "Lab", "--meter", "peak", "--cap-du", "150",
        "--levels", "50,100,150", "--no-person-connected", "--no-record",
    )  # fmt: skip
    assert code == 0, err
    assert "A holds 50 mV. Measured peak current in mA:" in out
    assert "stored: calibrated on" in out
    [path] = stored()
    data = json.loads(path.read_text())
    sim = PulsePalSimulator(VirtualClock())
    true = max(g for _c, g in sim.output_stage.gains_ma_per_du)
    assert data["peak_ma_per_du"] == pytest.approx(true, rel=1e-3)


def test_a_reading_that_is_not_a_number_stops_at_zero_and_stores_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("0.1\nabc\n"))
    code, _out, err = run_cli(
        "calibrate", "sim:pulsepal", "--by", "Lab", "--meter", "peak", "--cap-du", "150",
        "--levels", "50,100,150", "--no-person-connected", "--no-record",
    )  # fmt: skip
    assert code == 2
    assert "reading at A = 100 mV: 'abc' is not a number" in err
    assert stored() == []
