"""Test-wide set-up. Qt must run offscreen, set before anything imports Qt."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import pytest


@pytest.fixture(autouse=True)
def _records_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test writes session records into the real user data directory."""
    monkeypatch.setenv("ACUSTIM_DATA_DIR", str(tmp_path_factory.mktemp("acustim-data")))


# --- the leak check ------------------------------------------------------------------------
#
# As pymodbus does in its test suite: every test must leave behind no thread, no open file
# descriptor and no pending asyncio task that it started. Before the test we note what is
# alive; after it we give what it started a short grace period to finish (threads join, a
# closing port lets go of its fd), then fail the test with the names of whatever is left.
# A test that leaks on purpose says so with ``@pytest.mark.leaks_allowed("why")``.

import asyncio  # noqa: E402 - after the Qt platform is chosen, with the other imports below
import gc  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import weakref  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

LEAK_GRACE_S = 2.0
_FD_DIR = "/proc/self/fd"

#: Long-lived threads some library starts once, on first use, and keeps for the session; a
#: test that happens to be the first user must not be blamed. Each is allowed by name, with
#: why. (None so far: the records writer and the IO thread are joined on close, and pytest,
#: pytest-qt and hypothesis start no thread of their own in this suite.)
_SESSION_THREAD_PREFIXES: dict[str, str] = {}

#: The one Qt application of the process (pytest-qt's session ``qapp``, or the one
#: ``acustim report`` makes for its PDF) lives until the process ends, and Qt opens its event
#: dispatcher's eventfds (its wake-up fd and the glib context's) lazily, on first use, and
#: keeps them for that long. In the full suite's order they appear in more than one test (the
#: cause is not yet pinned down: per-thread dispatchers?), so new fds of this one kind are
#: allowed in any test that runs while a Qt application exists. Nothing else is.
_QT_APPLICATION_FDS = ("anon_inode:[eventfd]",)


def _qt_application_exists() -> bool:
    qtcore = sys.modules.get("PySide6.QtCore")
    return qtcore is not None and qtcore.QCoreApplication.instance() is not None


def _open_fds() -> dict[int, str]:
    found: dict[int, str] = {}
    try:
        names = os.listdir(_FD_DIR)
    except OSError:  # no /proc (not Linux): no fd check
        return found
    for name in names:
        try:
            found[int(name)] = os.readlink(f"{_FD_DIR}/{name}")
        except (OSError, ValueError):
            continue  # the fd listdir itself used, already closed
    return found


def _session_thread(thread: threading.Thread) -> bool:
    return any(thread.name.startswith(prefix) for prefix in _SESSION_THREAD_PREFIXES)


class _LoopWatch:
    """Every event loop made during one test (weakly), and every task made on one (strongly,
    until the test ends: a pending task nobody holds would be collected, with only a log line,
    before we could see it), to look for tasks left pending."""

    def __init__(self) -> None:
        self.loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self.tasks: list[asyncio.Task[object]] = []
        self._init = asyncio.BaseEventLoop.__init__

    def __enter__(self) -> _LoopWatch:
        watch, original = self, self._init

        def factory(
            loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
        ) -> asyncio.Task[object]:
            task: asyncio.Task[object] = asyncio.Task(coro, loop=loop, **kwargs)
            watch.tasks.append(task)
            return task

        def init(loop: asyncio.BaseEventLoop, *args: object, **kwargs: object) -> None:
            original(loop, *args, **kwargs)
            watch.loops.add(loop)
            loop.set_task_factory(factory)

        asyncio.BaseEventLoop.__init__ = init  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.BaseEventLoop.__init__ = self._init  # type: ignore[method-assign]

    def pending(self) -> list[str]:
        left: list[str] = []
        for task in self.tasks:
            if not task.done():
                state = "a closed" if task.get_loop().is_closed() else "an open"
                left.append(f"task {task.get_name()} {task.get_coro()!r} on {state} loop")
        return left


def _leaks(
    threads_before: set[threading.Thread],
    fds_before: dict[int, str],
    watch: _LoopWatch,
    allowed_fds: tuple[str, ...],
) -> list[str]:
    deadline = time.monotonic() + LEAK_GRACE_S
    collected = False
    while True:
        threads = [
            t
            for t in threading.enumerate()
            if t not in threads_before and t.is_alive() and not _session_thread(t)
        ]
        fds_now = _open_fds()
        fds = {
            fd: target
            for fd, target in fds_now.items()
            if fds_before.get(fd) != target and target not in allowed_fds
        }
        tasks = watch.pending()
        if not (threads or fds or tasks):
            return []
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if threads:
            threads[0].join(timeout=min(0.05, left))
        else:
            if not collected:  # an object nobody holds may still own an fd until collected
                gc.collect()
                collected = True
                continue
            time.sleep(min(0.05, left))
    return (
        [f"thread {t.name!r} ({'daemon' if t.daemon else 'non-daemon'})" for t in threads]
        + [f"fd {fd} -> {target}" for fd, target in sorted(fds.items())]
        + tasks
    )


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves threads, file descriptors or pending asyncio tasks behind."""
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    with _LoopWatch() as watch:
        yield
    marker = request.node.get_closest_marker("leaks_allowed")
    if marker is not None:
        return
    allowed_fds = _QT_APPLICATION_FDS if _qt_application_exists() else ()
    leaked = _leaks(threads_before, fds_before, watch, allowed_fds)
    if leaked:
        pytest.fail("the test leaked:\n  " + "\n  ".join(leaked), pytrace=False)
