"""``acustim calibrate DEVICE``: measure a device's output into a load resistor and store it.

Connect a 500 ohm resistor across every output and a scope (``--meter peak``) or a true-rms
meter (``--meter rms``). The command runs the built-in load program, steps each channel up
through a few levels (never above ``--cap-du``), holds each level and asks for the reading, then
a verification reading; it fits the guard's model and stores it for this very device
(``acustim.calibration``). ``--show`` prints the stored calibration. Ctrl-C stops output at
once. Exit codes: see ``_common``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from acustim import __version__
from acustim.commands._common import EXIT_OK, UsageError, shown, whole_number

if TYPE_CHECKING:
    from acustim.calibration import CalibrationRecord, Step
    from acustim.engine import Device
    from acustim.prestart import StartPlan

#: the longest a reading may be typed with
MAX_READING_CHARS = 20


def _levels(text: str | None) -> list[int] | None:
    if text is None:
        return None
    out: list[int] = []
    for part in text.split(","):
        number = whole_number(part.strip())
        if number is None:
            raise UsageError(
                f"--levels {shown(text)}: write whole numbers of device units separated by "
                "commas, e.g. --levels 10,20,30,40; allowed at least 3 increasing levels"
            )
        out.append(number)
    return out


def _check_options(args: argparse.Namespace) -> None:
    from acustim.device_address import check_device_spec

    simulated = args.device.startswith("sim:")
    if args.virtual_time and not simulated:
        raise UsageError(
            f"--virtual-time with {shown(args.device)}: virtual time is for simulators only; "
            "allowed sim:<device>"
        )
    if args.virtual_meter and not simulated:
        raise UsageError(
            f"--virtual-meter with {shown(args.device)}: only a simulator has a virtual meter; "
            "allowed sim:<device> (a real device needs a real meter)"
        )
    if args.virtual_time and not args.virtual_meter:
        raise UsageError(
            "--virtual-time needs --virtual-meter: on virtual time nobody can type a reading "
            "before the run is over"
        )
    if not args.show and args.by is None:
        raise UsageError("--by NAME: who measured is required (it is stored with the calibration)")
    for name in ("load_ohm", "frequency", "pulse_width"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise UsageError(f"--{name.replace('_', '-')} {value}: allowed a finite number")
    args.levels = _levels(args.levels)
    check_device_spec(args.device)


def describe(record: CalibrationRecord, unit: str) -> list[str]:
    """The lines that say what a stored calibration is."""
    lines = [
        f"calibrated on {record.day} by {record.by}: {record.peak_ma_per_du:.5g} mA peak per "
        f"{unit} into {record.load_ohm:g} ohm ({record.meter} meter, {record.frequency_hz:g} Hz, "
        f"{record.pulse_width_us:g} us); expires {record.expires().date().isoformat()}",
    ]
    for c in record.channels:
        knob = "" if c.knob is None else f", knob {c.knob}/255"
        lines.append(
            f"  {c.channel}: {c.peak_ma_per_du:.5g} mA/{unit}, worst reading "
            f"{c.worst_residual:.1%} off the fit, verification {c.verify_residual:.1%} off{knob}"
        )
    lines += [f"  note: {n}" for n in record.notes]
    lines.append(f"  file: {record.source}")
    return lines


def cmd_calibrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from acustim.engine import Engine

    _check_options(args)  # before anything opens
    records: Path | bool = Path(args.store) if args.store else not args.no_record
    with Engine(virtual_time=args.virtual_time, records=records) as engine:
        device = engine.connect(args.device)
        if args.show:
            return _show(device, out)
        return _calibrate(device, args, out, err)


def _show(device: Device, out: TextIO) -> int:
    from acustim.calibration import device_key

    unit = device.profile.level_unit
    print(f"{device.spec} ({device.profile.name}), device key {device_key(device)}", file=out)
    if device.calibration is not None:
        for line in describe(device.calibration, unit):
            print(f"  {line}", file=out)
    else:
        print(
            f"  not calibrated{f': {device.calibration_note}' if device.calibration_note else ''}",
            file=out,
        )
        base = device.profile.limits.calibration
        if base is not None:
            print(
                f"  the profile's own figure applies: {base.peak_ma_per_du:g} mA peak per {unit} "
                f"into {base.load_ohm:g} ohm (nominal, not measured)",
                file=out,
            )
    return EXIT_OK


def _reading(channel: str, level: int, unit: str, kind: str, out: TextIO) -> float:
    """One reading typed on standard input; anything but a number is one line (exit 2)."""
    print(
        f"  {channel} holds {level} {unit}. Measured {kind} current in mA: ",
        end="",
        file=out,
        flush=True,
    )
    line = sys.stdin.readline()
    if line == "":
        raise UsageError(
            f"reading at {channel} = {level} {unit}: no input (end of file); allowed a current in "
            "mA, e.g. 12.5"
        )
    text = line.strip()
    try:
        value = float(text) if 0 < len(text) <= MAX_READING_CHARS else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(
            f"reading at {channel} = {level} {unit}: {shown(text)} is not a number; allowed a "
            "current in mA > 0, e.g. 12.5 (the run stopped at zero; nothing stored)"
        )
    return value


def _calibrate(device: Device, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from acustim.calibration import (
        DEFAULT_FREQUENCY_HZ,
        FIT_TOLERANCE,
        calibrate,
        device_key,
        virtual_meter,
    )

    profile = device.profile
    unit = profile.level_unit
    key = device_key(device)
    print(
        f"acustim {__version__} calibrate: {device.spec} ({profile.name}); device key {key}",
        file=out,
    )
    print(
        f"  a {args.meter} meter on a {args.load_ohm:g} ohm load across each output "
        f"({', '.join(profile.channels)}); every reading within {FIT_TOLERANCE:.0%} of the fit",
        file=out,
    )
    if device.calibration is not None:
        print(f"  replaces: {describe(device.calibration, unit)[0]}", file=out)
    elif device.calibration_note:
        print(f"  ! {device.calibration_note}", file=err)
    if not args.no_person_connected:
        if not sys.stdin.isatty():
            raise UsageError(
                "confirm that no person is connected: --no-person-connected (or run on a "
                "terminal, which asks); a calibration runs into load resistors only"
            )
        print(
            "  Is NO person connected to the device (load resistors only)? [yes/no] ",
            end="",
            file=out,
            flush=True,
        )
        if sys.stdin.readline().strip().lower() != "yes":
            raise UsageError("not confirmed that no person is connected; nothing was sent")

    def plan(p: StartPlan) -> None:
        for item in p.items:
            print(f"  {'WARNING' if item.confirm else 'note'}: {item.text}", file=err, flush=True)
        print("  Ctrl-C stops output at once.", file=out, flush=True)

    def step(s: Step) -> None:
        if s.what == "verify":
            print(f"  {s.channel}: verification at {s.level_du} {unit}", file=out, flush=True)

    read: Callable[[int, str], float]
    if args.virtual_meter:
        meter = virtual_meter(device, args.meter, args.load_ohm)

        def read(level: int, channel: str) -> float:
            value = meter(level, channel)
            print(
                f"  {channel} holds {level} {unit}: virtual meter {value:.4g} mA {args.meter}",
                file=out,
                flush=True,
            )
            return value
    else:

        def read(level: int, channel: str) -> float:
            return _reading(channel, level, unit, args.meter, out)

    record = calibrate(
        device,
        args.levels,
        read=read,
        by=args.by,
        no_person_connected=True,
        meter=args.meter,
        load_ohm=args.load_ohm,
        cap_du=args.cap_du,
        frequency_hz=args.frequency if args.frequency is not None else DEFAULT_FREQUENCY_HZ,
        pulse_width_us=args.pulse_width,
        on_step=step,
        on_plan=plan,
    )
    print("stored: " + "\n".join(describe(record, unit)), file=out)
    print(
        f"  from now on sessions on {key} run with rms current and current-density caps "
        "from this figure; the record and the report say so",
        file=out,
    )
    return EXIT_OK


def register(sub: Any) -> None:
    cal = sub.add_parser(
        "calibrate",
        help="measure a device's output in mA into a load resistor",
        description="Calibrate a device into a load resistor (no person connected): the output "
        "steps through a few levels, never above --cap-du; type the measured current at each; "
        "the fit is stored for this device and applied to its later sessions. Ctrl-C stops "
        "output at once.",
        epilog="example: acustim calibrate pulsepal@/dev/ttyACM0 --by 'J. Smith' --meter peak",
    )
    cal.add_argument("device", help="sim:<device> or <device>@<port or address>")
    cal.add_argument("--by", metavar="NAME", help="who measured (required; stored)")
    cal.add_argument(
        "--meter",
        choices=("peak", "rms"),
        default="peak",
        help="peak (a scope) or rms (a true-rms meter); default peak",
    )
    cal.add_argument(
        "--load-ohm",
        type=float,
        default=500.0,
        metavar="OHM",
        help="the load resistor (default 500; at most 500)",
    )
    cal.add_argument(
        "--cap-du",
        type=int,
        metavar="DU",
        help="the highest level of the run (default 25%% of full scale)",
    )
    cal.add_argument("--levels", metavar="L1,L2,...", help="the levels (default 4 up to the cap)")
    cal.add_argument("--frequency", type=float, metavar="HZ", help="pulse rate (default 50)")
    cal.add_argument(
        "--pulse-width", type=float, metavar="US", help="phase width (default 200, in range)"
    )
    cal.add_argument(
        "--no-person-connected",
        action="store_true",
        help="confirm that only load resistors are connected (else a terminal asks)",
    )
    cal.add_argument(
        "--virtual-meter", action="store_true", help="simulators only: read the virtual meter"
    )
    cal.add_argument(
        "--virtual-time", action="store_true", help="simulators only (needs --virtual-meter)"
    )
    cal.add_argument("--show", action="store_true", help="print the stored calibration only")
    cal.add_argument("--store", metavar="PATH", help="records database (default: user data dir)")
    cal.add_argument("--no-record", action="store_true", help="do not record the load test")
    cal.set_defaults(func=cmd_calibrate)
