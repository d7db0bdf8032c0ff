"""``acustim run``: one session on a device or simulator, with a live status line.

Ctrl-C (or SIGTERM) puts zero output on the wire at once. Exit codes: see ``_common``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from acustim import __version__
from acustim.commands._common import EXIT_FAULT, EXIT_OK, Terminated, UsageError
from acustim.commands.screening import ask, load_answers
from acustim.engine import Device, Engine, Session, load_program
from acustim.gate import recorded_answers, screening_needed
from acustim.records import validate_patient_code
from acustim.runner import SessionStatus
from firmware_bridge.streamer import StreamResult
from safety.guard import VettedFrame
from waveforms.program import Program


def _channel_values(pairs: Sequence[str], what: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value.strip().lstrip("-").isdigit():
            raise UsageError(f"--{what} {pair!r}: write CHANNEL=WHOLE_NUMBER, e.g. --{what} A=20")
        if name in out:
            raise UsageError(f"--{what} {name} given twice")
        out[name] = int(value)
    return out


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def status_line(status: SessionStatus) -> str:
    """One line: time, segment, level per channel, lateness, battery."""
    if status.state == "connecting":
        return "connecting: writing the device's limits and zero output"
    segment = " / ".join(dict.fromkeys(c.segment for c in status.channels)) or status.state
    levels = "  ".join(f"{c.name} {c.level_du:>3}/{c.target_du} du" for c in status.channels)
    battery = "" if status.battery_percent is None else f"  battery {status.battery_percent}%"
    state = "" if status.state == "running" else f"  [{status.state}]"
    return (
        f"[{_clock(status.elapsed_s)}/{_clock(status.total_s)}] {segment:<22} {levels}"
        f"  late {status.lateness_ms:.1f} ms (p99 {status.lateness_p99_ms:.1f}){battery}{state}"
    )


def _trace_writer(stream: TextIO) -> Callable[[int, VettedFrame], None]:
    """``--trace``: one JSON line per frame written to the device."""

    def write(index: int, frame: VettedFrame) -> None:
        line = {
            "i": index,
            "t": round(frame.t_s, 6),
            "zero": frame.zero,
            "channels": {
                c.name: {"level_du": c.level_du, "hz": c.frequency_hz, "intensity": c.intensity}
                for c in frame.channels
            },
        }
        stream.write(json.dumps(line) + "\n")
        stream.flush()

    return write


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    program = load_program(args.program)
    levels = _channel_values(args.level, "level")
    ceilings = _channel_values(args.ceiling, "ceiling") or None
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration {args.duration:g}: must be > 0 seconds")
    records: Path | bool = Path(args.store) if args.store else not args.no_record

    with contextlib.ExitStack() as stack:
        trace = None
        if args.trace:
            stream = (
                sys.stdout
                if args.trace == "-"
                else stack.enter_context(open(args.trace, "w", encoding="utf-8"))
            )
            trace = _trace_writer(stream)
        engine = stack.enter_context(Engine(virtual_time=args.virtual_time, records=records))
        return _run_session(engine, program, levels, ceilings, trace, args, out, err)


def _run_session(
    engine: Engine,
    program: Program,
    levels: dict[str, int],
    ceilings: dict[str, int] | None,
    trace: Callable[[int, VettedFrame], None] | None,
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
) -> int:
    device = engine.connect(args.device)
    profile = device.profile
    answers: dict[str, bool] | None = None
    acknowledged: list[str] = []
    if args.screening:
        answers, acknowledged = load_answers(args.screening)
    elif sys.stdin.isatty() and needs_screening(device, args.patient, engine):
        answers, acknowledged = ask(out, input)

    def notice(kind: str, message: str) -> None:
        if kind in ("level", "start", "end"):
            return
        print(f"  ! {message}", file=err, flush=True)

    session = device.start(
        program,
        levels=levels,
        ceilings=ceilings,
        duration_s=args.duration,
        rise_fraction_per_s=args.ramp,
        electrode_area_cm2=args.area,
        patient=args.patient,
        notes=args.notes,
        screening=answers,
        acknowledged=acknowledged,
        onset_days=args.onset_days,
        on_notice=notice,
        on_frame=trace,
    )
    limits = session.runner.limits
    print(
        f"acustim {__version__}: {program.name} ({program.title}) on {args.device} "
        f"({profile.name}, {'calibrated' if profile.calibrated else 'uncalibrated'})",
        file=out,
    )
    unit = profile.level_unit
    ceil = " ".join(f"{c.name}<={c.ceiling_du}" for c in limits.channels)
    lv = " ".join(f"{k}={v}" for k, v in levels.items()) or "none (all channels at 0)"
    print(
        f"  levels {lv} {unit}; ceilings {ceil} {unit}; "
        f"soft start {limits.rise_du_per_s:g} {unit}/s; "
        f"length {_clock(session.status().total_s)}",
        file=out,
    )
    if not profile.stops_when_host_silent:
        print(
            f"  WARNING: {profile.name} keeps stimulating if this computer stops; "
            "stop it on the device itself if the app fails",
            file=err,
        )
    if not profile.pulse_width_controlled:
        print(
            f"  note: {profile.name} sets pulse width itself; program pulse widths "
            "are not delivered",
            file=out,
        )
    print("  Ctrl-C stops output at once.", file=out, flush=True)
    result = _watch(session, out, args)
    return _report(result, session, engine, out, err)


def _watch(session: Session, out: TextIO, args: argparse.Namespace) -> StreamResult:
    tty = out.isatty()
    interval = 0.5 if tty else args.status_every
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        next_line = time.monotonic()
        while True:
            try:
                return session.wait(timeout_s=0.1)
            except TimeoutError:
                pass
            if not args.quiet and time.monotonic() >= next_line:
                next_line += interval
                line = status_line(session.status())
                print(("\r" + line) if tty else line, end="" if tty else "\n", file=out, flush=True)
    except (KeyboardInterrupt, Terminated) as exc:
        session.stop("interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else "terminated")
        session.wait(timeout_s=5.0)
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if tty:
            print(file=out)


def _report(
    result: StreamResult, session: Session, engine: Engine, out: TextIO, err: TextIO
) -> int:
    status = session.status()
    lateness = f"lateness p99 {status.lateness_p99_ms:.1f} ms"
    where = ""
    if engine.store is not None and session.session_id is not None:
        where = f"; recorded as session {session.session_id} in {engine.store.path}"
    line = (
        f"{result.outcome}: {result.reason}. {status.frames_sent} frames, "
        f"{status.frames_skipped} skipped, {lateness}{where}"
    )
    if result.outcome == "completed":
        print(line, file=out)
        return EXIT_OK
    print(line, file=err)
    return EXIT_FAULT


def needs_screening(device: Device, patient: str | None, engine: Engine) -> bool:
    """No answers given: would the session need them (and are none on record)?"""
    if not screening_needed(simulated=device.simulator is not None, patient=patient):
        return False
    code = validate_patient_code(patient) if patient is not None else None
    return recorded_answers(engine.store, code) is None


def register(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run a program on a device",
        description="Run a program: output starts at zero and rises at the soft-start rate to "
        "the levels you give; Ctrl-C stops output at once.",
        epilog="example: acustim run tmj-jaw-pain-left --device sim:coyote3 --level A=20 "
        "--level B=15 --duration 60",
    )
    run.add_argument("program", help="a built-in program name (see 'acustim programs') or a file")
    run.add_argument(
        "--device",
        default="sim:coyote3",
        help="sim:<device> or <device>@<port or address> (default: sim:coyote3)",
    )
    run.add_argument(
        "--level",
        action="append",
        default=[],
        metavar="CH=DU",
        help="treatment level per channel in device units, e.g. --level A=20 (default 0)",
    )
    run.add_argument(
        "--ceiling",
        action="append",
        default=[],
        metavar="CH=DU",
        help="lower a channel's ceiling for this session, e.g. --ceiling A=40",
    )
    run.add_argument("--duration", type=float, metavar="S", help="session length in seconds")
    run.add_argument(
        "--ramp",
        type=float,
        metavar="FRACTION",
        help="soft-start rate as a fraction of full scale per second (may only be lowered)",
    )
    run.add_argument("--area", type=float, metavar="CM2", help="electrode area in cm^2")
    run.add_argument(
        "--patient",
        metavar="CODE",
        help="pseudonymous patient code for the record (letters, digits, - and _; no names)",
    )
    run.add_argument(
        "--notes", default="", metavar="TEXT", help="practitioner notes for the record"
    )
    run.add_argument(
        "--screening",
        metavar="FILE",
        help="the patient's screening answers (template: 'acustim screening'); needed before "
        "the first run for a patient and for every run on a real device without a patient code",
    )
    run.add_argument(
        "--onset-days",
        type=int,
        metavar="DAYS",
        help="days since the onset of Bell's palsy (the Bell's palsy programs need it)",
    )
    run.add_argument(
        "--virtual-time",
        action="store_true",
        help="simulators only: run on virtual time (a 20-minute session takes seconds)",
    )
    run.add_argument("--store", metavar="PATH", help="records database (default: user data dir)")
    run.add_argument("--no-record", action="store_true", help="do not write a session record")
    run.add_argument("--quiet", action="store_true", help="no status lines")
    run.add_argument(
        "--trace",
        metavar="FILE",
        help="write every frame sent to the device as a JSON line to FILE ('-' for stdout)",
    )
    run.add_argument(
        "--status-every",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between status lines when output is not a terminal (default 5)",
    )
    run.set_defaults(func=cmd_run)
