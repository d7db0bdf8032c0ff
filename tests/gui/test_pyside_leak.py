"""Guard against the PySide6 6.12.0 bug on CPython 3.11 (../shared/reference/platform.md §0):
it dropped one reference to None/True/False per call and crashed long-running GUIs."""

from __future__ import annotations

import sys

import PySide6
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication


class _Emitter(QObject):
    value = Signal(float)
    flag = Signal(bool)


def test_pyside_version_is_pinned_below_612() -> None:
    major, minor = (int(x) for x in PySide6.__version__.split(".")[:2])
    assert (major, minor) < (6, 12), f"PySide6 {PySide6.__version__}: see platform.md section 0"


def test_no_refcount_leak_on_singletons(qapp: QApplication) -> None:
    emitter = _Emitter()
    got: list[object] = []
    emitter.value.connect(got.append)
    emitter.flag.connect(got.append)
    before = (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))
    for _ in range(1000):
        qapp.processEvents()
        emitter.value.emit(1.0)
        emitter.flag.emit(True)
        emitter.flag.emit(False)
    got.clear()
    after = (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))
    for b, a in zip(before, after, strict=True):
        assert abs(a - b) < 50, (before, after)
