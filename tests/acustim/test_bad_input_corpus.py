"""A corpus of bad files and arguments, each run through the real CLI.

Every case must give exit 2 and exactly one line on stderr (never a traceback), the line must
say what is wrong and where (file:line, option or field, the allowed range), and nothing may
reach a device: no transport but an in-process simulator link is ever made, no such link
carries a single write, and no session is recorded.

The cases run in-process (``acustim.cli.main``) on simulators with virtual time; the few that
need a real pipe or signal behaviour run in a subprocess at the end of this file.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import acustim.engine
from acustim.cli import main
from acustim.commands.screening import template
from acustim.records import RecordStore
from firmware_bridge.errors import TransportClosed
from firmware_bridge.link import ByteStreamLink, SimulatorLink
from firmware_bridge.transport import Transport
from simulators.record import DeliveryRecord

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
[program]
name = "corpus"
title = "Corpus base program"
indication = "Jaw pain, left"
electrode = "pad"
{program_extra}
[[segments]]
kind = "ramp"
duration_s = 5
frequency_hz = 10
pulse_width_us = 250
intensity_from = 0.0
intensity_to = 1.0

[[segments]]
kind = "dense_disperse"
duration_s = 10
{dense}
pulse_width_us = 250
intensity = 1.0

[[channels]]
name = "A"
sites = ["ST7-L", "ST6-L"]
max_level_fraction = 0.5
"""
DENSE = "low_hz = 2\nhigh_hz = 100"


def program(program_extra: str = "", dense: str = DENSE) -> str:
    return GOOD.format(program_extra=program_extra, dense=dense)


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


NO = template().replace('= "?"', "= false")


def screening_with(line: str) -> str:
    """The all-no screening with one more line at the end of [answers]."""
    return NO + line + "\n"


# --------------------------------------------------------------------------- the files

PROGRAM_FILES: dict[str, str] = {
    "deep330.toml": program(f"deep = {nested(330)}"),
    "deep400.toml": program(f"deep = {nested(400)}"),
    "deep499.toml": program(f"deep = {nested(499)}"),
    "deep1000.toml": program(f"deep = {nested(1000)}"),
    "deep5000.toml": program(f"deep = {nested(5000)}"),
    "deep-inline.toml": program("deep = " + "{a = " * 400 + "1" + "}" * 400),
    "deep-mixed.toml": program("deep = " + "[{a = " * 200 + "1" + "}]" * 200),
    "deep-dotted.toml": program().replace(
        "[[segments]]", "[x.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s]\n\n[[segments]]", 1
    ),
    "long-int.toml": program().replace("duration_s = 5", "duration_s = " + "9" * 5000),
    "fifty-digits.toml": program().replace("duration_s = 5", "duration_s = " + "9" * 50),
    "dd-equal.toml": program(dense="low_hz = 50\nhigh_hz = 50"),
    "dd-reversed.toml": program(dense="low_hz = 100\nhigh_hz = 2"),
    "dd-low-over-default.toml": program(dense="low_hz = 150"),
    "dd-high-under-default.toml": program(dense="high_hz = 1"),
    "dd-low-out-of-range.toml": program(dense="low_hz = 0.1\nhigh_hz = 100"),
    "freq.toml": program().replace("frequency_hz = 10", "frequency_hz = 500"),
    "nan-freq.toml": program().replace("frequency_hz = 10", "frequency_hz = nan"),
    "inf-duration.toml": program().replace("duration_s = 5", "duration_s = inf"),
    "string-number.toml": program().replace("duration_s = 5", 'duration_s = "5"'),
    "bool-number.toml": program().replace("pulse_width_us = 250", "pulse_width_us = true", 1),
    "negative-width.toml": program().replace("pulse_width_us = 250", "pulse_width_us = -5", 1),
    "unknown-key.toml": program().replace("frequency_hz = 10", "frequncy_hz = 10"),
    "area.toml": program("electrode_area_cm2 = 1e9"),
    "syntax.toml": program().replace("intensity_to = 1.0", "intensity_to = "),
    "empty.toml": "",
    "nine-channels.toml": program()
    + "".join(f'\n[[channels]]\nname = "C{k}"\nsites = ["ST7-L", "ST6-L"]\n' for k in range(8)),
    "across.toml": program().replace('["ST7-L", "ST6-L"]', '["ST7-L", "ST7-R"]'),
}

SCREENING_FILES: dict[str, str] = {
    "scr-deep330.toml": screening_with(f"deep = {nested(330)}"),
    "scr-deep400.toml": screening_with(f"deep = {nested(400)}"),
    "scr-deep499.toml": screening_with(f"deep = {nested(499)}"),
    "scr-deep1000.toml": screening_with(f"deep = {nested(1000)}"),
    "scr-deep5000.toml": screening_with(f"deep = {nested(5000)}"),
    "scr-deep-inline.toml": screening_with("deep = " + "{a = " * 400 + "1" + "}" * 400),
    "scr-long-int.toml": screening_with("pacemaker = " + "1" * 5000),
    "scr-unanswered.toml": template(),
    "scr-string.toml": NO.replace("pacemaker = false", 'pacemaker = "no"'),
    "scr-unknown.toml": screening_with("frobnication = false"),
    "scr-long-key.toml": screening_with("k" * 10_000 + " = false"),
    "scr-long-string.toml": NO.replace("pacemaker = false", 'pacemaker = "' + "x" * 50_000 + '"'),
    "scr-top-key.toml": "acknowleged = []\n" + NO.replace("acknowledged = []\n", ""),
    "scr-ack-type.toml": NO.replace("acknowledged = []", 'acknowledged = "pacemaker"'),
    "scr-ack-unknown.toml": NO.replace("acknowledged = []", 'acknowledged = ["nope"]'),
    "scr-no-answers.toml": "acknowledged = []\n",
    "scr-empty.toml": "",
    "scr-syntax.toml": NO.replace("pacemaker = false", "pacemaker = "),
    "scr-table.toml": NO.replace("pacemaker = false", "pacemaker = {yes = true}"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    for name, text in {**PROGRAM_FILES, **SCREENING_FILES}.items():
        (d / name).write_text(text, encoding="utf-8")
    (d / "big.toml").write_text(program() + "#" * 300_000 + "\n", encoding="utf-8")
    (d / "scr-big.toml").write_text(NO + "#" * 70_000 + "\n", encoding="utf-8")
    (d / "latin1.toml").write_bytes(program("# caf\xe9").encode("latin-1"))
    (d / "scr-latin1.toml").write_bytes(b"# caf\xe9\n" + NO.encode("utf-8"))
    (d / "dir.toml").mkdir()
    (d / "answers-dir").mkdir()
    for fifo in ("fifo.toml", "answers.fifo", "store.fifo", "trace.fifo", "port.fifo"):
        os.mkfifo(d / fifo)
    (d / "link-to-fifo.toml").symlink_to(d / "fifo.toml")
    (d / "plain.txt").write_text("not a store\n", encoding="utf-8")
    (d / "ok.toml").write_text(program(), encoding="utf-8")
    (d / "screening-ok.toml").write_text(NO, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one short session, for the records commands."""
    path = tmp_path_factory.mktemp("recorded") / "records.sqlite3"
    code = main(
        [
            "run",
            "tmj-jaw-pain-left",
            "--device",
            "sim:coyote3",
            "--virtual-time",
            "--duration",
            "1",
            "--quiet",
            "--store",
            str(path),
        ],
        out=io.StringIO(),
        err=io.StringIO(),
    )
    assert code == 0
    return path


# --------------------------------------------------------------------------- the cases


def at(name: str, fragment: str) -> str:
    """``{d}/NAME:LINE:`` for the line of ``fragment`` in that corpus file."""
    text = {**PROGRAM_FILES, **SCREENING_FILES}[name]
    return f"{{d}}/{name}:{line_of(text, fragment)}:"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    says: tuple[str, ...]  # what the one line must contain ({d} is the corpus folder)


def run(*args: str, vt: bool = True) -> tuple[str, ...]:
    """``acustim run`` with a fresh store (checked empty afterwards) and, on a simulator,
    virtual time and a short length, so a case that wrongly ran would end at once."""
    argv = ["run", *args]
    if "--store" not in args:
        argv += ["--store", "{store}"]
    if vt and "--virtual-time" not in args:
        argv += ["--virtual-time"]
    if "--duration" not in args:
        argv += ["--duration", "2"]
    return tuple(argv)


TMJ = "tmj-jaw-pain-left"
FILE_CASES = [
    Case(
        "deep-330",
        run("{d}/deep330.toml"),
        (at("deep330.toml", "deep ="), "TOML nesting = 330 levels", "allowed at most 16"),
    ),
    Case(
        "deep-400", run("{d}/deep400.toml"), (at("deep400.toml", "deep ="), "nesting = 400 levels")
    ),
    Case(
        "deep-499", run("{d}/deep499.toml"), (at("deep499.toml", "deep ="), "nesting = 499 levels")
    ),
    Case("deep-1000", run("{d}/deep1000.toml"), (at("deep1000.toml", "deep ="), "nesting = 1000")),
    Case("deep-5000", run("{d}/deep5000.toml"), (at("deep5000.toml", "deep ="), "nesting = 5000")),
    Case(
        "deep-inline",
        run("{d}/deep-inline.toml"),
        (at("deep-inline.toml", "deep ="), "TOML nesting"),
    ),
    Case(
        "deep-mixed", run("{d}/deep-mixed.toml"), (at("deep-mixed.toml", "deep ="), "TOML nesting")
    ),
    Case(
        "deep-dotted",
        run("{d}/deep-dotted.toml"),
        (at("deep-dotted.toml", "[x.a"), "TOML nesting = 20 levels"),
    ),
    Case(
        "integer-5000-digits",
        run("{d}/long-int.toml"),
        (at("long-int.toml", "duration_s = 9"), "TOML number = (5000 digits) is too long"),
    ),
    Case(
        "integer-50-digits",
        run("{d}/fifty-digits.toml"),
        (
            at("fifty-digits.toml", "duration_s = 9"),
            "duration_s = (an integer of about 50 digits) is out of range",
        ),
    ),
    Case(
        "dense-disperse-equal",
        run("{d}/dd-equal.toml"),
        (
            at("dd-equal.toml", "low_hz"),
            "(dense_disperse) low_hz = 50 is not below high_hz = 50",
            "0.5..200",
        ),
    ),
    Case(
        "dense-disperse-reversed",
        run("{d}/dd-reversed.toml"),
        (
            at("dd-reversed.toml", "low_hz"),
            "low_hz = 100 is not below high_hz = 2",
            "allowed low_hz below",
        ),
    ),
    Case(
        "dense-disperse-low-over-default-high",
        run("{d}/dd-low-over-default.toml"),
        (
            at("dd-low-over-default.toml", "low_hz"),
            "low_hz = 150 is not below high_hz = 100 (default)",
        ),
    ),
    Case(
        "dense-disperse-high-under-default-low",
        run("{d}/dd-high-under-default.toml"),
        (
            at("dd-high-under-default.toml", "high_hz"),
            "low_hz = 2 (default) is not below high_hz = 1",
        ),
    ),
    Case(
        "dense-disperse-low-out-of-range",
        run("{d}/dd-low-out-of-range.toml"),
        (
            at("dd-low-out-of-range.toml", "low_hz"),
            "low_hz = 0.1 is out of range; allowed 0.5..200 Hz",
        ),
    ),
    Case("fifo-program", run("{d}/fifo.toml"), ("{d}/fifo.toml:", "named pipe (FIFO)", "regular")),
    Case(
        "symlink-to-fifo-program",
        run("{d}/link-to-fifo.toml"),
        ("link-to-fifo.toml", "named pipe (FIFO), not a regular file"),
    ),
    Case("directory-program", run("{d}/dir.toml"), ("{d}/dir.toml:", "a directory, not a regular")),
    Case("device-as-program", run("/dev/null"), ("/dev/null:", "a character device")),
    Case("missing-program", run("{d}/nope.toml"), ("nope.toml:", "cannot be read")),
    Case("big-program", run("{d}/big.toml"), ("big.toml:1:", "file size", "at most 262144")),
    Case("latin1-program", run("{d}/latin1.toml"), ("latin1.toml:6:", "byte = 0xe9 is not UTF-8")),
    Case(
        "frequency",
        run("{d}/freq.toml"),
        (at("freq.toml", "frequency_hz"), "frequency_hz = 500", "0.5..200 Hz"),
    ),
    Case(
        "nan-frequency",
        run("{d}/nan-freq.toml"),
        (at("nan-freq.toml", "frequency_hz"), "frequency_hz = nan"),
    ),
    Case(
        "inf-duration",
        run("{d}/inf-duration.toml"),
        (at("inf-duration.toml", "duration_s"), "= inf"),
    ),
    Case(
        "string-number",
        run("{d}/string-number.toml"),
        (at("string-number.toml", "duration_s"), "a string"),
    ),
    Case(
        "bool-number",
        run("{d}/bool-number.toml"),
        (at("bool-number.toml", "pulse_width_us"), "a boolean"),
    ),
    Case(
        "negative-width",
        run("{d}/negative-width.toml"),
        (at("negative-width.toml", "pulse_width_us"), "20..1000"),
    ),
    Case(
        "unknown-key",
        run("{d}/unknown-key.toml"),
        (at("unknown-key.toml", "frequncy_hz"), "did you mean"),
    ),
    Case(
        "area-in-file",
        run("{d}/area.toml"),
        (at("area.toml", "electrode_area"), "0 < x <= 500 cm^2"),
    ),
    Case(
        "syntax", run("{d}/syntax.toml"), (at("syntax.toml", "intensity_to"), "TOML text at column")
    ),
    Case("empty-program", run("{d}/empty.toml"), ("empty.toml:1:", "[program] table")),
    Case("nine-channels", run("{d}/nine-channels.toml"), ("nine-channels.toml:", "1..8 channels")),
    Case("placement", run("{d}/across.toml"), (at("across.toml", "sites"), "placement is refused")),
    Case(
        "validate-deep-400",
        ("validate", "{d}/deep400.toml"),
        (at("deep400.toml", "deep ="), "nesting"),
    ),
    Case(
        "validate-deep-499",
        ("validate", "{d}/deep499.toml"),
        (at("deep499.toml", "deep ="), "nesting"),
    ),
    Case(
        "validate-dense-disperse",
        ("validate", "{d}/dd-equal.toml"),
        (at("dd-equal.toml", "low_hz"),),
    ),
    Case("validate-fifo", ("validate", "{d}/fifo.toml"), ("fifo.toml:", "named pipe (FIFO)")),
    Case("show-fifo", ("show", "{d}/fifo.toml"), ("fifo.toml:", "named pipe (FIFO)")),
    Case(
        "show-deep", ("show", "{d}/deep330.toml"), (at("deep330.toml", "deep ="), "nesting = 330")
    ),
]

SCREENING_CASES = (
    [
        Case(
            f"screening-{name.removeprefix('scr-').removesuffix('.toml')}",
            run(TMJ, "--screening", f"{{d}}/{name}"),
            (at(name, locate) if locate else f"{{d}}/{name}: ", *says),
        )
        for name, locate, says in [
            (
                "scr-deep330.toml",
                "deep =",
                ("arrays nested 330 levels deep", "allowed true or false"),
            ),
            ("scr-deep400.toml", "deep =", ("arrays nested 400 levels deep",)),
            ("scr-deep499.toml", "deep =", ("arrays nested 499 levels deep",)),
            ("scr-deep1000.toml", "deep =", ("arrays nested 1000 levels deep",)),
            ("scr-deep5000.toml", "deep =", ("arrays nested 5000 levels deep",)),
            ("scr-deep-inline.toml", "deep =", ("nested 400 levels deep",)),
            ("scr-long-int.toml", "pacemaker = 1", ("a number of 5000 digits is too long",)),
            # the template asks the day-of part first
            (
                "scr-unanswered.toml",
                "skin_broken =",
                ('answers.skin_broken = "?" is not answered',),
            ),
            ("scr-string.toml", "pacemaker =", ('answers.pacemaker = "no" is not answered',)),
            ("scr-unknown.toml", "frobnication", ('"frobnication" is not a question', "pacemaker")),
            ("scr-long-key.toml", "kkkk", ('"kkkk', '..." is not a question')),
            ("scr-long-string.toml", "pacemaker =", ('= "xxxx', '..." is not answered')),
            (
                "scr-top-key.toml",
                "acknowleged",
                ('"acknowleged" is an unknown key', "allowed keys"),
            ),
            (
                "scr-ack-type.toml",
                "acknowledged =",
                ("acknowledged must be a list of question keys",),
            ),
            ("scr-ack-unknown.toml", "acknowledged =", ('acknowledged "nope" is not a question',)),
            ("scr-no-answers.toml", None, ("no [answers] table",)),
            ("scr-empty.toml", None, ("no [answers] table",)),
            ("scr-syntax.toml", "pacemaker =", ("not a screening file", "allowed TOML")),
            ("scr-table.toml", "pacemaker =", ("answers.pacemaker = (a table) is not answered",)),
        ]
    ]
    + [
        Case(
            f"screening-{name.split('.')[0]}",
            run(TMJ, "--screening", f"{{d}}/{name}"),
            (f"{{d}}/{name}", *says),
        )
        for name, says in [
            ("scr-latin1.toml", (":1: not a screening file: byte 0xe9 is not UTF-8",)),
            ("scr-big.toml", (": the screening file size = ", "allowed at most 65536 bytes")),
            ("answers.fifo", (": the screening file is a named pipe (FIFO)", "regular file")),
            ("answers-dir", (": the screening file is a directory",)),
            ("nope.toml", (": cannot read the screening file (No such file",)),
        ]
    ]
    + [
        Case(
            "screening-char-device",
            run(TMJ, "--screening", "/dev/zero"),
            ("/dev/zero: the screening file is a character device",),
        ),
        Case(
            "screening-fifo-on-a-real-device",
            run(TMJ, "--device", "et312@/dev/null", "--screening", "{d}/answers.fifo", vt=False),
            ("answers.fifo: the screening file is a named pipe (FIFO)",),
        ),
    ]
)

STORE_CASES = [
    Case("store-fifo", run(TMJ, "--store", "{d}/store.fifo"), ("store.fifo is a named pipe",)),
    Case("store-directory", run(TMJ, "--store", "{d}/dir.toml"), ("dir.toml is a directory",)),
    Case("store-text", run(TMJ, "--store", "{d}/plain.txt"), ("plain.txt is not an acustim",)),
    Case("sessions-store-fifo", ("sessions", "--store", "{d}/store.fifo"), ("store.fifo is a",)),
    Case(
        "report-store-fifo",
        ("report", "1", "--html", "{d}/r.html", "--store", "{d}/store.fifo"),
        ("store.fifo is a named pipe (FIFO), not a records store",),
    ),
    Case(
        "export-store-fifo",
        ("export", "last", "--csv", "{d}/r.csv", "--store", "{d}/store.fifo"),
        ("store.fifo is a named pipe (FIFO)",),
    ),
]

CHANNEL_RULE = "write CHANNEL=WHOLE_NUMBER"
LEVEL_CASES = [
    Case(
        f"{option.strip('-')}-{label}", run(TMJ, option, value), (f"{option} ", CHANNEL_RULE, *more)
    )
    for option in ("--level", "--ceiling")
    for label, value, more in [
        ("double-minus", "A=--5", ("'A=--5'", "at most 6 digits")),
        ("superscript", "A=²", ("'A=²'",)),
        ("5000-digits", "A=" + "1" * 5000, ("...'",)),
        ("minus", "A=-5", ()),
        ("plus", "A=+5", ()),
        ("space", "A= 5", ()),
        ("arabic-digit", "A=\u0665", ()),
        ("underscore", "A=1_0", ()),
        ("empty", "A=", ()),
        ("no-name", "=5", ()),
        ("seven-digits", "A=1000000", ()),
    ]
] + [
    Case("level-hex", run(TMJ, "--level", "A=0x10"), (CHANNEL_RULE,)),
    Case("level-float", run(TMJ, "--level", "A=5.0"), (CHANNEL_RULE,)),
    Case("level-exponent", run(TMJ, "--level", "A=1e3"), (CHANNEL_RULE,)),
    Case("level-no-equals", run(TMJ, "--level", "A"), (CHANNEL_RULE,)),
    Case("level-long-name", run(TMJ, "--level", "ABCDEFGHI=5"), (CHANNEL_RULE, "1..8 letters")),
    Case("level-huge-name", run(TMJ, "--level", "N" * 10_000 + "=5"), (CHANNEL_RULE, "NNN...'")),
    Case("level-unknown-channel", run(TMJ, "--level", "B=3"), ("has channel A",)),
    Case("level-over-ceiling", run(TMJ, "--level", "A=201"), ("allowed 0..50 du",)),
    Case("level-twice", run(TMJ, "--level", "A=3", "--level", "A=4"), ("given twice",)),
]

AREA = "allowed 0 < x <= 500 cm^2"
OPTION_CASES = [
    Case(f"area-{value}", run(TMJ, f"--area={value}"), (f"--area {shown}", AREA))
    for value, shown in [
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("nan", "nan"),
        ("1e9", "1e+09"),
        ("1e309", "inf"),
        ("500.001", "500.001"),
        ("0", "0"),
        ("-1", "-1"),
    ]
] + [
    Case("area-text", run(TMJ, "--area", "big"), ("--area", "invalid float value")),
    *(
        Case(
            f"status-every-{value}",
            run(TMJ, "--status-every", value),
            ("--status-every", f"'{value}'", "allowed 0.1..3600 s"),
        )
        for value in ("-1", "nan", "inf", "0", "1e9", "soon")
    ),
    *(
        Case(
            f"onset-days-{label}",
            run("bells-palsy-subacute-left", "--onset-days", value),
            ("--onset-days", "allowed 0..36500"),
        )
        for label, value in [
            ("negative", "-5"),
            ("huge", "9" * 23),
            ("text", "5x"),
            ("space", " 5"),
            ("arabic", "\u0665"),
        ]
    ),
    Case("duration-negative", run(TMJ, "--duration", "-5"), ("--duration -5", "must be > 0")),
    Case("duration-nan", run(TMJ, "--duration", "nan"), ("session length nan s", "allowed 0 <")),
    Case("duration-inf", run(TMJ, "--duration", "inf"), ("session length inf s",)),
    Case("ramp-nan", run(TMJ, "--ramp", "nan"), ("ramp rate nan", "allowed 0 < x <=")),
    Case("patient-name", run(TMJ, "--patient", "John Smith"), ("looks like a name",)),
    Case("patient-huge", run(TMJ, "--patient", "P" * 100_000), ("100000 characters long",)),
    Case("devices-scan-nan", ("devices", "--ble", "--scan-s", "nan"), ("--scan-s", "0.5..120 s")),
    Case(
        "simulate-status-every",
        ("simulate", "et312", "--pty", "--status-every", "-1"),
        ("0.1..3600 s",),
    ),
]

PORT = "a serial port path such as /dev/ttyUSB0"
BLE = "a BLE address of six hex pairs such as AA:BB:CC:DD:EE:FF"
DEVICE_CASES = [
    Case(f"device-{label}", run(TMJ, "--device", spec, vt=False), says)
    for label, spec, says in [
        ("et312-empty", "et312@", ("device 'et312@': the port is missing after '@'", PORT)),
        ("et312-words", "et312@not a port", ("'not a port' is not a serial port path", PORT)),
        ("coyote3-zz", "coyote3@ZZ:ZZ", ("'ZZ:ZZ' is not a BLE address", BLE)),
        ("coyote3-empty", "coyote3@", ("the BLE address is missing", BLE)),
        ("coyote3-five-pairs", "coyote3@AA:BB:CC:DD:EE", ("is not a BLE address",)),
        ("coyote3-bad-hex", "coyote3@AA:BB:CC:DD:EE:GG", ("is not a BLE address",)),
        ("coyote2-path", "coyote2@/dev/ttyUSB0", ("'/dev/ttyUSB0' is not a BLE address", BLE)),
        ("et312-ble-address", "et312@AA:BB:CC:DD:EE:FF", ("is not a serial port path", PORT)),
        ("et312-relative", "et312@ttyUSB0", ("'ttyUSB0' is not a serial port path",)),
        ("et312-regular-file", "et312@{d}/plain.txt", ("is a regular file, not a serial port",)),
        ("et312-directory", "et312@/tmp", ("'/tmp' is a directory, not a serial port",)),
        ("et312-missing", "et312@/dev/ttyNOPE_corpus", ("there is no port", "plugged in")),
        ("et312-space", "et312@/dev/tty USB0", ("is not a serial port path",)),
        ("et312-control", "et312@/dev/tty\x01", ("is not a serial port path",)),
        ("et312-socket-no-port", "et312@socket://localhost", ("socket://HOST:PORT",)),
        ("et312-socket-big-port", "et312@socket://localhost:99999", ("a port 1..65535",)),
        ("et312-ble-url", "et312@ble://AA:BB:CC:DD:EE:FF", ("a ble:// link, not a serial one",)),
        ("coyote3-serial-url", "coyote3@serial:///dev/ttyUSB0", ("a serial:// link",)),
        ("pulsepal-empty", "pulsepal@", ("the port is missing", PORT)),
        ("unknown-model", "nosuch@/dev/ttyUSB0", ("unknown device 'nosuch'",)),
        ("no-at", "et312", ("use sim:<device>",)),
        ("unknown-simulator", "sim:nosuch", ("unknown device",)),
    ]
] + [
    Case(
        "device-fifo-port",
        run(TMJ, "--device", "et312@{d}/port.fifo", vt=False),
        ("port.fifo' is a named pipe (FIFO), not a serial port",),
    )
]

VT = "virtual time is for simulators only"
VIRTUAL_TIME_CASES = [
    Case(f"virtual-time-{spec.split('@')[0]}", run(TMJ, "--device", spec), ("--virtual-time", VT))
    for spec in (
        "et312@/dev/ttyUSB0",
        "pulsepal@/dev/ttyACM0",
        "coyote3@AA:BB:CC:DD:EE:FF",
        "coyote2@AA:BB:CC:DD:EE:FF",
    )
]

TRACE = "allowed '-' (standard output) or a writable file"
TRACE_CASES = [
    Case("trace-missing-folder", run(TMJ, "--trace", "{d}/no/such/t.jsonl"), ("No such", TRACE)),
    Case("trace-directory", run(TMJ, "--trace", "{d}/dir.toml"), ("is a directory", TRACE)),
    Case("trace-under-a-file", run(TMJ, "--trace", "{d}/plain.txt/t"), ("Not a directory",)),
    Case("trace-fifo-unread", run(TMJ, "--trace", "{d}/trace.fifo"), ("no program is reading",)),
]

SESSION = "SESSION must be a session number"
RECORDS_CASES = [
    *(
        Case(f"report-{label}", ("report", value, "--html", "{d}/r.html", "--store", "{rec}"), says)
        for label, value, says in [
            ("huge", "99999999999999999999", (SESSION, "allowed 1..9223372036854775807")),
            ("negative", "-1", (SESSION,)),
            ("zero", "0", (SESSION,)),
            ("float", "1.5", (SESSION,)),
            ("arabic", "\u0661", (SESSION,)),
            ("space", " 1", (SESSION,)),
            ("absent", "7", ("has no session 7",)),
        ]
    ),
    Case(
        "export-huge",
        ("export", "99999999999999999999", "--csv", "{d}/r.csv", "--store", "{rec}"),
        (SESSION,),
    ),
    *(
        Case(
            f"sessions-{option.strip('-')}-{value}",
            ("sessions", option, value, "--store", "{rec}"),
            says,
        )
        for option, value, says in [
            ("--until", "9999-12-31", ("'9999-12-31' is out of range", "1900-01-01..9998-12-31")),
            ("--since", "0001-01-01", ("'0001-01-01' is out of range", "1900-01-01..9998-12-31")),
            ("--since", "9999-12-31T23:59", ("is out of range",)),
            ("--until", "1899-12-31", ("is out of range",)),
            ("--since", "2025-13-01", ("is not a date", "YYYY-MM-DD")),
            ("--until", "tomorrow", ("is not a date",)),
        ]
    ),
]

FIT_CASES = [
    Case(
        f"et312-cannot-deliver-{name}",
        run(name, "--device", "sim:et312"),
        (
            "Hz on channel A; ErosTek",
            "delivers",
            "built-in programs ErosTek",
            "can run: ",
            "facial-",
        ),
    )
    for name in ("tmj-jaw-pain-left", "han-2-100-analgesia", "trigeminal-facial-pain-right")
]

CASES = [
    *FILE_CASES,
    *SCREENING_CASES,
    *STORE_CASES,
    *LEVEL_CASES,
    *OPTION_CASES,
    *DEVICE_CASES,
    *VIRTUAL_TIME_CASES,
    *TRACE_CASES,
    *RECORDS_CASES,
    *FIT_CASES,
]


def test_the_corpus_is_big_and_its_ids_unique() -> None:
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------- running a case


@pytest.fixture
def transports(monkeypatch: pytest.MonkeyPatch) -> list[Transport]:
    """Every transport the engine makes while a case runs."""
    made: list[Transport] = []
    original = acustim.engine.resolve_device

    def spy(spec: str) -> tuple[object, Transport]:
        profile, transport = original(spec)
        made.append(transport)
        return profile, transport

    monkeypatch.setattr(acustim.engine, "resolve_device", spy)
    return made


def assert_nothing_sent(made: list[Transport], store: Path, sessions_before: int = 0) -> None:
    for transport in made:
        # a real device is never even resolved: only in-process simulator links
        assert isinstance(transport, SimulatorLink | ByteStreamLink), transport
        assert transport.writes == 0, f"{transport.writes} writes reached {transport.url}"
        try:
            simulator: object = transport.simulator
        except TransportClosed:  # never opened: its simulator never started
            continue
        record: DeliveryRecord = getattr(simulator, "record")  # noqa: B009 - the sims' record
        assert record.intervals() == [], record
    if store.is_file():
        with RecordStore.open(store, read_only=True) as records:
            assert len(records.sessions()) == sessions_before


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_is_sent(
    case: Case,
    corpus: Path,
    recorded: Path,
    tmp_path: Path,
    transports: list[Transport],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACUSTIM_DATA_DIR", str(tmp_path / "data"))
    store = tmp_path / "records.sqlite3"
    fill = {"d": str(corpus), "store": str(store), "rec": str(recorded)}
    argv = [arg.format(**fill) if "{" in arg and len(arg) < 200 else arg for arg in case.argv]
    out, err = io.StringIO(), io.StringIO()

    code = main(argv, out=out, err=err)

    text = err.getvalue()
    assert code == 2, (code, text[:500])
    assert text.count("\n") == 1 and text.endswith("\n"), text[:2000]
    assert text.startswith("acustim: "), text[:500]
    assert "Traceback" not in text
    assert len(text) < 1000, f"{len(text)} characters: {text[:300]}"
    for fragment in case.says:
        assert fragment.format(**fill) in text, (fragment, text)
    assert out.getvalue() == ""
    assert_nothing_sent(transports, store)
    assert_nothing_sent([], recorded, sessions_before=1)


# --------------------------------------------------------------------------- mid-session failures


def test_a_trace_that_fails_mid_session_ends_the_trace_not_the_session(tmp_path: Path) -> None:
    store = tmp_path / "records.sqlite3"
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "run",
            "facial-muscle-tension",
            "--device",
            "sim:et312",  # keeps stimulating by itself: the zero must be confirmed
            "--level",
            "A=20",
            "--duration",
            "3",
            "--virtual-time",
            "--quiet",
            "--store",
            str(store),
            "--trace",
            "/dev/full",
        ],
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    notices = [ln for ln in err.getvalue().splitlines() if "trace" in ln]
    assert len(notices) == 1, err.getvalue()
    assert "trace stopped: writing /dev/full failed (No space left on device)" in notices[0]
    assert "the session goes on" in notices[0]
    assert "Traceback" not in err.getvalue()
    assert "completed: session completed" in out.getvalue()
    assert "not confirmed" not in out.getvalue() + err.getvalue()
    with RecordStore.open(store, read_only=True) as records:
        (info,) = records.sessions()
        assert info.outcome == "completed"
        frames = records.frames(info.id)
        assert frames[-1].zero  # the last frame on the wire was zero, and it is recorded


def test_a_fifo_among_the_user_programs_is_skipped_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data" / "programs"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "fifo-user.toml")
    monkeypatch.setenv("ACUSTIM_DATA_DIR", str(tmp_path / "data"))
    out, err = io.StringIO(), io.StringIO()
    assert main(["programs"], out=out, err=err) == 0, err.getvalue()
    assert "fifo-user" not in out.getvalue() and err.getvalue() == ""
    assert main(["run", "fifo-user", "--virtual-time", "--no-record"], out=out, err=err) == 2
    assert 'program name = "fifo-user" is unknown' in err.getvalue()


def _cli(*argv: str, data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "acustim.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, ACUSTIM_DATA_DIR=str(data), PYTHONUNBUFFERED="1"),
    )


def _stderr_after_reader_quits(proc: subprocess.Popen[str], lines: int = 0) -> tuple[int, str]:
    """Read ``lines`` lines of the child's stdout, close it (the reader quits), then wait
    for the child; its exit code and stderr."""
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(lines):
        proc.stdout.readline()
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read()
    return proc.wait(timeout=60), err


def test_a_trace_pipe_whose_reader_quits_ends_the_trace_not_the_session(tmp_path: Path) -> None:
    store = tmp_path / "records.sqlite3"
    # 5 minutes of virtual time: far more trace than a pipe buffers, so the child is still
    # writing when the reader goes away
    proc = _cli(
        "run",
        "facial-muscle-tension",
        "--device",
        "sim:et312",
        "--level",
        "A=20",
        "--duration",
        "300",
        "--virtual-time",
        "--quiet",
        "--store",
        str(store),
        "--trace",
        "-",
        data=tmp_path,
    )
    code, err = _stderr_after_reader_quits(proc, lines=5)  # the reader quits mid-session
    assert code == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert "trace stopped" in err or "standard output failed" in err, err
    with RecordStore.open(store, read_only=True) as records:
        (info,) = records.sessions()
        assert info.outcome == "completed", info.reason
        assert "not confirmed" not in (info.reason or "")
        assert records.frames(info.id)[-1].zero


@pytest.mark.parametrize(
    "argv",
    [
        ("programs",),
        ("show", "tmj-jaw-pain-left"),
        ("screening",),
        ("devices",),
        ("validate", "waveforms/library/tmj-jaw-pain-left.toml"),
        ("--help",),
    ],
    ids=lambda argv: argv[0],
)
def test_output_to_a_pipe_whose_reader_quit_exits_quietly(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    # like `acustim programs | head -0`: the reader is gone at once
    code, err = _stderr_after_reader_quits(_cli(*argv, data=tmp_path))
    assert err == "", err
    assert code in (0, 141)  # quiet either way; 141 (SIGPIPE) when the pipe broke


def test_records_output_to_a_pipe_whose_reader_quit_exits_quietly(
    tmp_path: Path, recorded: Path
) -> None:
    code, err = _stderr_after_reader_quits(
        _cli("sessions", "--store", str(recorded), data=tmp_path)
    )
    assert code in (0, 141)
    assert err == ""


def test_a_json_trace_to_a_good_file_still_works(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "run",
            "facial-muscle-tension",
            "--device",
            "sim:et312",
            "--level",
            "A=20",
            "--duration",
            "2",
            "--virtual-time",
            "--quiet",
            "--no-record",
            "--trace",
            str(trace),
        ],
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    lines = [json.loads(ln) for ln in trace.read_text().splitlines()]
    assert lines and lines[-1]["zero"] is True
    assert oct(trace.stat().st_mode & 0o777) == "0o600"
