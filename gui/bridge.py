"""The bridge from other threads to the GUI thread: Qt signals, emitted anywhere, received here.

The IO thread (session notices, BLE scan results, link checks) and short-lived worker threads
(connect, disconnect) only ever *emit* these signals; the receiving slots run on the GUI
thread because the bridge lives there (queued connections). Nothing here touches a widget,
a transport or the guard.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal


class Bridge(QObject):
    """Signals that carry news from the IO and worker threads to the GUI thread."""

    #: an ``acustim.events.SessionEvent`` from a session's ``on_notice`` (IO thread)
    notice = Signal(object)
    #: (token, result, error) of work run off the GUI thread; error is an exception or None
    finished = Signal(int, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._next = 0
        self._callbacks: dict[int, Callable[[Any, BaseException | None], None]] = {}
        self.finished.connect(self._deliver)

    def run_in_thread(
        self,
        work: Callable[[], Any],
        done: Callable[[Any, BaseException | None], None],
        *,
        name: str = "acustim-gui-worker",
    ) -> threading.Thread:
        """Run ``work`` on a daemon thread (never the IO thread: it may wait for the IO
        loop), then call ``done(result, error)`` on the GUI thread."""
        token = self._register(done)

        def _run() -> None:
            try:
                result = work()
            except BaseException as exc:  # handed to the GUI thread, which reports it
                self.finished.emit(token, None, exc)
                return
            self.finished.emit(token, result, None)

        thread = threading.Thread(target=_run, name=name, daemon=True)
        thread.start()
        return thread

    def callback(
        self, done: Callable[[Any, BaseException | None], None]
    ) -> Callable[[Any, BaseException | None], None]:
        """A function any thread may call with (result, error); ``done`` runs on the GUI
        thread. Use it for a ``concurrent.futures.Future``'s done-callback."""
        token = self._register(done)

        def _emit(result: Any, error: BaseException | None) -> None:
            self.finished.emit(token, result, error)

        return _emit

    def _register(self, done: Callable[[Any, BaseException | None], None]) -> int:
        self._next += 1
        self._callbacks[self._next] = done
        return self._next

    def _deliver(self, token: int, result: object, error: object) -> None:
        done = self._callbacks.pop(token, None)
        if done is not None:
            done(result, error if isinstance(error, BaseException) else None)
