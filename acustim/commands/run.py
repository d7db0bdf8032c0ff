"""``acustim run``: one session on a device or simulator, with a live status line.

Ctrl-C (or SIGTERM) puts zero output on the wire at once. Exit codes: see ``_common``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO, cast

from acustim import __version__
from acustim.commands._common import (
    EXIT_FAULT,
    EXIT_OK,
    MAX_NUMBER_DIGITS,
    Terminated,
    UsageError,
    seconds_in,
    shown,
    silence_broken_stdout,
    whole_number,
)
from acustim.commands.course import check_run_course
from acustim.commands.library import check_program
from acustim.commands.screening import ask, load_answers

# The engine, device, safety and waveform stacks (numpy among them) are imported in the
# functions that use them, not with the parser: ``acustim --help`` starts fast.
if TYPE_CHECKING:
    from acustim.engine import Engine, Session
    from acustim.events import SessionEvent
    from acustim.prestart import PlanItem, StartPlan
    from acustim.runner import SessionStatus
    from firmware_bridge.streamer import StreamResult
    from safety.guard import VettedFrame
    from safety.placement import PlacementError
    from waveforms.program import Program

#: ``--status-every``: seconds between status lines when output is not a terminal.
STATUS_EVERY_S = (0.1, 3600.0)
#: ``--onset-days``: days since the onset of Bell's palsy (a century at most).
MAX_ONSET_DAYS = 36500


def _channel_values(pairs: Sequence[str], what: str) -> dict[str, int]:
    """``--level A=20`` pairs: a channel name, ``=``, then 1..6 ASCII digits; nothing else
    (no sign, no spaces, no ``²``, no 5000-digit numbers that ``int()`` refuses)."""
    from waveforms.files import CHANNEL_NAME_PATTERN

    out: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        number = whole_number(value)
        if not sep or not CHANNEL_NAME_PATTERN.fullmatch(name) or number is None:
            raise UsageError(
                f"--{what} {shown(pair)}: write CHANNEL=WHOLE_NUMBER, e.g. --{what} A=20; "
                f"allowed a channel name (1..8 letters, digits, - or _) and 0 or a whole "
                f"number of at most {MAX_NUMBER_DIGITS} digits (device units)"
            )
        if name in out:
            raise UsageError(f"--{what} {name} given twice")
        out[name] = number
    return out


def _check_options(args: argparse.Namespace) -> None:
    """The options that need no program and no device: refused before anything opens."""
    from acustim.device_address import check_device_spec
    from waveforms.files import ELECTRODE_AREA_CM2

    if args.duration is not None and args.duration <= 0:  # NaN and inf: the limits say
        raise UsageError(f"--duration {args.duration:g}: must be > 0 seconds")
    if args.area is not None and args.area not in ELECTRODE_AREA_CM2:
        # the same bound as a program file's electrode_area_cm2
        raise UsageError(
            f"--area {args.area:g}: electrode area is out of range; allowed "
            f"{ELECTRODE_AREA_CM2} (the area of one electrode)"
        )
    if args.onset_days is not None:
        days = whole_number(args.onset_days)
        if days is None or days > MAX_ONSET_DAYS:
            raise UsageError(
                f"--onset-days {shown(args.onset_days)}: days since onset is not a whole number "
                f"in range; allowed 0..{MAX_ONSET_DAYS} (0 is the day the palsy began)"
            )
        args.onset_days = days
    if args.virtual_time and not args.device.startswith("sim:"):
        raise UsageError(
            f"--virtual-time with --device {shown(args.device)}: virtual time is for simulators "
            "only; allowed sim:<device> (e.g. sim:et312), or leave out --virtual-time for a "
            "real device"
        )
    check_device_spec(args.device)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def status_line(status: SessionStatus) -> str:
    """One line: time, segment, per channel the output delivered now (level x the program's
    intensity, rounded down as the codecs do) over its target, in mA too where the device is
    calibrated; lateness, battery."""
    if status.state == "connecting":
        return "connecting: writing the device's limits and zero output"
    segment = " / ".join(dict.fromkeys(c.segment for c in status.channels)) or status.state
    levels = "  ".join(
        f"{c.name} {int(c.delivered_du):>3}/{c.target_du} du"
        + ("" if c.rms_current_ma is None else f" ({c.rms_current_ma:.2f} mA rms)")
        for c in status.channels
    )
    battery = "" if status.battery_percent is None else f"  battery {status.battery_percent}%"
    state = "" if status.state == "running" else f"  [{status.state}]"
    return (
        f"[{_clock(status.elapsed_s)}/{_clock(status.total_s)}] {segment:<22} {levels}"
        f"  late {status.lateness_ms:.1f} ms (p99 {status.lateness_p99_ms:.1f}){battery}{state}"
    )


class TraceWriter:
    """``--trace``: one JSON line per frame written to the device.

    Called on the IO thread for every frame the device took. A write that fails (a full
    disk, ``/dev/full``, a pipe whose reader quit) ends the trace, never the session: the
    writer says so once through ``notice`` and ignores every later frame."""

    def __init__(self, stream: TextIO, name: str, notice: Callable[[str], None]) -> None:
        self.stream = stream
        self.name = name
        self.notice = notice
        self.failed: str | None = None

    def __call__(self, index: int, frame: VettedFrame) -> None:
        if self.failed is not None:
            return
        try:
            line = {
                "i": index,
                "t": round(frame.t_s, 6),
                "zero": frame.zero,
                "channels": {
                    c.name: {"level_du": c.level_du, "hz": c.frequency_hz, "intensity": c.intensity}
                    for c in frame.channels
                },
            }
            self.stream.write(json.dumps(line) + "\n")
            self.stream.flush()
        except Exception as exc:  # OSError (full, pipe closed), ValueError (stream closed)
            reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or "failed"
            self.failed = reason
            silence_broken_stdout(self.stream)
            self.notice(
                f"trace stopped: writing {self.name} failed ({reason}) at frame {index}; "
                "the session goes on"
            )


def _open_trace(path: str, stack: contextlib.ExitStack) -> tuple[TextIO, str]:
    """The trace's stream, checked before anything is sent: '-' is standard output; else a
    file in an existing directory (made 0600), or a FIFO some program is reading."""
    if path == "-":
        return sys.stdout, "standard output"
    name = shown(path)
    allowed = "allowed '-' (standard output) or a writable file in an existing directory"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"--trace {name}: cannot write the trace ({reason}); {allowed}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise UsageError(f"--trace {name}: is a directory; {allowed}")
    # O_NONBLOCK: opening a FIFO nobody reads fails at once (ENXIO) instead of waiting
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if mode is None or stat.S_ISREG(mode):
        flags |= os.O_TRUNC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise UsageError(
                f"--trace {name}: is a named pipe (FIFO) that no program is reading; "
                f"start its reader first, or {allowed[len('allowed ') :]}"
            ) from None
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"--trace {name}: cannot write the trace ({reason}); {allowed}") from None
    if getattr(os, "O_NONBLOCK", 0):
        os.set_blocking(fd, True)  # the frames themselves are written as before
    stream = os.fdopen(fd, "w", encoding="utf-8")
    stack.callback(_close_quietly, stream)
    return stream, path


def _close_quietly(stream: TextIO) -> None:
    with contextlib.suppress(Exception):  # a trace that failed has said so already
        stream.close()


class _Output:
    """Standard output (or stderr) for ``acustim run``: a write that fails (the reader of
    ``acustim run ... | head`` quit) stops the output, never the session; ``on_fail`` says
    so once (on stderr)."""

    def __init__(self, stream: TextIO, on_fail: Callable[[str], None] | None = None) -> None:
        self.stream = stream
        self.on_fail = on_fail
        self.broken = False
        self._lock = threading.Lock()

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except Exception:
            return False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                with self._lock:
                    self.stream.write(text)
            except Exception as exc:
                self._fail(exc)
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                with self._lock:
                    self.stream.flush()
            except Exception as exc:
                self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.broken = True
        silence_broken_stdout(self.stream)
        if self.on_fail is not None:
            reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
            self.on_fail(reason)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from acustim.engine import Engine, load_program

    # Everything the user gave is read and checked before the store or a device is opened.
    _check_options(args)
    course = check_run_course(args)  # fills in --patient from the course
    program = load_program(args.program)
    levels = _channel_values(args.level, "level")
    ceilings = _channel_values(args.ceiling, "ceiling") or None
    screening = load_answers(args.screening) if args.screening else None
    records: Path | bool = Path(args.store) if args.store else not args.no_record

    err = cast(TextIO, _Output(err))  # a broken stderr never ends the session

    def say(message: str) -> None:
        print(f"  ! {message}", file=err, flush=True)

    def out_failed(reason: str) -> None:
        say(f"standard output failed ({reason}): no more status lines; the session goes on")

    out = cast(TextIO, _Output(out, out_failed))
    with contextlib.ExitStack() as stack:
        trace = None
        if args.trace:
            stream, name = _open_trace(args.trace, stack)
            trace = TraceWriter(stream, name, say)
        engine = stack.enter_context(Engine(virtual_time=args.virtual_time, records=records))
        if course is not None and engine.store is not None:
            engine.store.link_next_session(course)  # numbered in the commit of the session
        return _run_session(engine, program, levels, ceilings, screening, trace, args, out, err)


def _run_session(
    engine: Engine,
    program: Program,
    levels: dict[str, int],
    ceilings: dict[str, int] | None,
    screening: tuple[dict[str, bool], list[str]] | None,
    trace: Callable[[int, VettedFrame], None] | None,
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
) -> int:
    from acustim.engine import resolve_device
    from acustim.events import EventKind
    from acustim.prestart import (
        SHOWN_BEFORE_START,
        Pending,
        prepare,
        refuse_undeliverable,
    )
    from safety.placement import PlacementError

    # a program the device cannot deliver is refused before any byte goes to it
    refuse_undeliverable(program, resolve_device(args.device)[0])
    device = engine.connect(args.device)
    profile = device.profile
    answers: dict[str, bool] | None = None
    acknowledged: list[str] = []
    if screening is not None:
        answers, acknowledged = screening

    def notice(event: SessionEvent) -> None:
        if event.kind in (EventKind.LEVEL, EventKind.START, EventKind.END):
            return
        if event.kind in SHOWN_BEFORE_START:
            return  # printed from the pre-start plan, before streaming
        print(f"  ! {event.message}", file=err, flush=True)

    def inputs() -> dict[str, Any]:
        """What the plan and the session are both made from: one set, so they agree."""
        return {
            "levels": levels,
            "ceilings": ceilings,
            "duration_s": args.duration,
            "rise_fraction_per_s": args.ramp,
            "electrode_area_cm2": args.area,
            "patient": args.patient,
            "screening": answers,
            "acknowledged": acknowledged,
            "onset_days": args.onset_days,
        }

    try:
        prestart = prepare(device, program, **inputs())  # the app's plan too: refusals raise
        if prestart.pending == (Pending.SCREENING,) and sys.stdin.isatty():
            # a terminal asks the questions itself: the day-of part, or all when due
            answers, acknowledged = ask(out, input, prestart.questions)
            prestart = prepare(device, program, **inputs())
        prestart.require_answers()  # the days since onset, a screening: refused if missing
        _show_plan(prestart, program, profile.level_unit, levels, args, out, err)
        if device.simulator is None and prestart.needs_yes:
            _require_yes(prestart.needs_yes, args, out)
        session = device.start(
            program,
            **inputs(),
            notes=args.notes,
            on_notice=notice,
            on_frame=trace,
            confirmed=prestart.items,  # every one is printed below, before streaming
        )
    except PlacementError as exc:
        raise _placement_at_line(exc, program) from None
    print("  Ctrl-C stops output at once.", file=out, flush=True)
    result = _watch(session, out, args)
    return _report(result, session, engine, out, err)


def _show_plan(
    prestart: StartPlan,
    program: Program,
    unit: str,
    levels: dict[str, int],
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
) -> None:
    """The pre-start plan, printed before anything is sent: the limits, then every item."""
    from acustim.prestart import ItemKind

    limits = prestart.limits
    profile_name = prestart.device_name
    calibrated = not prestart.of_kind(ItemKind.UNCALIBRATED)
    print(
        f"acustim {__version__}: {program.name} ({program.title}) on {args.device} "
        f"({profile_name}, {'calibrated' if calibrated else 'uncalibrated'})",
        file=out,
    )
    ceil = " ".join(f"{c.name}<={c.ceiling_du}" for c in limits.channels)
    lv = " ".join(f"{k}={v}" for k, v in levels.items()) or "none (all channels at 0)"
    length = min(limits.max_session_s, prestart.program.duration_s)
    print(
        f"  levels {lv} {unit}; ceilings {ceil} {unit}; "
        f"soft start {limits.rise_du_per_s:g} {unit}/s; length {_clock(length)}",
        file=out,
    )
    for item in prestart.items:
        if item.kind is ItemKind.UNCALIBRATED:
            continue  # said in the first line
        if item.kind is ItemKind.RUNS_ON:
            print(f"  WARNING: {item.text}", file=err, flush=True)
        elif item.kind is ItemKind.DEVICE_PULSE_WIDTH:
            print(f"  note: {item.text}", file=out, flush=True)
        else:
            print(f"  ! {item.text}", file=err, flush=True)


def _require_yes(items: Sequence[PlanItem], args: argparse.Namespace, out: TextIO) -> None:
    """On a real device, what the plan warns about needs a yes before Start: ``--yes``, or
    the answer at a terminal; otherwise nothing starts (one line, exit 2)."""
    if args.yes:
        return
    what = f"{len(items)} pre-start item{'' if len(items) == 1 else 's'} above"
    if sys.stdin.isatty():
        print(f"  Start the session after reading the {what}? [y/N] ", end="", file=out)
        out.flush()
        try:
            answer = input()
        except EOFError:  # Ctrl-D at the prompt: no
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            return
        raise UsageError("not started: the pre-start items were not confirmed")
    raise UsageError(
        f"not started: the {what} need a yes: read them, then run again with --yes "
        "(or at a terminal, answer y)"
    )


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


def _placement_at_line(exc: PlacementError, program: Program) -> PlacementError:
    """A placement refusal of a program file names the file and the line of the first
    refused channel's sites, as ``acustim validate`` does."""
    from safety.placement import PlacementError

    if program.source_path is None:
        return exc
    try:
        check_program(program)
    except PlacementError as located:
        return located
    return exc


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
    run.add_argument(
        "--course",
        metavar="ID",
        help="link the session to this treatment course as its next session (see 'acustim"
        " course'); the course's patient code is used",
    )
    run.add_argument("--quiet", action="store_true", help="no status lines")
    run.add_argument(
        "--yes",
        action="store_true",
        help="on a real device: yes to the pre-start warnings printed before Start (without "
        "it, a terminal asks and a script is refused)",
    )
    run.add_argument(
        "--trace",
        metavar="FILE",
        help="write every frame sent to the device as a JSON line to FILE ('-' for stdout)",
    )
    run.add_argument(
        "--status-every",
        type=seconds_in(*STATUS_EVERY_S, "--status-every"),
        default=5.0,
        metavar="S",
        help="seconds between status lines when output is not a terminal (default 5)",
    )
    run.set_defaults(func=cmd_run)
