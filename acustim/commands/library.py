"""``acustim programs``, ``acustim show`` and ``acustim validate``: the program library (built-in
and user programs) and program files.

The library also holds manual-acupuncture entries (``kind = "manual"``: a point set and why
EA is not used, never run): ``acustim programs`` lists them in their own section and
``acustim show NAME`` shows them; ``acustim run`` refuses them on one line.

A program file is checked twice: its format (``waveforms.files``) and its electrode placement
(``safety.placement``). A file that fails either gives one line, ``file:line: ...``, and is
never offered as a program. Nothing here talks to a device.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from acustim.commands._common import EXIT_OK, EXIT_USAGE
from waveforms.errors import AcustimError, ProgramError

# ``safety`` and the rest of ``waveforms`` (numpy, through the rendering) are imported in the
# functions that use them, not with the parser: ``acustim --help`` starts fast.
if TYPE_CHECKING:
    from safety.placement import PlacementReport
    from waveforms.program import Entry, ManualEntry, Program, Segment

__all__ = [
    "check_program",
    "cmd_programs",
    "cmd_show",
    "cmd_validate",
    "evidence_summary",
    "load_checked",
    "matches_indication",
    "register",
]


# --------------------------------------------------------------------------- checks


def _source_text(program: Program) -> str | None:
    if program.source_path is None:
        return None
    try:
        return Path(program.source_path).read_text(encoding="utf-8-sig")
    except OSError:
        return None


def check_program(program: Program, *, isolated_channels: bool = False) -> PlacementReport:
    """The placement check of a loaded program; raises ``PlacementError`` on one line, with
    ``file:line`` (the first refused channel's ``sites``) where the program has a file."""
    from safety.placement import PlacementError, check_placement
    from waveforms.acupoints import load_catalogue
    from waveforms.files import find_line

    report = check_placement(program, load_catalogue(), isolated_channels=isolated_channels)
    if report.ok:
        return report
    where = program.source_path or program.name
    text = _source_text(program)
    if text is not None:
        names = [c.name for c in program.channels]
        index = names.index(report.refusals[0].channel)
        where = f"{where}:{find_line(text, ('channels', index), 'sites')}"
    count = len(report.refusals)
    raise PlacementError(
        f"{where}: placement is refused ({count} problem{'' if count == 1 else 's'}): "
        + " | ".join(f.message for f in report.refusals)
    )


def load_checked(path: str | Path) -> tuple[Program, PlacementReport]:
    """Load a program file and check its placement: the program and its warnings, or a
    one-line ``ProgramError`` / ``PlacementError`` naming the file and line."""
    from waveforms.files import load_program as load_program_file

    program = load_program_file(path)
    return program, check_program(program)


def _lookup(name: str) -> tuple[Entry, str]:
    """A program or manual entry by built-in name, user name, or path; and what kind it is."""
    from waveforms.builtin import builtin_names, find_entry, manual_names
    from waveforms.files import load_entry

    if name in builtin_names() or name in manual_names():
        return find_entry(name), "built-in"
    if name.endswith(".toml") or "/" in name or Path(name).is_file():
        return load_entry(name), "file"
    return find_entry(name), "user program"


# --------------------------------------------------------------------------- text


def evidence_summary(program: Program) -> str:
    """One line: how far the program rests on sources."""
    from waveforms.files import CORE_EVIDENCE

    if program.evidence == "sourced":
        return "SOURCED: every core parameter (" + ", ".join(CORE_EVIDENCE) + ") has a source"
    if program.evidence == "unstated":
        return "NOT STATED: no evidence markers; treat every parameter as a practice default"
    defaults = [m.about for m in program.evidence_markers if m.status == "practice-default"]
    missing = [a for a in CORE_EVIDENCE if program.marker(a) is None]
    parts = []
    if defaults:
        parts.append("practice default: " + ", ".join(defaults))
    if missing:
        parts.append("no marker: " + ", ".join(missing))
    return "PRACTICE DEFAULT, NOT EVIDENCE (" + "; ".join(parts) + ")"


def _electrode_text(program: Program) -> str:
    """The electrode line: the program's electrode, and the sources' where they differ."""
    from waveforms.builtin import builtin_names, needle_variant_name

    text: str = program.electrode
    if program.sourced_for and program.sourced_for != program.electrode:
        text += (
            f" (the sources used {program.sourced_for}s, {program.sourced_for} EA; "
            f"{program.electrode}s are a practice default)"
        )
    elif program.sourced_for:
        text += f" (as in the sources: {program.sourced_for} EA)"
    variant = needle_variant_name(program.name)
    if program.needle_variant and variant in builtin_names():
        text += f"; needle variant: {variant} (devices with charge-balanced output)"
    return text


def _tag(program: Program) -> str:
    return {"sourced": "sourced", "practice-default": "practice default"}.get(
        program.evidence, "evidence unstated"
    )


def matches_indication(program: Entry, text: str) -> bool:
    """True when every word of ``text`` occurs (any case) in the program's name, title or
    indication."""
    haystack = f"{program.name} {program.title} {program.indication}".casefold()
    return all(word in haystack for word in text.casefold().split())


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60:d}:{whole % 60:02d}"


def _segment_text(segment: Segment) -> tuple[str, str, str]:
    """(waveform and rate, pulse width, intensity) of one segment."""
    width = f"{segment.pulse_width_us:g} us"
    if segment.kind == "ramp":
        return (
            f"ramp {segment.frequency_hz:g} Hz",
            width,
            f"{segment.intensity_from:.2f} -> {segment.intensity_to:.2f}",
        )
    if segment.kind == "continuous":
        return f"continuous {segment.frequency_hz:g} Hz", width, f"{segment.intensity:.2f}"
    if segment.kind == "intermittent":
        return (
            f"intermittent {segment.frequency_hz:g} Hz, {segment.on_s:g} s on / "
            f"{segment.off_s:g} s off",
            width,
            f"{segment.intensity:.2f}",
        )
    return (
        f"dense-disperse {segment.low_hz:g}/{segment.high_hz:g} Hz, "
        f"{segment.low_s:g} s / {segment.high_s:g} s",
        width,
        f"{segment.intensity:.2f}",
    )


def _onset_text(program: Program) -> str | None:
    from safety.screening import (
        BELLS_ACUTE_MAX_LEVEL_FRACTION,
        BELLS_ACUTE_UNTIL_DAY,
        BELLS_CHRONIC_FROM_DAY,
        BELLS_NO_EA_UNTIL_DAY,
    )

    if program.onset_rule != "bells-palsy":
        return None
    text = (
        f"asks the days since onset of Bell's palsy: days 0-{BELLS_NO_EA_UNTIL_DAY} refused; "
        f"days {BELLS_NO_EA_UNTIL_DAY + 1}-{BELLS_ACUTE_UNTIL_DAY} at most "
        f"{BELLS_ACUTE_MAX_LEVEL_FRACTION:.0%} of the device maximum"
    )
    if program.stage == "chronic":
        text += f"; this chronic-stage program is refused before day {BELLS_CHRONIC_FROM_DAY}"
    return text


def _wrap(text: str, indent: str, later: str | None = None) -> list[str]:
    return textwrap.wrap(
        " ".join(text.split()),
        100,
        initial_indent=indent,
        subsequent_indent=indent if later is None else later,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _show(program: Program, kind: str, report: PlacementReport | None, error: str) -> list[str]:
    out = [f"{program.name}: {program.title} ({kind})"]
    out += _wrap(f"indication: {program.indication}", "  ")
    out += _wrap(f"evidence: {evidence_summary(program)}", "  ")
    out += _wrap(
        f"electrode: {_electrode_text(program)}; {program.duration_s / 60:g} min; "
        f"{len(program.channels)} channel{'' if len(program.channels) == 1 else 's'}",
        "  ",
    )
    onset = _onset_text(program)
    if onset:
        out += _wrap(f"onset: {onset}", "  ")
    if program.source_path:
        out.append(f"  file: {program.source_path}")
    if program.description.strip():
        out += ["", "About"]
        for k, paragraph in enumerate(program.description.strip().split("\n\n")):
            out += ([""] if k else []) + _wrap(paragraph, "  ")

    out += ["", "Placement"]
    for channel in program.channels:
        ceiling = f"ceiling {channel.max_level_fraction:.0%} of the device maximum"
        if channel.max_current_ma is not None:
            ceiling += f", at most {channel.max_current_ma:g} mA"
        out.append(f"  {channel.name}: {' + '.join(channel.sites)}  ({ceiling})")
        out += _point_lines(channel.sites)
    if program.manual_points:
        out.append(
            f"  manual points (needled by hand, no current): {' '.join(program.manual_points)}"
        )
        out += _point_lines(program.manual_points)
    if error:
        out += _wrap(f"REFUSED: {error}", "  ")
    elif report is not None:
        count = len(report.warnings)
        out.append(
            f"  check: allowed, {count} warning{'' if count == 1 else 's'} (shown and recorded)"
        )
        for finding in report.warnings:
            out += _wrap(f"warning ({finding.rule}): {finding.message}", "    ")

    groups: list[tuple[list[str], tuple[Segment, ...]]] = []
    for channel in program.channels:
        for names, segments in groups:
            if segments == channel.segments:
                names.append(channel.name)
                break
        else:
            groups.append(([channel.name], channel.segments))
    for names, segments in groups:
        label = "channel" if len(names) == 1 else "channels"
        out += ["", f"Timeline ({label} {', '.join(names)})"]
        rows: list[tuple[str, str, str, str, str]] = []
        t = 0.0
        for segment in segments:
            wave, width, intensity = _segment_text(segment)
            span = f"{_clock(t)}-{_clock(t + segment.duration_s)}"
            rows.append((span, wave, width, intensity, segment.label))
            t += segment.duration_s
        w = [max(len(row[k]) for row in rows) for k in range(4)]
        for span, wave, width, intensity, text in rows:
            out.append(
                f"  {span:>{w[0]}}  {wave:<{w[1]}}  {width:>{w[2]}}  intensity "
                f"{intensity:<{w[3]}}  {text}".rstrip()
            )

    out += _tail(program)
    return out


def _point_lines(sites: tuple[str, ...]) -> list[str]:
    """One wrapped line per site: its names, side, region and location."""
    from waveforms.acupoints import SIDE_NAMES, parse_site

    out: list[str] = []
    for site in sites:
        try:
            point, side = parse_site(site)
        except AcustimError as exc:
            out.append(f"     {site}: {exc}")
            continue
        out += _wrap(
            f"{site}: {point.pinyin} {point.chinese}, {SIDE_NAMES[side]} {point.region}. "
            f"{point.location}",
            "     ",
            "       ",
        )
    return out


def _tail(entry: Entry) -> list[str]:
    """Evidence markers, cautions and sources, as ``acustim show`` prints them."""
    out = ["", "Evidence markers"]
    if not entry.evidence_markers:
        out.append("  none: treat every parameter as a practice default, not evidence")
    for marker in entry.evidence_markers:
        status = "sourced" if marker.status == "sourced" else "PRACTICE DEFAULT"
        keys = f"[{', '.join(marker.sources)}]" if marker.sources else "[no source]"
        out.append(f"  {marker.about:<12} {status:<17} {keys}")
        out += _wrap(marker.note, " " * 15)

    out += ["", "Cautions"]
    out += [line for c in entry.cautions for line in _wrap(c, "  - ", "    ")] or ["  none"]
    out += ["", "Sources"]
    out += [line for s in entry.sources for line in _wrap(s, "  ", "    ")] or ["  none"]
    return out


def _show_manual(entry: ManualEntry, kind: str) -> list[str]:
    """``acustim show`` of a manual-acupuncture entry: points, why no EA, and the rest."""
    out = [f"{entry.name}: {entry.title} ({kind}, manual acupuncture: no current)"]
    out += _wrap(f"indication: {entry.indication}", "  ")
    out += _wrap(f"why no EA: {entry.why_no_ea}", "  ")
    out.append("  cannot be run: acustim run and the app refuse it; no channel, no current")
    if entry.source_path:
        out.append(f"  file: {entry.source_path}")
    if entry.description.strip():
        out += ["", "About"]
        for k, paragraph in enumerate(entry.description.strip().split("\n\n")):
            out += ([""] if k else []) + _wrap(paragraph, "  ")
    out += ["", "Points (needled by hand, no current)", f"  {' '.join(entry.points)}"]
    out += _point_lines(entry.points)
    out += _tail(entry)
    return out


# --------------------------------------------------------------------------- commands


def cmd_programs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from safety.placement import PlacementError
    from waveforms.builtin import builtin_programs, load_user_programs, manual_entries

    user = load_user_programs()
    bad = [str(e) for e in user.errors]
    listed: list[tuple[Program, str]] = [(p, "") for p in builtin_programs()]
    for program in user.programs:
        try:
            check_program(program)
        except PlacementError as exc:
            bad.append(str(exc))
            continue
        listed.append((program, "user"))
    text = args.indication
    shown = [(p, mark) for p, mark in listed if text is None or matches_indication(p, text)]
    for program, mark in shown:
        minutes = program.duration_s / 60
        tags = ", ".join(t for t in (mark, _tag(program)) if t)
        print(f"{program.name:<30} {minutes:>4.0f} min  {program.title}  [{tags}]", file=out)
        channels = "; ".join(f"{c.name}: {' '.join(c.sites)}" for c in program.channels)
        print(f"{'':<30}            {channels}", file=out)
    manual = [(e, "") for e in manual_entries()] + [(e, "user") for e in user.manual]
    manual = [(e, mark) for e, mark in manual if text is None or matches_indication(e, text)]
    if manual:
        print("", file=out)
        print("manual acupuncture entries: points only, no current; never run", file=out)
        for entry, mark in manual:
            tags = ", ".join(t for t in (mark, "manual, no current") if t)
            print(f"  {entry.name:<31} {entry.title}  [{tags}]", file=out)
            print(f"  {'':<31} points: {' '.join(entry.points)}", file=out)
    if not shown and not manual:
        print(f"no program matches --indication {text!r}", file=out)
    for line in bad:
        print(f"acustim: {line}", file=err)
    return EXIT_USAGE if bad else EXIT_OK


def cmd_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from safety.placement import PlacementError
    from waveforms.program import ManualEntry

    program, kind = _lookup(args.name)
    if isinstance(program, ManualEntry):
        for line in _show_manual(program, kind):
            print(line, file=out)
        return EXIT_OK
    error = ""
    report: PlacementReport | None = None
    try:
        report = check_program(program)
    except PlacementError as exc:
        error = str(exc)
    for line in _show(program, kind, report, error):
        print(line, file=out)
    if error:
        print(f"acustim: {error}", file=err)
        return EXIT_USAGE
    return EXIT_OK


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from safety.placement import PlacementError
    from waveforms.acupoints import AcupointError
    from waveforms.builtin import check_user_program, user_programs_dir
    from waveforms.files import load_entry
    from waveforms.program import ManualEntry

    bad = 0
    folder = user_programs_dir().resolve()
    for path in args.files:
        try:
            entry = load_entry(path)
            if Path(path).resolve().parent == folder:
                check_user_program(Path(path), entry)  # its name is its file name
            if isinstance(entry, ManualEntry):
                count = len(entry.points)
                print(
                    f"{path}: ok ({entry.name}, manual acupuncture: {count} point"
                    f"{'' if count == 1 else 's'}, no current; cannot be run)",
                    file=out,
                )
                continue
            program, report = entry, check_program(entry)
        except (ProgramError, PlacementError, AcupointError) as exc:
            print(f"acustim: {exc}", file=err)
            bad += 1
            continue
        warnings, channels = len(report.warnings), len(program.channels)
        print(
            f"{path}: ok ({program.name}, {channels} channel{'' if channels == 1 else 's'}, "
            f"{program.duration_s / 60:.1f} min, {_tag(program)}, "
            f"{warnings} placement warning{'' if warnings == 1 else 's'})",
            file=out,
        )
        for finding in report.warnings:
            print(f"{path}: warning ({finding.rule}): {finding.message}", file=out)
    return EXIT_USAGE if bad else EXIT_OK


#: where ``acustim programs --help`` names the user programs folder
_USER_PROGRAMS_DIR = "{user programs folder}"


class _ProgramsHelp(argparse.HelpFormatter):
    """Names the user programs folder when the help is shown: finding it imports
    ``waveforms.builtin``, which building the parser does not."""

    def add_text(self, text: str | None) -> None:
        if text is not None and _USER_PROGRAMS_DIR in text:
            from waveforms.builtin import user_programs_dir

            text = text.replace(_USER_PROGRAMS_DIR, str(user_programs_dir()))
        super().add_text(text)


def register(sub: Any) -> None:
    programs = sub.add_parser(
        "programs",
        help="list the built-in and user programs",
        description="List the built-in programs and the user's programs "
        f"(in {_USER_PROGRAMS_DIR}; set $ACUSTIM_DATA_DIR to move it). A user program file "
        "that is invalid or has a refused placement is reported on one line and not listed.",
        formatter_class=_ProgramsHelp,
    )
    programs.add_argument(
        "--indication",
        metavar="TEXT",
        help="only programs whose name, title or indication contain every word of TEXT",
    )
    programs.set_defaults(func=cmd_programs)

    show = sub.add_parser(
        "show",
        help="show a program (placement, timeline, cautions, evidence and sources) or a "
        "manual-acupuncture entry (points and why no EA)",
    )
    show.add_argument(
        "name",
        metavar="NAME",
        help="a built-in or user program or manual entry, or a .toml file",
    )
    show.set_defaults(func=cmd_show)

    validate = sub.add_parser(
        "validate", help="check program files: format and electrode placement"
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(func=cmd_validate)
