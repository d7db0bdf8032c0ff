"""Starting the app: the QApplication, the house style, the window, and the safety nets.

Safety nets: an uncaught exception anywhere in the GUI (``sys.excepthook``) and SIGINT/SIGTERM
stop output first (``Session.stop``) and then close the engine. Nothing here talks to a
device directly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from acustim.engine import Engine
from gui import theme
from gui.platform_check import missing_xcb_packages, xcb_hint
from gui.window import MainWindow

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


def create_app(argv: Sequence[str] | None = None) -> QApplication:
    """The one QApplication (made if needed), styled."""
    existing = QApplication.instance()
    app = (
        existing if isinstance(existing, QApplication) else QApplication(list(argv or ["acustim"]))
    )
    app.setApplicationName("acustim")
    app.setApplicationDisplayName("acustim")
    theme.apply(app)
    return app


def install_excepthook(window: MainWindow) -> Callable[[], None]:
    """Make any uncaught exception stop output and close the engine before it is reported.
    Returns a function that puts the previous hook back."""
    previous: ExceptHook = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        try:
            window.emergency_shutdown(f"{exc_type.__name__}: {exc}")
        except BaseException:  # never let the safety net itself hide the first error
            traceback.print_exc()
        finally:
            previous(exc_type, exc, tb)

    sys.excepthook = hook

    def restore() -> None:
        if sys.excepthook is hook:
            sys.excepthook = previous

    return restore


def install_signal_handlers(window: MainWindow) -> Callable[[], None]:
    """SIGINT (Ctrl-C in the terminal) and SIGTERM close the window: output stops first.
    A timer wakes the interpreter so Python's signal handlers run under Qt's event loop."""
    handlers = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        window.close()

    for signum in (signal.SIGINT, signal.SIGTERM):
        handlers[signum] = signal.signal(signum, on_signal)
    wake = QTimer(window)
    wake.setInterval(200)
    wake.timeout.connect(lambda: None)
    wake.start()

    def restore() -> None:
        wake.stop()
        for signum, old in handlers.items():
            signal.signal(signum, old)

    return restore


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gui",
        description="acustim: the practitioner's window (live plots, channel control, STOP).",
    )
    parser.add_argument(
        "--device",
        default="sim:coyote3",
        help="device to connect on start: sim:<device> or <device>@<port or address> "
        "(default: sim:coyote3)",
    )
    parser.add_argument("--no-connect", action="store_true", help="do not connect on start")
    parser.add_argument(
        "--program", help="program to show first: a built-in name or a program file (.toml)"
    )
    parser.add_argument("--store", metavar="PATH", help="records database (default: user data)")
    parser.add_argument("--no-record", action="store_true", help="do not record sessions")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = missing_xcb_packages()
    if missing:
        print(xcb_hint(missing), file=sys.stderr)
        return 2
    app = create_app([sys.argv[0]])
    records: Path | bool = Path(args.store) if args.store else not args.no_record
    engine = Engine(virtual_time=False, records=records)
    window = MainWindow(
        engine, device=None if args.no_connect else args.device, program=args.program
    )
    restore_hook = install_excepthook(window)
    restore_signals = install_signal_handlers(window)
    window.show()
    try:
        code = app.exec()
    finally:
        window.shutdown("application closed")
        restore_signals()
        restore_hook()
    return int(code)
