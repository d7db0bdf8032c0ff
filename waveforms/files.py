"""Program files: read a TOML program into a validated ``Program``, or say exactly why not.

Every error is a ``ProgramError`` whose message is one line::

    <path>:<line>: <where> <field> = <value> is <problem>; allowed <range with units>

``tomllib`` gives no line numbers, so on an error the text is scanned (lazily, only then) for
the table header or key that holds the bad value. The ranges here are program-format ranges,
device independent; ``validate_program`` applies the same rules to programs built in code.

This module never renders, never knows device units, and never decides what is safe: a
program that passes here may still be refused by the safety core for a given device, patient
or electrode placement.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from waveforms.errors import ProgramError
from waveforms.program import (
    Channel,
    Continuous,
    DenseDisperse,
    ElectrodeKind,
    EvidenceLevel,
    EvidenceMarker,
    EvidenceStatus,
    Intermittent,
    OnsetRule,
    Program,
    Ramp,
    Segment,
    Stage,
    source_key,
)
from waveforms.render import US_PER_S, seconds_to_us

__all__ = [
    "CHANNEL_NAME_PATTERN",
    "CORE_EVIDENCE",
    "ELECTRODE_AREA_CM2",
    "EVIDENCE_ABOUT",
    "FREQUENCY_HZ",
    "FREQUENCY_RANGE_HZ",
    "INTENSITY",
    "LOW_HIGH_S",
    "MAX_CHANNELS",
    "MAX_CURRENT_MA",
    "MAX_FILE_BYTES",
    "MAX_LEVEL_FRACTION",
    "MAX_NESTING",
    "MAX_PROGRAM_DURATION_S",
    "MAX_SEGMENTS_PER_CHANNEL",
    "ON_OFF_S",
    "PROGRAM_NAME_PATTERN",
    "PULSE_WIDTH_RANGE_US",
    "PULSE_WIDTH_US",
    "SEGMENT_DURATION_S",
    "SITE_PATTERN",
    "Range",
    "deepest_nesting",
    "derive_evidence",
    "find_line",
    "load_program",
    "parse_program",
    "validate_program",
]


@dataclass(frozen=True)
class Range:
    """A closed range ``lo..hi`` (or ``lo < x <= hi`` when ``lo_exclusive``) with its unit."""

    lo: float
    hi: float
    unit: str
    lo_exclusive: bool = False

    def __contains__(self, value: float) -> bool:
        if self.lo_exclusive:
            return self.lo < value <= self.hi
        return self.lo <= value <= self.hi  # NaN fails both comparisons, so it is refused

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.lo_exclusive:
            return f"{_number_text(self.lo)} < x <= {_number_text(self.hi)}{unit}"
        return f"{_number_text(self.lo)}..{_number_text(self.hi)}{unit}"


FREQUENCY_HZ = Range(0.5, 200.0, "Hz")
PULSE_WIDTH_US = Range(20.0, 1000.0, "us")
INTENSITY = Range(0.0, 1.0, "(fraction of the channel's treatment level)")
SEGMENT_DURATION_S = Range(0.1, 3600.0, "s")
ON_OFF_S = Range(0.1, 60.0, "s")
LOW_HIGH_S = Range(0.5, 60.0, "s")
MAX_LEVEL_FRACTION = Range(0.0, 1.0, "(fraction of the device maximum)", lo_exclusive=True)
MAX_CURRENT_MA = Range(0.0, 50.0, "mA", lo_exclusive=True)
ELECTRODE_AREA_CM2 = Range(0.0, 500.0, "cm^2", lo_exclusive=True)
# The same two ranges as plain (lo, hi) tuples, for the safety core's consistency checks.
FREQUENCY_RANGE_HZ = (FREQUENCY_HZ.lo, FREQUENCY_HZ.hi)
PULSE_WIDTH_RANGE_US = (PULSE_WIDTH_US.lo, PULSE_WIDTH_US.hi)
MAX_PROGRAM_DURATION_S = 3600.0
MAX_CHANNELS = 8
MAX_SEGMENTS_PER_CHANNEL = 500
MAX_SITES_PER_CHANNEL = 8
MAX_FILE_BYTES = 256 * 1024
MAX_LABEL_CHARS = 80
MAX_TITLE_CHARS = 120
MAX_TEXT_CHARS = 4000
MAX_EVIDENCE_MARKERS = 32
MAX_MARKER_SOURCES = 16
#: Tables and arrays nested deeper than this are refused (a program needs 4: channels, a
#: channel, its segments, a segment); far below what exhausts Python's stack.
MAX_NESTING = 16

#: What an ``[[evidence]]`` marker can be about.
EVIDENCE_ABOUT = (
    "points",
    "waveform",
    "frequency",
    "pulse_width",
    "intensity",
    "ceiling",
    "duration",
    "sessions",
    "timing",
    "onset",
)
#: A program is "sourced" only if each of these has a sourced marker (and no marker is a
#: practice default).
CORE_EVIDENCE = ("points", "waveform", "frequency", "pulse_width", "duration")
_EVIDENCE_STATUSES: tuple[EvidenceStatus, ...] = ("sourced", "practice-default")
_EVIDENCE_LEVELS: tuple[EvidenceLevel, ...] = ("sourced", "practice-default")
_ONSET_RULES: tuple[OnsetRule, ...] = ("bells-palsy",)
_STAGES: tuple[Stage, ...] = ("subacute", "chronic")
_EVIDENCE_KEYS = ("about", "status", "sources", "note")
_SOURCE_KEY_RULE = (
    "a source key in brackets, 1..32 letters, digits, '.', '_' or '-', then a space and the "
    'citation, e.g. "[Sung2021] Sung 2021, Healthcare 9:1497"'
)

PROGRAM_NAME_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
CHANNEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,7}")
# An acupoint (or site) code, then the side: L(eft), R(ight) or M(idline). "EX-HN5-R" works.
SITE_PATTERN = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*-[LRM]")
_MAX_NAME_CHARS = 64
_MAX_SITE_CHARS = 16

_PROGRAM_NAME_RULE = (
    f"a lowercase slug of a-z, 0-9 and single '-' (at most {_MAX_NAME_CHARS} characters), "
    'e.g. "tmj-jaw-pain-left"'
)
_CHANNEL_NAME_RULE = "1..8 characters of letters, digits, '-' or '_', e.g. \"A\""
_SITE_RULE = 'an acupoint code and a side L, R or M, e.g. "ST6-L", "EX-HN5-R", "GV20-M"'

# Per kind: every numeric field in the order documented, with its range and default
# (None = required). "kind" and "label" are allowed on every segment as well.
_KIND_FIELDS: dict[str, dict[str, tuple[Range, float | None]]] = {
    "continuous": {
        "duration_s": (SEGMENT_DURATION_S, None),
        "frequency_hz": (FREQUENCY_HZ, None),
        "pulse_width_us": (PULSE_WIDTH_US, None),
        "intensity": (INTENSITY, None),
    },
    "dense_disperse": {
        "duration_s": (SEGMENT_DURATION_S, None),
        "low_hz": (FREQUENCY_HZ, 2.0),
        "high_hz": (FREQUENCY_HZ, 100.0),
        "low_s": (LOW_HIGH_S, 3.0),
        "high_s": (LOW_HIGH_S, 3.0),
        "pulse_width_us": (PULSE_WIDTH_US, None),
        "intensity": (INTENSITY, None),
    },
    "intermittent": {
        "duration_s": (SEGMENT_DURATION_S, None),
        "frequency_hz": (FREQUENCY_HZ, None),
        "on_s": (ON_OFF_S, None),
        "off_s": (ON_OFF_S, None),
        "pulse_width_us": (PULSE_WIDTH_US, None),
        "intensity": (INTENSITY, None),
    },
    "ramp": {
        "duration_s": (SEGMENT_DURATION_S, None),
        "frequency_hz": (FREQUENCY_HZ, None),
        "pulse_width_us": (PULSE_WIDTH_US, None),
        "intensity_from": (INTENSITY, None),
        "intensity_to": (INTENSITY, None),
    },
}
_SEGMENT_CLASSES: dict[str, Callable[..., Segment]] = {
    "continuous": Continuous,
    "dense_disperse": DenseDisperse,
    "intermittent": Intermittent,
    "ramp": Ramp,
}
_KINDS_TEXT = ", ".join(f'"{k}"' for k in _KIND_FIELDS)
_TOP_KEYS = ("program", "segments", "channels", "evidence")
_PROGRAM_KEYS = (
    "name",
    "title",
    "indication",
    "description",
    "electrode",
    "electrode_area_cm2",
    "cautions",
    "sources",
    "evidence",
    "onset_rule",
    "stage",
)
_CHANNEL_KEYS = ("name", "sites", "max_level_fraction", "max_current_ma", "segments")
_ELECTRODES: tuple[ElectrodeKind, ...] = ("pad", "needle")
_MISSING = object()
_LONG_NUMBER = re.compile(r"[0-9_]{4300,}")
_SYNTAX_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")

# A place in the TOML document: table keys and array indexes, e.g. ("channels", 0, "segments", 2).
Path = tuple[str | int, ...]


# --------------------------------------------------------------------------- value text


def _dense_disperse_texts(
    low: float, high: float, given: Mapping[str, Any] | None = None
) -> tuple[_Raw, str]:
    """The value and the problem of a ``low_hz`` not below ``high_hz``, marking a value the
    file left to its default: ``150``, ``not below high_hz = 100 (default)``."""

    def text(field: str, value: float) -> str:
        default = given is not None and field not in given
        return _number_text(value) + (" (default)" if default else "")

    return _Raw(text("low_hz", low)), f"not below high_hz = {text('high_hz', high)}"


def _number_text(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


_DENSE_DISPERSE_RULE = (
    f"low_hz below high_hz, both {FREQUENCY_HZ} (the sparse rate, then the dense one; "
    "defaults 2 and 100)"
)


class _Raw(str):
    """Text shown as is in a message (a count or a summary), not as a quoted TOML string."""


def _value_text(value: object, depth: int = 0) -> str:
    """A value as it would be written in TOML, kept short and on one line (arrays nested
    deeper than two levels are shown as ``[...]``: never a recursion as deep as the value)."""
    if isinstance(value, _Raw):
        return str(value)
    if value is _MISSING:
        return "(missing)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        bits = value.bit_length()
        if bits > 100:  # too long to show; and beyond ~4300 digits Python refuses str()
            digits = len(str(abs(value))) if bits < 14000 else int(bits * math.log10(2)) + 1
            return f"(an integer of about {digits} digits)"
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, list):
        if depth >= 2:
            return "[...]" if value else "[]"
        shown = ", ".join(_value_text(v, depth + 1) for v in value[:3])
        return f"[{shown}, ...]" if len(value) > 3 else f"[{shown}]"
    if isinstance(value, dict):
        return "{table}"
    return " ".join(str(value).split())


def _quoted(values: Sequence[str]) -> str:
    return " or ".join(f'"{v}"' for v in values)


def _derive(markers: Sequence[EvidenceMarker]) -> tuple[EvidenceLevel, str]:
    """The evidence level the markers support, and why not "sourced" (empty if it is)."""
    if not markers:
        return "unstated", "there are no markers"
    given = {m.about for m in markers}
    defaults = [m.about for m in markers if m.status == "practice-default"]
    missing = [a for a in CORE_EVIDENCE if a not in given]
    if not defaults and not missing:
        return "sourced", ""
    parts = []
    if defaults:
        parts.append(
            ", ".join(defaults) + (" is" if len(defaults) == 1 else " are") + " a practice default"
        )
    if missing:
        parts.append(", ".join(missing) + (" has" if len(missing) == 1 else " have") + " no marker")
    return "practice-default", " and ".join(parts)


def derive_evidence(markers: Sequence[EvidenceMarker]) -> EvidenceLevel:
    """The evidence level a set of markers supports: "sourced" only when every parameter of
    ``CORE_EVIDENCE`` has a sourced marker and no marker is a practice default; "unstated"
    when there are no markers; otherwise "practice-default"."""
    return _derive(markers)[0]


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _nesting(data: Mapping[str, Any]) -> tuple[int, Path]:
    """How deep tables and arrays nest below the document (its own keys are level 1), and
    the path of the deepest one. Iterative: a value nested thousands deep costs no stack."""
    deepest: tuple[int, Path] = (0, ())
    stack: list[tuple[object, Path]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > deepest[0]:
            deepest = (len(path), path)
        if isinstance(value, dict):
            stack.extend(
                (v, (*path, str(k))) for k, v in value.items() if isinstance(v, dict | list)
            )
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value) if isinstance(v, dict | list))
    return deepest


# --------------------------------------------------------------------------- line locator


class _Locator:
    """Finds the line of a table header or key in valid TOML text.

    A small scanner: it skips comments and every kind of string, tracks bracket depth so
    that only top-level statements count, and resolves ``[[a.b]]`` headers to indexed paths
    the way TOML does (``b`` inside the *last* ``a``).
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self.headers: dict[Path, int] = {}
        self.keys: dict[tuple[Path, str], int] = {}
        self.deepest = (0, 1)  # (nesting depth of arrays and inline tables, its first line)
        self._counts: dict[Path, int] = {}
        self._scan()

    def line(self, table: Path, key: str | None = None) -> int:
        """The key's line, else its table's header line, else the nearest parent's; else 1."""
        if key is not None:
            if (table, key) in self.keys:
                return self.keys[(table, key)]
            # The key may itself be a table: [key], [[key]], or implied by [key.sub].
            prefix = (*table, key)
            below = [n for path, n in self.headers.items() if path[: len(prefix)] == prefix]
            if below:
                return min(below)
        path = table
        while path:
            if path in self.headers:
                return self.headers[path]
            parent, last = path[:-1], path[-1]
            if isinstance(last, str) and (parent, last) in self.keys:
                return self.keys[(parent, last)]
            path = parent
        return 1

    def _resolve(self, parts: list[str], is_array: bool) -> Path:
        path: Path = ()
        for part in parts[:-1]:
            path = (*path, part)
            if path in self._counts:
                path = (*path, self._counts[path] - 1)
        path = (*path, parts[-1])
        if not is_array:
            return path
        index = self._counts.get(path, 0)
        self._counts[path] = index + 1
        return (*path, index)

    def _scan(self) -> None:
        text, n = self._text, len(self._text)
        i, line, depth = 0, 1, 0
        statement_start = True
        table: Path = ()
        while i < n:
            c = text[i]
            if c == "\n":
                line += 1
                i += 1
                statement_start = statement_start or depth == 0
                continue
            if c in " \t\r":
                i += 1
                continue
            if c == "#":
                end = text.find("\n", i)
                i = n if end < 0 else end
                continue
            if depth == 0 and statement_start:
                statement_start = False
                if c == "[":
                    is_array = text.startswith("[[", i)
                    parts, i = self._read_key(i + (2 if is_array else 1), "]")
                    table = self._resolve(parts, is_array)
                    self.headers.setdefault(table, line)
                    end = text.find("\n", i)
                    i = n if end < 0 else end
                    continue
                parts, i = self._read_key(i, "=")
                if parts:
                    self.keys.setdefault((table, parts[0]), line)
                i += 1
                continue
            if c in "\"'":
                start = i
                i = self._skip_string(i)
                line += text.count("\n", start, i)
                continue
            if c in "[{":
                depth += 1
                if depth > self.deepest[0]:
                    self.deepest = (depth, line)
            elif c in "]}":
                depth -= 1
            i += 1

    def _read_key(self, i: int, stop: str) -> tuple[list[str], int]:
        """Read a (dotted, maybe quoted) key up to ``stop``; return its parts and stop's index."""
        text, n = self._text, len(self._text)
        parts: list[str] = []
        current = ""
        while i < n and text[i] not in (stop, "\n"):
            c = text[i]
            if c in "\"'":
                end = self._skip_string(i)
                current += text[i + 1 : end - 1]
                i = end
                continue
            if c == ".":
                parts.append(current.strip())
                current = ""
            else:
                current += c
            i += 1
        parts.append(current.strip())
        return parts, i

    def _skip_string(self, i: int) -> int:
        """The index just past the string literal that starts at ``i``."""
        text, n = self._text, len(self._text)
        quote = text[i]
        if text.startswith(quote * 3, i):
            j = i + 3
            while j < n:
                if quote == '"' and text[j] == "\\":
                    j += 2
                elif text.startswith(quote * 3, j):
                    j += 3
                    # Up to two quotes may directly precede the closing delimiter.
                    extra = 0
                    while j < n and text[j] == quote and extra < 2:
                        j += 1
                        extra += 1
                    return j
                else:
                    j += 1
            return n
        j = i + 1
        while j < n and text[j] != quote and text[j] != "\n":
            j += 2 if quote == '"' and text[j] == "\\" else 1
        return min(j + 1, n)


# --------------------------------------------------------------------------- the parser


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self._text = text
        self._source = source
        self._locator: _Locator | None = None

    # -- errors

    def _locate(self) -> _Locator:
        if self._locator is None:
            self._locator = _Locator(self._text)
        return self._locator

    def _line(self, table: Path, key: str | None) -> int:
        return self._locate().line(table, key)

    def _fail(
        self,
        table: Path,
        key: str | None,
        where: str,
        field: str,
        value: object,
        problem: str,
        allowed: str,
    ) -> NoReturn:
        line = self._line(table, key)
        raise ProgramError(
            f"{self._source}:{line}: {where} {field} = {_value_text(value)} is {problem}; "
            f"allowed {allowed}"
        )

    def _unknown_keys(
        self, table: Mapping[str, Any], path: Path, where: str, allowed: Sequence[str]
    ) -> None:
        for key, value in table.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self._fail(
                    path,
                    key,
                    where,
                    key,
                    value,
                    f"an unknown key{hint}",
                    "keys " + ", ".join(allowed),
                )

    # -- typed getters

    def _number(
        self,
        table: Mapping[str, Any],
        path: Path,
        where: str,
        field: str,
        allowed: Range,
        default: float | None = None,
    ) -> float:
        value = table.get(field, _MISSING)
        if value is _MISSING:
            if default is not None:
                return default
            self._fail(path, field, where, field, value, "required", str(allowed))
        if isinstance(value, bool) or not isinstance(value, int | float):
            problem = f"{_type_name(value)}, not a number"
            self._fail(path, field, where, field, value, problem, str(allowed))
        if value not in allowed:
            self._fail(path, field, where, field, value, "out of range", str(allowed))
        return float(value)

    def _text_field(
        self,
        table: Mapping[str, Any],
        path: Path,
        where: str,
        field: str,
        *,
        required: bool,
        max_chars: int,
    ) -> str:
        value = table.get(field, _MISSING)
        allowed = f"a string of 1..{max_chars} characters"
        if value is _MISSING:
            if not required:
                return ""
            self._fail(path, field, where, field, value, "required", allowed)
        if not isinstance(value, str):
            self._fail(
                path, field, where, field, value, f"{_type_name(value)}, not a string", allowed
            )
        if not value.strip() and required:
            self._fail(path, field, where, field, value, "empty", allowed)
        if len(value) > max_chars:
            self._fail(path, field, where, field, value, "too long", allowed)
        return value

    def _text_list(
        self, table: Mapping[str, Any], path: Path, where: str, field: str
    ) -> tuple[str, ...]:
        value = table.get(field, [])
        allowed = f"an array of strings of 1..{MAX_TEXT_CHARS} characters"
        if not isinstance(value, list):
            self._fail(
                path, field, where, field, value, f"{_type_name(value)}, not an array", allowed
            )
        for item in value:
            if not isinstance(item, str):
                self._fail(
                    path, field, where, field, item, f"{_type_name(item)}, not a string", allowed
                )
            if not item.strip() or len(item) > MAX_TEXT_CHARS:
                problem = "empty" if not item.strip() else "too long"
                self._fail(path, field, where, field, item, problem, allowed)
        return tuple(value)

    def _tables(
        self, parent: Mapping[str, Any], parent_path: Path, where: str, field: str, allowed: str
    ) -> list[dict[str, Any]]:
        value = parent.get(field)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self._fail(parent_path, field, where, field, value, "not an array of tables", allowed)
        return value

    # -- the document

    def program(self) -> Program:
        size = len(self._text.encode("utf-8"))
        if size > MAX_FILE_BYTES:
            raise ProgramError(
                f"{self._source}:1: file size = {size} bytes is too large; "
                f"allowed at most {MAX_FILE_BYTES} bytes (256 KiB)"
            )
        try:
            data = tomllib.loads(self._text)
        except tomllib.TOMLDecodeError as exc:
            raise ProgramError(self._syntax_message(str(exc))) from None
        except RecursionError:
            # arrays nested thousands deep exhaust the parser's stack; name the place instead
            depth, line = self._locate().deepest
            raise ProgramError(self._nesting_message(depth, line)) from None
        except ValueError:
            # Python refuses to read an integer of thousands of digits (int_max_str_digits)
            match = _LONG_NUMBER.search(self._text)
            digits, line = 0, 1
            if match:
                digits, line = len(match.group()), self._text.count("\n", 0, match.start()) + 1
            raise ProgramError(
                f"{self._source}:{line}: TOML number = ({digits} digits) is too long to read; "
                "allowed numbers within the ranges of the program format"
            ) from None

        depth, deepest = _nesting(data)
        if depth > MAX_NESTING:
            # e.g. arrays nested hundreds deep: tomllib reads them, a message must not recurse.
            # Say the depth as written (brackets) where that is the deep part, else in tables.
            brackets, line = self._locate().deepest
            if brackets <= MAX_NESTING:
                last = deepest[-1]
                brackets = depth
                line = self._line(deepest[:-1], last if isinstance(last, str) else None)
            raise ProgramError(self._nesting_message(brackets, line))

        self._unknown_keys(data, (), "top-level", _TOP_KEYS)
        meta = data.get("program", _MISSING)
        if not isinstance(meta, dict):
            problem = "required" if meta is _MISSING else f"{_type_name(meta)}, not a table"
            self._fail((), "program", "top-level", "program", meta, problem, "a [program] table")
        fields = self._program_fields(meta)

        shared: tuple[Segment, ...] | None = None
        if "segments" in data:
            tables = self._tables(data, (), "top-level", "segments", "[[segments]] tables")
            shared = self._segment_list(tables, ("segments",), "program")

        if "channels" not in data:
            self._fail(
                (),
                None,
                "top-level",
                "channels",
                _MISSING,
                "required",
                f"1..{MAX_CHANNELS} [[channels]] tables",
            )
        channel_tables = self._tables(
            data, (), "top-level", "channels", f"1..{MAX_CHANNELS} [[channels]] tables"
        )
        count = len(channel_tables)
        if not 1 <= count <= MAX_CHANNELS:
            problem = "too few" if count < 1 else "too many"
            self._fail(
                ("channels", min(count, MAX_CHANNELS)),
                None,
                "program",
                "channels",
                _Raw(f"{count} channels"),
                problem,
                f"1..{MAX_CHANNELS} channels",
            )
        channels: list[Channel] = []
        first_index: dict[str, int] = {}
        for index, table in enumerate(channel_tables):
            channel = self._channel(table, index, shared)
            folded = channel.name.casefold()
            if folded in first_index:
                other = channels[first_index[folded]].name
                other_line = self._line(("channels", first_index[folded]), "name")
                self._fail(
                    ("channels", index),
                    "name",
                    f"channel {index + 1}",
                    "name",
                    channel.name,
                    f"a duplicate of channel {other} (line {other_line})",
                    "a unique name per channel (case-insensitive)",
                )
            first_index[folded] = index
            channels.append(channel)
        markers = self._evidence_markers(data, fields["sources"])
        fields["evidence"] = self._evidence_level(meta, markers)
        return Program(channels=tuple(channels), evidence_markers=markers, **fields)

    def _evidence_markers(
        self, data: Mapping[str, Any], sources: tuple[str, ...]
    ) -> tuple[EvidenceMarker, ...]:
        if "evidence" not in data:
            return ()
        allowed_tables = f"1..{MAX_EVIDENCE_MARKERS} [[evidence]] tables"
        tables = self._tables(data, (), "top-level", "evidence", allowed_tables)
        if len(tables) > MAX_EVIDENCE_MARKERS:
            self._fail(
                ("evidence", MAX_EVIDENCE_MARKERS),
                None,
                "top-level",
                "evidence",
                _Raw(f"{len(tables)} markers"),
                "too many",
                allowed_tables,
            )
        keys = {k.casefold(): k for k in (source_key(s) for s in sources) if k is not None}
        known = ", ".join(keys.values()) or "none (give sources as [key] citation)"
        markers: list[EvidenceMarker] = []
        first_line: dict[str, int] = {}
        for index, table in enumerate(tables):
            path: Path = ("evidence", index)
            where = f"evidence {index + 1}"
            self._unknown_keys(table, path, where, _EVIDENCE_KEYS)
            about = table.get("about", _MISSING)
            if about not in EVIDENCE_ABOUT:
                problem = "required" if about is _MISSING else "not a parameter name"
                self._fail(path, "about", where, "about", about, problem, _quoted(EVIDENCE_ABOUT))
            where = f"evidence {index + 1} ({about})"
            if about in first_line:
                self._fail(
                    path,
                    "about",
                    where,
                    "about",
                    about,
                    f"a duplicate of the marker on line {first_line[about]}",
                    "one marker per parameter",
                )
            first_line[about] = self._line(path, "about")
            status = table.get("status", _MISSING)
            if status not in _EVIDENCE_STATUSES:
                problem = "required" if status is _MISSING else "not an evidence status"
                self._fail(
                    path, "status", where, "status", status, problem, _quoted(_EVIDENCE_STATUSES)
                )
            refs = self._text_list(table, path, where, "sources")
            refs_rule = f"0..{MAX_MARKER_SOURCES} keys of this program's sources ({known})"
            if len(refs) > MAX_MARKER_SOURCES:
                self._fail(path, "sources", where, "sources", list(refs), "too many", refs_rule)
            for ref in refs:
                if ref.casefold() not in keys:
                    self._fail(
                        path, "sources", where, "sources", ref, "not a source key", refs_rule
                    )
            if status == "sourced" and not refs:
                self._fail(
                    path,
                    "sources",
                    where,
                    "sources",
                    list(refs) if "sources" in table else _MISSING,
                    'required for status = "sourced"',
                    refs_rule.replace("0..", "1..", 1),
                )
            note = self._text_field(
                table, path, where, "note", required=False, max_chars=MAX_TEXT_CHARS
            )
            markers.append(
                EvidenceMarker(
                    about=about,
                    status=status,
                    sources=tuple(keys[r.casefold()] for r in refs),
                    note=note,
                )
            )
        return tuple(markers)

    def _evidence_level(
        self, meta: Mapping[str, Any], markers: tuple[EvidenceMarker, ...]
    ) -> EvidenceLevel:
        derived, why_not = _derive(markers)
        declared = meta.get("evidence", _MISSING)
        if declared is _MISSING:
            return derived
        path: Path = ("program",)
        if declared not in _EVIDENCE_LEVELS:
            self._fail(
                path,
                "evidence",
                "program",
                "evidence",
                declared,
                "not an evidence level",
                _quoted(_EVIDENCE_LEVELS),
            )
        if declared == "sourced" and derived != "sourced":
            self._fail(
                path,
                "evidence",
                "program",
                "evidence",
                declared,
                f"not supported by the [[evidence]] markers ({why_not})",
                '"practice-default", or a sourced marker for each of '
                + ", ".join(CORE_EVIDENCE)
                + " and no practice default",
            )
        level: EvidenceLevel = "sourced" if declared == "sourced" else "practice-default"
        return level

    def _nesting_message(self, depth: int, line: int) -> str:
        return (
            f"{self._source}:{line}: TOML nesting = {depth} levels is too deep; allowed at most "
            f"{MAX_NESTING} levels of arrays and tables (a program file needs 4)"
        )

    def _syntax_message(self, message: str) -> str:
        match = _SYNTAX_POSITION.search(message)
        if match:
            line, column = int(match.group(1)), int(match.group(2))
            message = message[: match.start()]
        else:
            # tomllib says "(at end of document)": point at the last line.
            message = message.replace("(at end of document)", "").strip()
            line, column = self._text.count("\n") + 1, 1
            message += " (at end of document)"
        lines = self._text.splitlines()
        excerpt = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        return (
            f"{self._source}:{line}: TOML text at column {column} = {_value_text(excerpt)} "
            f"is invalid: {message}; allowed TOML 1.0 (https://toml.io/en/v1.0.0)"
        )

    def _program_fields(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        path: Path = ("program",)
        where = "program"
        self._unknown_keys(meta, path, where, _PROGRAM_KEYS)
        name = self._text_field(meta, path, where, "name", required=True, max_chars=_MAX_NAME_CHARS)
        if not PROGRAM_NAME_PATTERN.fullmatch(name):
            self._fail(path, "name", where, "name", name, "not a slug", _PROGRAM_NAME_RULE)
        electrode = meta.get("electrode", _MISSING)
        if electrode not in _ELECTRODES:
            problem = "required" if electrode is _MISSING else "not an electrode kind"
            self._fail(
                path, "electrode", where, "electrode", electrode, problem, '"pad" or "needle"'
            )
        area: float | None = None
        if "electrode_area_cm2" in meta:
            area = self._number(meta, path, where, "electrode_area_cm2", ELECTRODE_AREA_CM2)
        sources = self._text_list(meta, path, where, "sources")
        seen_keys: set[str] = set()
        for text in sources:
            key = source_key(text)
            if key is None and text.startswith("["):
                self._fail(
                    path, "sources", where, "sources", text, "a malformed key", _SOURCE_KEY_RULE
                )
            if key is not None and key.casefold() in seen_keys:
                self._fail(
                    path,
                    "sources",
                    where,
                    "sources",
                    key,
                    "a duplicate source key",
                    _SOURCE_KEY_RULE,
                )
            if key is not None:
                seen_keys.add(key.casefold())
        onset_rule = meta.get("onset_rule", "")
        if onset_rule != "" and onset_rule not in _ONSET_RULES:
            self._fail(
                path,
                "onset_rule",
                where,
                "onset_rule",
                onset_rule,
                "not an onset rule",
                _quoted(_ONSET_RULES),
            )
        stage = meta.get("stage", "")
        if stage != "" and stage not in _STAGES:
            self._fail(path, "stage", where, "stage", stage, "not a stage", _quoted(_STAGES))
        if stage and not onset_rule:
            self._fail(
                path,
                "stage",
                where,
                "stage",
                stage,
                "set without an onset_rule",
                'an onset_rule (e.g. "bells-palsy") whenever a stage is given',
            )
        return {
            "name": name,
            "title": self._text_field(
                meta, path, where, "title", required=True, max_chars=MAX_TITLE_CHARS
            ),
            "indication": self._text_field(
                meta, path, where, "indication", required=True, max_chars=MAX_TEXT_CHARS
            ),
            "description": self._text_field(
                meta, path, where, "description", required=False, max_chars=MAX_TEXT_CHARS
            ),
            "electrode": electrode,
            "electrode_area_cm2": area,
            "cautions": self._text_list(meta, path, where, "cautions"),
            "sources": sources,
            "onset_rule": onset_rule,
            "stage": stage,
        }

    def _segment_list(
        self, tables: list[dict[str, Any]], path: Path, owner: str
    ) -> tuple[Segment, ...]:
        """Parse one [[segments]] array: each segment, then the count and the total length."""
        count = len(tables)
        if count > MAX_SEGMENTS_PER_CHANNEL:
            self._fail(
                (*path, MAX_SEGMENTS_PER_CHANNEL),
                None,
                owner,
                "segments",
                _Raw(f"{count} segments"),
                "too many",
                f"1..{MAX_SEGMENTS_PER_CHANNEL} segments per channel",
            )
        segments = tuple(
            self._segment(table, (*path, index), f"{owner} segment {index + 1}")
            for index, table in enumerate(tables)
        )
        if not segments:
            self._fail(
                path,
                None,
                owner,
                "segments",
                _Raw("0 segments"),
                "too few",
                f"1..{MAX_SEGMENTS_PER_CHANNEL} segments per channel",
            )
        total_us = 0
        for index, segment in enumerate(segments):
            total_us += seconds_to_us(segment.duration_s)
            if total_us > MAX_PROGRAM_DURATION_S * US_PER_S:
                total_s = sum(s.duration_s for s in segments)
                self._fail(
                    (*path, index),
                    "duration_s",
                    owner,
                    "total duration_s",
                    total_s,
                    f"too long (passes the limit at segment {index + 1})",
                    f"at most {_number_text(MAX_PROGRAM_DURATION_S)} s per channel and program",
                )
        return segments

    def _segment(self, table: Mapping[str, Any], path: Path, where: str) -> Segment:
        kind = table.get("kind", _MISSING)
        if not isinstance(kind, str) or kind not in _KIND_FIELDS:
            problem = "required" if kind is _MISSING else "not a segment kind"
            self._fail(path, "kind", where, "kind", kind, problem, _KINDS_TEXT)
        where = f"{where} ({kind})"
        fields = _KIND_FIELDS[kind]
        self._unknown_keys(table, path, where, ("kind", *fields, "label"))
        values = {
            field: self._number(table, path, where, field, allowed, default)
            for field, (allowed, default) in fields.items()
        }
        if kind == "dense_disperse" and not values["low_hz"] < values["high_hz"]:
            # at the key the file gives (a default is not in the file): low_hz, else high_hz
            key = "low_hz" if "low_hz" in table or "high_hz" not in table else "high_hz"
            low, problem = _dense_disperse_texts(values["low_hz"], values["high_hz"], table)
            self._fail(path, key, where, "low_hz", low, problem, _DENSE_DISPERSE_RULE)
        label = self._text_field(
            table, path, where, "label", required=False, max_chars=MAX_LABEL_CHARS
        )
        return _SEGMENT_CLASSES[kind](label=label, **values)

    def _channel(
        self, table: Mapping[str, Any], index: int, shared: tuple[Segment, ...] | None
    ) -> Channel:
        path: Path = ("channels", index)
        where = f"channel {index + 1}"
        self._unknown_keys(table, path, where, _CHANNEL_KEYS)
        name = self._text_field(table, path, where, "name", required=True, max_chars=8)
        if not CHANNEL_NAME_PATTERN.fullmatch(name):
            self._fail(path, "name", where, "name", name, "not a channel name", _CHANNEL_NAME_RULE)
        where = f"channel {name}"

        sites = table.get("sites", _MISSING)
        sites_rule = f"1..{MAX_SITES_PER_CHANNEL} sites, each {_SITE_RULE}"
        if sites is _MISSING or not isinstance(sites, list):
            problem = "required" if sites is _MISSING else f"{_type_name(sites)}, not an array"
            self._fail(path, "sites", where, "sites", sites, problem, sites_rule)
        if not 1 <= len(sites) <= MAX_SITES_PER_CHANNEL:
            problem = "too few" if not sites else "too many"
            self._fail(path, "sites", where, "sites", sites, problem, sites_rule)
        for site in sites:
            if not isinstance(site, str):
                problem = f"{_type_name(site)}, not a string"
                self._fail(path, "sites", where, "sites", site, problem, sites_rule)
            if len(site) > _MAX_SITE_CHARS or not SITE_PATTERN.fullmatch(site):
                self._fail(path, "sites", where, "sites", site, "not a site code", sites_rule)
        if len(set(sites)) != len(sites):
            twice = next(s for s in sites if sites.count(s) > 1)
            self._fail(path, "sites", where, "sites", twice, "listed twice", sites_rule)

        level = self._number(table, path, where, "max_level_fraction", MAX_LEVEL_FRACTION, 1.0)
        current: float | None = None
        if "max_current_ma" in table:
            current = self._number(table, path, where, "max_current_ma", MAX_CURRENT_MA)

        if "segments" in table:
            tables = self._tables(table, path, where, "segments", "[[channels.segments]] tables")
            segments = self._segment_list(tables, (*path, "segments"), where)
        elif shared is not None:
            segments = shared
        else:
            self._fail(
                path,
                None,
                where,
                "segments",
                _MISSING,
                "required",
                f"1..{MAX_SEGMENTS_PER_CHANNEL} [[channels.segments]] here, "
                "or a program-level [[segments]] array",
            )
        return Channel(
            name=name,
            sites=tuple(sites),
            segments=segments,
            max_level_fraction=level,
            max_current_ma=current,
        )


# --------------------------------------------------------------------------- public API


def find_line(text: str, table: Sequence[str | int], key: str | None = None) -> int:
    """The line of ``key`` in ``table`` of valid program TOML (else the table's header, else
    1); e.g. ``find_line(text, ("channels", 0), "sites")`` for the first channel's sites.

    For messages that point into a file after it loaded, such as placement refusals."""
    return _Locator(text).line(tuple(table), key)


def deepest_nesting(text: str) -> tuple[int, int]:
    """How deep arrays and inline tables nest in TOML ``text`` (even text too deep for
    ``tomllib``), and the line where that depth is first reached: for one-line messages
    about other TOML files (a screening file)."""
    return _Locator(text).deepest


def parse_program(text: str, source: str = "<string>") -> Program:
    """Parse and validate program TOML; ``source`` names the text in error messages."""
    return _Parser(text, source).program()


def load_program(path: str | os.PathLike[str]) -> Program:
    """Load and validate a program file; the result records ``source_path``.

    Files over 256 KiB are refused before they are read in full or parsed.
    """
    shown = os.fspath(path)

    def not_regular(mode: int) -> ProgramError:
        return ProgramError(
            f"{shown}: file = {_value_text(shown)} is {_file_kind(mode)}, not a regular file; "
            "allowed a regular TOML program file"
        )

    try:
        # A FIFO would block open() until some writer came, a device may never end: only a
        # regular file is read. Checked before opening, and on the open file (the path may
        # have changed in between; O_NONBLOCK keeps that open from waiting on a FIFO).
        mode = os.stat(shown).st_mode
        if not stat.S_ISREG(mode):
            raise not_regular(mode)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        with os.fdopen(os.open(shown, flags), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise not_regular(info.st_mode)
            size = info.st_size
            data = b"" if size > MAX_FILE_BYTES else handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ProgramError(
            f"{shown}: file = {_value_text(shown)} cannot be read ({reason}); "
            "allowed a readable TOML program file"
        ) from None
    size = max(size, len(data))
    if size > MAX_FILE_BYTES:
        raise ProgramError(
            f"{shown}:1: file size = {size} bytes is too large; "
            f"allowed at most {MAX_FILE_BYTES} bytes (256 KiB)"
        )
    try:
        text = data.decode("utf-8-sig")  # tolerate the BOM some editors write
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ProgramError(
            f"{shown}:{line}: file byte = 0x{data[exc.start]:02x} is not UTF-8 text; "
            "allowed UTF-8 encoded TOML"
        ) from None
    return replace(parse_program(text, shown), source_path=shown)


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _model_problem(value: float, allowed: Range) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{_type_name(value)}, not a number"
    return None if value in allowed else "out of range"


def validate_program(program: Program) -> None:
    """Check a ``Program`` built in code against the same rules as a program file.

    Raises ``ProgramError`` with a one-line message naming the program (its source path or
    name), channel, segment, field, value and allowed range.
    """
    source = program.source_path or program.name or "<program>"

    def fail(where: str, field: str, value: object, problem: str, allowed: str) -> NoReturn:
        raise ProgramError(
            f"{source}: {where} {field} = {_value_text(value)} is {problem}; allowed {allowed}"
        )

    if not PROGRAM_NAME_PATTERN.fullmatch(program.name) or len(program.name) > _MAX_NAME_CHARS:
        fail("program", "name", program.name, "not a slug", _PROGRAM_NAME_RULE)
    for field in ("title", "indication"):
        if not getattr(program, field).strip():
            fail("program", field, getattr(program, field), "empty", "a non-empty string")
    if program.electrode not in _ELECTRODES:
        fail(
            "program", "electrode", program.electrode, "not an electrode kind", '"pad" or "needle"'
        )
    if program.electrode_area_cm2 is not None:
        problem = _model_problem(program.electrode_area_cm2, ELECTRODE_AREA_CM2)
        if problem:
            fail(
                "program",
                "electrode_area_cm2",
                program.electrode_area_cm2,
                problem,
                str(ELECTRODE_AREA_CM2),
            )
    if not 1 <= len(program.channels) <= MAX_CHANNELS:
        fail(
            "program",
            "channels",
            _Raw(f"{len(program.channels)} channels"),
            "out of range",
            f"1..{MAX_CHANNELS} channels",
        )

    seen: set[str] = set()
    for channel in program.channels:
        where = f"channel {channel.name}"
        if not CHANNEL_NAME_PATTERN.fullmatch(channel.name):
            fail(where, "name", channel.name, "not a channel name", _CHANNEL_NAME_RULE)
        if channel.name.casefold() in seen:
            fail(where, "name", channel.name, "a duplicate", "a unique name per channel")
        seen.add(channel.name.casefold())
        sites_rule = f"1..{MAX_SITES_PER_CHANNEL} sites, each {_SITE_RULE}"
        if not 1 <= len(channel.sites) <= MAX_SITES_PER_CHANNEL:
            fail(where, "sites", list(channel.sites), "out of range", sites_rule)
        for site in channel.sites:
            if len(site) > _MAX_SITE_CHARS or not SITE_PATTERN.fullmatch(site):
                fail(where, "sites", site, "not a site code", sites_rule)
        if len(set(channel.sites)) != len(channel.sites):
            fail(where, "sites", list(channel.sites), "listing a site twice", sites_rule)
        problem = _model_problem(channel.max_level_fraction, MAX_LEVEL_FRACTION)
        if problem:
            fail(
                where,
                "max_level_fraction",
                channel.max_level_fraction,
                problem,
                str(MAX_LEVEL_FRACTION),
            )
        if channel.max_current_ma is not None:
            problem = _model_problem(channel.max_current_ma, MAX_CURRENT_MA)
            if problem:
                fail(where, "max_current_ma", channel.max_current_ma, problem, str(MAX_CURRENT_MA))
        count = len(channel.segments)
        if not 1 <= count <= MAX_SEGMENTS_PER_CHANNEL:
            fail(
                where,
                "segments",
                _Raw(f"{count} segments"),
                "out of range",
                f"1..{MAX_SEGMENTS_PER_CHANNEL} segments per channel",
            )
        total_us = 0
        for number, segment in enumerate(channel.segments, start=1):
            seg_where = f"{where} segment {number} ({segment.kind})"
            for field, (allowed, _default) in _KIND_FIELDS[segment.kind].items():
                value = getattr(segment, field)
                problem = _model_problem(value, allowed)
                if problem:
                    fail(seg_where, field, value, problem, str(allowed))
            if isinstance(segment, DenseDisperse) and not segment.low_hz < segment.high_hz:
                low, problem = _dense_disperse_texts(segment.low_hz, segment.high_hz)
                fail(seg_where, "low_hz", low, problem, _DENSE_DISPERSE_RULE)
            if len(segment.label) > MAX_LABEL_CHARS:
                fail(
                    seg_where,
                    "label",
                    segment.label,
                    "too long",
                    f"a string of 0..{MAX_LABEL_CHARS} characters",
                )
            total_us += seconds_to_us(segment.duration_s)
        if total_us > MAX_PROGRAM_DURATION_S * US_PER_S:
            fail(
                where,
                "total duration_s",
                total_us / US_PER_S,
                "too long",
                f"at most {_number_text(MAX_PROGRAM_DURATION_S)} s per channel and program",
            )

    keys = {k.casefold() for k in program.source_keys}
    if len(program.evidence_markers) > MAX_EVIDENCE_MARKERS:
        fail(
            "program",
            "evidence markers",
            _Raw(f"{len(program.evidence_markers)} markers"),
            "too many",
            f"at most {MAX_EVIDENCE_MARKERS}",
        )
    seen_about: set[str] = set()
    for marker in program.evidence_markers:
        where = f"evidence ({marker.about})"
        if marker.about not in EVIDENCE_ABOUT:
            fail("evidence", "about", marker.about, "not a parameter name", _quoted(EVIDENCE_ABOUT))
        if marker.about in seen_about:
            fail(where, "about", marker.about, "a duplicate", "one marker per parameter")
        seen_about.add(marker.about)
        if marker.status not in _EVIDENCE_STATUSES:
            fail(
                where,
                "status",
                marker.status,
                "not an evidence status",
                _quoted(_EVIDENCE_STATUSES),
            )
        refs_rule = f"0..{MAX_MARKER_SOURCES} keys of this program's sources"
        if len(marker.sources) > MAX_MARKER_SOURCES:
            fail(where, "sources", list(marker.sources), "too many", refs_rule)
        for ref in marker.sources:
            if ref.casefold() not in keys:
                fail(where, "sources", ref, "not a source key", refs_rule)
        if marker.status == "sourced" and not marker.sources:
            fail(where, "sources", _MISSING, 'required for status = "sourced"', refs_rule)
    derived, why_not = _derive(program.evidence_markers)
    if program.evidence not in (*_EVIDENCE_LEVELS, "unstated"):
        fail(
            "program",
            "evidence",
            program.evidence,
            "not an evidence level",
            _quoted(_EVIDENCE_LEVELS),
        )
    if program.evidence == "sourced" and derived != "sourced":
        fail(
            "program",
            "evidence",
            program.evidence,
            f"not supported by the evidence markers ({why_not})",
            '"practice-default"',
        )
    if program.evidence == "unstated" and program.evidence_markers:
        fail(
            "program",
            "evidence",
            program.evidence,
            "unstated despite markers",
            _quoted(_EVIDENCE_LEVELS),
        )
    if program.onset_rule not in ("", *_ONSET_RULES):
        fail(
            "program", "onset_rule", program.onset_rule, "not an onset rule", _quoted(_ONSET_RULES)
        )
    if program.stage not in ("", *_STAGES):
        fail("program", "stage", program.stage, "not a stage", _quoted(_STAGES))
    if program.stage and not program.onset_rule:
        fail("program", "stage", program.stage, "set without an onset_rule", "an onset_rule")
