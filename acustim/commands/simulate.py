"""``acustim simulate DEVICE --pty``: serve a device simulator on a pseudo-terminal.

The first line of stdout is the port's path; any program can open it as the real device
(``acustim run PROGRAM --device et312@/dev/pts/5``). What the simulated device delivers is
printed to stderr every few seconds. Serves until interrupted or terminated (exit 0).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from acustim.commands._common import EXIT_OK, UsageError, seconds_in

# The device and simulator stacks are imported by ``cmd_simulate``, not with the parser:
# ``acustim --help`` starts fast. ``PtyHost`` and ``ByteDevice`` stay attributes of this
# module (loaded on first use, PEP 562), so a test can still replace ``PtyHost`` here.
if TYPE_CHECKING:
    from simulators.hosting.pty import ByteDevice as ByteDevice
    from simulators.hosting.pty import PtyHost as PtyHost
else:

    def __getattr__(name: str) -> object:
        if name not in ("ByteDevice", "PtyHost"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module("simulators.hosting.pty"), name)
        globals()[name] = value
        return value


def describe(simulator: Any, t_s: float) -> str:
    """What the device delivers now, per channel, from its record."""
    record = simulator.record
    parts = []
    for channel in sorted({iv.channel for iv in record.intervals()}):
        iv = record.interval_at(channel, t_s)
        if iv is None or iv.output_du <= 0:
            parts.append(f"{channel}: off")
        else:
            width = "" if iv.pulse_width_us is None else f" {iv.pulse_width_us:g} us"
            parts.append(
                f"{channel}: {iv.strength_du} du x {iv.intensity_pct:.0f}% "
                f"{iv.frequency_hz:.1f} Hz{width}"
            )
    return "  ".join(parts) or "no output yet"


def cmd_simulate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from acustim.commands.simulate import PtyHost  # this module's (see above)
    from device_profiles.profile import load_profile
    from firmware_bridge.link import BYTE_STREAM_SIMULATORS, simulator_factory
    from simulators.clock import WallClock

    profile = load_profile(args.device)
    if profile.simulator is None:
        raise UsageError(f"{profile.id} has no simulator")
    if profile.simulator not in BYTE_STREAM_SIMULATORS:
        raise UsageError(
            f"{profile.id} is a BLE device: its simulator runs in-process "
            f"(acustim run PROGRAM --device sim:{profile.id}); --pty serves serial devices: "
            f"{', '.join(sorted(BYTE_STREAM_SIMULATORS))}"
        )
    if not args.pty:
        raise UsageError("say where to serve the simulator: --pty")
    clock = WallClock()
    simulator: ByteDevice = simulator_factory(profile.simulator)(clock)  # type: ignore[assignment]
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _stop)
    host = PtyHost(simulator, clock.now_s).start()
    try:
        print(host.path, file=out, flush=True)
        print(
            f"serving the {profile.name} simulator on {host.path}; "
            f"connect with --device {profile.id}@{host.path}; Ctrl-C to stop",
            file=err,
            flush=True,
        )
        while not stop.wait(args.status_every):
            line = host.call(lambda: describe(simulator, clock.now_s()))
            print(f"[{profile.id}] {line}", file=err, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        host.stop()
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def register(sub: Any) -> None:
    simulate = sub.add_parser(
        "simulate",
        help="serve a device simulator on a pty",
        description="Serve a serial device's simulator on a pseudo-terminal. The first line of "
        "output is the port path; open it like the real device.",
        epilog="example: acustim simulate et312 --pty",
    )
    simulate.add_argument("device", help="a serial device with a simulator, e.g. et312, pulsepal")
    simulate.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    simulate.add_argument(
        "--status-every",
        type=seconds_in(0.1, 3600.0, "--status-every"),
        default=5.0,
        metavar="S",
        help="seconds between lines about what the device delivers (default 5)",
    )
    simulate.set_defaults(func=cmd_simulate)
