"""``acustim simulate DEVICE --pty`` serves a simulator that ``acustim run`` drives through real
pyserial, exactly as it would a real box on a serial port."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from acustim.cli import main
from acustim.commands.screening import template

ROOT = Path(__file__).resolve().parents[2]


# The programs open with a ramp from intensity 0: on the ET-312, whose intensity register is
# level x intensity rounded down (and whose knobs, at half by default, scale it again), its
# highest face level (25 % of 255 while uncalibrated) and a longer run are needed before whole
# register steps reach the box. facial-muscle-tension is the one built-in program the ET-312
# can deliver; its two channels (left and right) are refused on the Pulse Pal's shared return.
@pytest.mark.parametrize(
    ("device", "program", "level", "duration"),
    [
        ("et312", "facial-muscle-tension", "A=63", "8"),
        ("pulsepal", "tmj-jaw-pain-left", "A=800", "4"),
    ],
)
def test_run_drives_a_simulator_served_on_a_pty(
    tmp_path: Path, device: str, program: str, level: str, duration: str
) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "acustim.cli", "simulate", device, "--pty", "--status-every", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert server.stdout is not None
        path = server.stdout.readline().strip()
        assert path.startswith("/dev/")
        out, err = io.StringIO(), io.StringIO()
        answers = tmp_path / "screening.toml"
        answers.write_text(template().replace('= "?"', "= false"), encoding="utf-8")
        code = main(
            [
                "run",
                program,
                "--device",
                f"{device}@{path}",
                "--yes",  # a real device (here a pty): the printed warnings need a yes
                "--level",
                level,
                "--ramp",
                "0.05",
                "--duration",
                duration,
                "--no-record",
                "--quiet",
                "--screening",
                str(answers),
            ],
            out=out,
            err=err,
        )
        assert code == 0, err.getvalue()
        assert "completed: session completed" in out.getvalue()
        assert "KEEPS RUNNING" in err.getvalue() or "keeps stimulating" in err.getvalue()
    finally:
        server.send_signal(signal.SIGTERM)
        _, served = server.communicate(timeout=10)
    assert server.returncode == 0
    # the simulator saw real output on channel A while the session ran
    assert any(
        line.startswith(f"[{device}] A: ") and " du x " in line for line in served.splitlines()
    )


def test_simulate_refuses_ble_devices_and_missing_pty() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["simulate", "coyote3", "--pty"], out=out, err=err) == 2
    assert "BLE device" in err.getvalue()
    assert main(["simulate", "et312"], out=out, err=err) == 2
    assert "--pty" in err.getvalue()


def test_devices_lists_models_simulators_and_ports() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["devices"], out=out, err=err) == 0
    text = out.getvalue()
    assert "et312" in text and "KEEPS RUNNING" in text
    assert "sim:coyote3" in text


def test_a_real_device_needs_a_yes_to_the_printed_warnings(tmp_path: Path) -> None:
    """Without --yes (and with no terminal to ask at), a session on a real device whose plan
    warns is not started: one line, exit 2, and the device delivered nothing."""
    server = subprocess.Popen(
        [sys.executable, "-m", "acustim.cli", "simulate", "pulsepal", "--pty"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert server.stdout is not None
        path = server.stdout.readline().strip()
        answers = tmp_path / "screening.toml"
        answers.write_text(template().replace('= "?"', "= false"), encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        argv = ["run", "tmj-jaw-pain-left", "--device", f"pulsepal@{path}", "--level", "A=800"]
        argv += ["--duration", "2", "--no-record", "--quiet", "--screening", str(answers)]
        code = main(argv, out=out, err=err)
        lines = err.getvalue().strip().splitlines()
        assert code == 2
        assert "need a yes" in lines[-1] and "--yes" in lines[-1]
        assert "keeps stimulating" in err.getvalue()  # the warnings were printed first
    finally:
        server.send_signal(signal.SIGTERM)
        _, served = server.communicate(timeout=10)
    assert not any(" du x " in line for line in served.splitlines())  # nothing delivered
