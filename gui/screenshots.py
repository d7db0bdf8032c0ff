"""``python -m gui.screenshots DIR``: PNGs of the window's main states, for review.

States: idle (connected, nothing running), a ceiling typed too high (refused), running (a
session with live plots), paused, resumed, stopped, a session ended by a fault (the link
dropped), the program timeline, a device that keeps stimulating on its own (the warning), and
the placement map of every built-in program. Each window state is taken at two sizes: a
1920x1080 screen and a 1366x768 laptop screen, each less 60 px for a task bar and a title bar
(``SIZES``). Runs offscreen when there is no display; drives the real window on the built-in
simulators, in real time (about 90 s), and records nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from acustim import Engine, builtin_names, list_simulators, load_program
from gui.app import create_app
from gui.window import MainWindow

#: window sizes: a full-HD screen and a 1366x768 laptop, less a task bar and a title bar
SIZES = ((1920, 1020), (1366, 708))

#: A short program for the "running" picture: a 4 s ramp, then Han's 2/100 Hz alternation at
#: 2 s each, so 20 s of session show every feature of the plots.
DEMO_PROGRAM = """
[program]
name = "screenshot-demo"
title = "Demo: 4 s ramp, then 2/100 Hz dense-disperse"
indication = "Screenshots of the app (not a treatment)"
electrode = "pad"
cautions = ["A demonstration program for screenshots; not a treatment."]

[[segments]]
kind = "ramp"
label = "ramp from zero"
duration_s = 4
frequency_hz = 2
pulse_width_us = 250
intensity_from = 0.0
intensity_to = 1.0

[[segments]]
kind = "dense_disperse"
label = "2/100 Hz dense-disperse"
duration_s = 120
low_hz = 2
high_hz = 100
low_s = 2
high_s = 2
pulse_width_us = 250
intensity = 1.0

[[channels]]
name = "A"
sites = ["ST7-L", "ST6-L"]

[[channels]]
name = "B"
sites = ["SI19-L", "ST5-L"]
"""


def pump(app: QApplication, seconds: float, until: Callable[[], bool] | None = None) -> None:
    """Run the event loop for ``seconds`` (or until ``until()``)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return
        time.sleep(0.01)


def _window(engine: Engine, device: str, program: str, size: tuple[int, int]) -> MainWindow:
    window = MainWindow(
        engine, device=device, program=program, confirm=lambda _t, _x: True, sound=lambda _: None
    )
    window.resize(*size)
    window.show()
    return window


def _save(window: MainWindow, out: Path, name: str, saved: list[Path]) -> None:
    path = out / f"{name}-{window.width()}x{window.height()}.png"
    window.grab().save(str(path))
    saved.append(path)


def take(out: Path) -> list[Path]:
    """Drive the window through its states and save one PNG per state and size; returns the
    paths."""
    out.mkdir(parents=True, exist_ok=True)
    app = create_app()
    saved: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "screenshot-demo.toml"
        demo.write_text(DEMO_PROGRAM, encoding="utf-8")
        for size in SIZES:
            _states(app, demo, size, out, saved)
        # the placement map of every built-in program
        engine = Engine(virtual_time=False, records=False)
        window = _window(engine, "", "tmj-jaw-pain-left", SIZES[0])
        for name in builtin_names():
            window.program_panel.select(name)
            pump(app, 0.2)
            path = out / f"map-{name}.png"
            window.program_panel.grab().save(str(path))
            saved.append(path)
        window.close()
    return saved


def _states(
    app: QApplication, demo: Path, size: tuple[int, int], out: Path, saved: list[Path]
) -> None:
    """Every window state at one size."""
    # idle, then running, paused, and a fault, on the Coyote 3 simulator
    engine = Engine(virtual_time=False, records=False)
    window = _window(engine, "sim:coyote3", "tmj-jaw-pain-left", size)
    pump(app, 5.0, lambda: window.device is not None)
    pump(app, 0.3)
    _save(window, out, "idle", saved)

    card = next(iter(window.channels.cards.values()))
    card.ceiling.setFocus()
    card.ceiling.lineEdit().setText("999")
    card.ceiling.editingFinished.emit()
    pump(app, 0.2)
    _save(window, out, "ceiling-refused", saved)

    window.program_panel.add_program(load_program(demo))
    window.program_panel.select("screenshot-demo")
    pump(app, 0.2)
    window.start_session()
    levels = iter((40, 25))
    for card in window.channels.cards.values():
        card.slider.setValue(next(levels, 20))
    pump(app, 18.0)
    _save(window, out, "running", saved)

    window.pause_session()
    pump(app, 1.5)
    _save(window, out, "paused", saved)

    window.resume_session()
    pump(app, 1.0)
    _save(window, out, "resumed", saved)
    pump(app, 1.5)
    device = window.device
    assert device is not None
    device.drop_link("Bluetooth link lost (simulated)")
    pump(app, 3.0, lambda: window.session is not None and window.session.done)
    pump(app, 0.5)
    _save(window, out, "fault", saved)

    window.program_panel.tabs.setCurrentIndex(1)
    pump(app, 0.2)
    _save(window, out, "timeline", saved)
    window.close()

    # a device that keeps stimulating when the host goes silent: the warning shows
    if "sim:pulsepal" in {f"sim:{n}" for n in _simulator_ids()}:
        engine = Engine(virtual_time=False, records=False)
        window = _window(engine, "sim:pulsepal", "tmj-jaw-pain-left", size)
        pump(app, 5.0, lambda: window.device is not None)
        pump(app, 0.3)
        _save(window, out, "device-keeps-stimulating", saved)
        window.start_session()
        pump(app, 3.0)
        window.emergency_stop()
        pump(app, 2.0, lambda: window.session is not None and window.session.done)
        pump(app, 0.3)
        _save(window, out, "stopped", saved)
        window.close()


def _simulator_ids() -> list[str]:
    return [f.spec.split(":", 1)[1] for f in list_simulators()]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m gui.screenshots DIR", file=sys.stderr)
        return 2
    for path in take(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
