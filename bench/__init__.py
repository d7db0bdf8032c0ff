"""The acustim benchmarks: ``python -m bench`` (not part of the test run).

Each benchmark measures one figure of the project issue and reports it next to its target with
a ``met`` flag; none of them asserts speed, so a slow machine gives an honest report, not a
failure. ``BENCHMARKS`` maps each name to its ``run(quick)`` function, in the order they run.

- ``frame_lateness``: frames on the wire vs their deadlines, wall-clock IO thread, with and
  without a GUI-like thread holding the GIL ~60 % (target p99 <= 2 ms);
- ``estop_latency``: an emergency stop asked from another thread to the zero frame on the
  link and to zero output at the simulator (target p99 <= 5 ms);
- ``guard_throughput``: ``Guard.vet`` frames/s, uncalibrated and calibrated, and the Coyote 3
  codec (target >= 50,000 frames/s);
- ``render_speed``: program seconds rendered per CPU second (target >= 1000x real time);
- ``device_estop``: per device and hosting, an emergency stop to the zero frame on the wire and
  to zero output at the simulator (target p99 within one device frame);
- ``gui_refresh``: plot refresh with 4 channels over 30 s windows (target <= 10 ms) and stream
  lateness while the window refreshes (target p99 <= 2 ms);
- ``cli_startup``: ``acustim --help`` and ``acustim run --help`` from a fresh interpreter
  (target p50 <= 300 ms), and no numpy, bleak, serial, PySide6 or pyqtgraph imported to build
  the parser.

Never imported by the application; never writes session records.
"""

from __future__ import annotations

from collections.abc import Callable

from bench import _devices, _estop, _guard, _gui, _lateness, _render, _startup
from bench._common import BenchReport, TargetReport, machine

BenchFn = Callable[[bool], BenchReport]

BENCHMARKS: dict[str, BenchFn] = {
    _lateness.NAME: _lateness.run,
    _estop.NAME: _estop.run,
    _guard.NAME: _guard.run,
    _render.NAME: _render.run,
    _devices.NAME: _devices.run,
    _gui.NAME: _gui.run,
    _startup.NAME: _startup.run,
}

__all__ = ["BENCHMARKS", "BenchFn", "BenchReport", "TargetReport", "machine"]
