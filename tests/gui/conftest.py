"""Fixtures for the window tests: a real-time engine on the simulator, and the window on it.

Sessions run on the wall clock (``Engine(virtual_time=False)``), so each test is a few
seconds at most. The simulator's record is read on the IO thread (it is not thread-safe).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from acustim.engine import Engine
from firmware_bridge.link import SimulatorLink
from gui import theme
from gui.window import MainWindow
from tests.programs import continuous_toml

T = TypeVar("T")

#: A flat program (no ramp in the program itself): output follows the level at once, so the
#: record shows the guard's soft start and the stop directly.
FLAT = continuous_toml(
    name="gui-test-flat",
    title="GUI test, flat 50 Hz",
    duration_s=120,
    frequency_hz=50,
    channels={"A": ("ST7-L", "ST6-L"), "B": ("SI19-L", "ST5-L")},
)


@pytest.fixture
def flat_program(tmp_path: Path) -> Path:
    path = tmp_path / "gui-test-flat.toml"
    path.write_text(FLAT, encoding="utf-8")
    return path


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(virtual_time=False, records=tmp_path / "records.sqlite3")
    try:
        yield e
    finally:
        e.close()


def open_window(
    qtbot: QtBot,
    engine: Engine,
    *,
    program: str = "tmj-jaw-pain-left",
    device: str = "sim:coyote3",
    confirm: Callable[[str, str], bool] | None = None,
    screening: Callable[[str | None, Any], tuple[dict[str, bool], list[str]] | None] | None = None,
) -> MainWindow:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    theme.apply(app)
    window = MainWindow(
        engine,
        device=device,
        program=program,
        confirm=confirm or (lambda _t, _x: True),
        screening=screening,
        onset=lambda _program: 30,
    )
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    if device:
        qtbot.waitUntil(
            lambda: window.device is not None and window.link_state == "connected", timeout=5000
        )
    return window


@pytest.fixture
def window(qtbot: QtBot, engine: Engine) -> MainWindow:
    return open_window(qtbot, engine)


@pytest.fixture
def flat_window(qtbot: QtBot, engine: Engine, flat_program: Path) -> MainWindow:
    return open_window(qtbot, engine, program=str(flat_program))


def on_io(engine: Engine, fn: Callable[[], T]) -> T:
    """Run ``fn`` on the IO thread (where the simulator lives) and return its result."""
    return engine.io.call(fn)


def link_of(window: MainWindow) -> SimulatorLink:
    assert window.device is not None
    link = window.device.transport
    assert isinstance(link, SimulatorLink)
    return link


def strength(engine: Engine, window: MainWindow, channel: str = "A") -> Any:
    assert window.device is not None
    sim = window.device.simulator
    return on_io(engine, lambda: sim.strength_du(channel))
