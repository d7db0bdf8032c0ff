"""Shared pieces of the benchmarks: the report shape, percentiles, machine facts, GIL load.

A benchmark measures and reports; it never asserts speed. Each report puts the measured
figures next to the targets from the project issue, with a ``met`` flag per target and for the
whole benchmark, so a slow machine gives a report that says so instead of a failure.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Literal, TypedDict

import numpy as np

Op = Literal["<=", ">="]
Condition = str | float | int | bool


class TargetReport(TypedDict):
    """One target of the project issue and how the measured figure compares with it."""

    figure: str  # the key in ``figures`` that the target is about
    op: Op
    value: float
    measured: float
    met: bool


class BenchReport(TypedDict):
    """What every benchmark returns (one entry of the JSON ``benchmarks`` object)."""

    name: str
    what: str
    figures: dict[str, float]  # numbers only; units are in the names (``_ms``, ``_per_s``)
    targets: list[TargetReport]
    met: bool  # every target met
    conditions: dict[str, Condition]  # how it was measured (frame period, load, counts ...)
    notes: list[str]


def target(figure: str, op: Op, value: float, figures: Mapping[str, float]) -> TargetReport:
    measured = float(figures[figure])
    ok = measured <= value if op == "<=" else measured >= value
    # a NaN (nothing measured) never meets a target
    return TargetReport(
        figure=figure,
        op=op,
        value=value,
        measured=measured,
        met=bool(ok and not math.isnan(measured)),
    )


def report(
    name: str,
    what: str,
    figures: dict[str, float],
    targets: Sequence[tuple[str, Op, float]],
    conditions: dict[str, Condition],
    notes: Sequence[str] = (),
) -> BenchReport:
    checked = [target(f, op, value, figures) for f, op, value in targets]
    return BenchReport(
        name=name,
        what=what,
        figures=figures,
        targets=checked,
        met=all(t["met"] for t in checked),
        conditions=conditions,
        notes=list(notes),
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (the value below which ``q`` % of the samples lie); NaN if none."""
    if not values:
        return math.nan
    data = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(data)))
    return data[min(len(data), rank) - 1]


def spread_ms(prefix: str, values_s: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max of seconds, as milliseconds under ``<prefix>p50_ms`` etc."""
    return {
        f"{prefix}p50_ms": percentile(values_s, 50) * 1000.0,
        f"{prefix}p99_ms": percentile(values_s, 99) * 1000.0,
        f"{prefix}max_ms": (max(values_s) * 1000.0) if values_s else math.nan,
    }


def machine() -> dict[str, Condition]:
    """What the figures were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "cpu_count": os.cpu_count() or 0,
        "cpus_usable": usable,
        "cpu": _cpu_name(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "switch_interval_s": sys.getswitchinterval(),
        "python_ref_loop_ms": python_ref_loop_ms(),
    }


def python_ref_loop_ms() -> float:
    """Best of 5 runs of a fixed pure-Python loop (1e6 additions), in ms: a yardstick to
    compare runs, since a shared or throttled VM can be a third slower from one hour to the
    next."""
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def load_average() -> float:
    """The 1-minute load average (other processes compete for the CPUs); NaN if unknown."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class GilLoad:
    """Holds the GIL for ``spin_s`` in pure Python, then sleeps ``sleep_s``, again and again.

    This is a GUI thread that is busy in Python code (painting, plotting) about
    ``spin_s / (spin_s + sleep_s)`` of the time. ``run_until`` runs it in the calling thread;
    ``in_background`` runs it in a thread of its own. ``duty`` is what was measured.
    """

    def __init__(self, spin_s: float = 0.006, sleep_s: float = 0.004) -> None:
        self.spin_s = spin_s
        self.sleep_s = sleep_s
        self.spun_s = 0.0
        self.total_s = 0.0

    @property
    def duty(self) -> float:
        return self.spun_s / self.total_s if self.total_s > 0 else 0.0

    def cycle(self) -> None:
        clock = time.perf_counter
        start = clock()
        end = start + self.spin_s
        n = 0
        while clock() < end:  # pure bytecode: the GIL is only given up when asked for
            n += 1
        spun = clock()
        time.sleep(self.sleep_s)
        self.spun_s += spun - start
        self.total_s += clock() - start

    def run_until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.cycle()

    def in_background(self, name: str = "bench-gil-load") -> _BackgroundLoad:
        return _BackgroundLoad(self, name)


class _BackgroundLoad:
    """``with load.in_background():`` keeps a GilLoad running in its own thread."""

    def __init__(self, load: GilLoad, name: str) -> None:
        self._load = load
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=load.run_until, args=(self._stop.is_set,), name=name, daemon=True
        )

    def __enter__(self) -> GilLoad:
        self._thread.start()
        return self._load

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
