"""Program files: read a TOML program into a validated ``Program``, or say exactly why not.

Every error is a ``ProgramError`` whose message is one line::

    <path>:<line>: <where> <field> = <value> is <problem>; allowed <range with units>

The loader reads the file's *keys*: TOML syntax, size and nesting, unknown keys (with "did
you mean"), required keys, tables and arrays of tables. It builds a ``Program`` of the values
as written, then checks it with ``waveforms.validate``, the one rule set every program passes
(ranges, kinds, names, sites, counts, totals, evidence), and points each problem's *path* at
the file's line. ``tomllib`` gives no line numbers, so on an error the text is scanned (lazily,
only then) for the table header or key that holds the bad value.

This module never renders, never knows device units, and never decides what is safe: a
program that passes here may still be refused by the safety core for a given device, patient
or electrode placement.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from waveforms.errors import ProgramError
from waveforms.program import (
    Channel,
    Entry,
    EvidenceLevel,
    EvidenceMarker,
    ManualEntry,
    Program,
    Segment,
    source_key,
)
from waveforms.validate import (
    CHANNEL_FIELDS,
    CHANNEL_NAME_PATTERN,
    CORE_EVIDENCE,
    ELECTRODE_AREA_CM2,
    EVIDENCE_ABOUT,
    EVIDENCE_LEVELS,
    FREQUENCY_HZ,
    FREQUENCY_RANGE_HZ,
    INTENSITY,
    KINDS_TEXT,
    LOW_HIGH_S,
    MANUAL_FIELDS,
    MARKER_FIELDS,
    MAX_CHANNELS,
    MAX_CURRENT_MA,
    MAX_EVIDENCE_MARKERS,
    MAX_LEVEL_FRACTION,
    MAX_PROGRAM_DURATION_S,
    MAX_SEGMENTS_PER_CHANNEL,
    MAX_SITES_PER_CHANNEL,
    MISSING,
    ON_OFF_S,
    PROGRAM_FIELDS,
    PROGRAM_NAME_PATTERN,
    PULSE_WIDTH_RANGE_US,
    PULSE_WIDTH_US,
    SEGMENT_DURATION_S,
    SEGMENT_FIELDS,
    SEGMENT_KINDS,
    SITE_PATTERN,
    InvalidProgramError,
    Path,
    Problem,
    Range,
    Raw,
    Spec,
    allowed_of,
    channel_where,
    check_entry,
    check_program,
    derive_evidence,
    marker_where,
    number_fields,
    number_text,
    quoted,
    required_fields,
    segment_problems,
    type_name,
    validate_program,
    value_text,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

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
    "MAX_EVIDENCE_MARKERS",
    "MAX_FILE_BYTES",
    "MAX_LEVEL_FRACTION",
    "MAX_NESTING",
    "MAX_PROGRAM_DURATION_S",
    "MAX_SEGMENTS_PER_CHANNEL",
    "MAX_SITES_PER_CHANNEL",
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
    "load_entry",
    "load_program",
    "parse_entry",
    "parse_program",
    "validate_program",
]

MAX_FILE_BYTES = 256 * 1024
#: Tables and arrays nested deeper than this are refused (a program needs 4: channels, a
#: channel, its segments, a segment); far below what exhausts Python's stack.
MAX_NESTING = 16

# The file's keys: the model's fields, by table (in the documented order).
_TOP_KEYS = ("program", "segments", "channels", "evidence")
_PROGRAM_KEYS = tuple(s.name for s in PROGRAM_FIELDS)
_PROGRAM_REQUIRED = ("name", "title", "indication", "electrode")
#: ``kind`` in ``[program]``: "ea" (the default, a program with channels) or "manual".
_KINDS = ("ea", "manual")
_KINDS_TEXT = (
    '"ea" (the default: a program with channels) or "manual" (a manual-acupuncture entry: '
    "points and why no EA, no channels, no current)"
)
_MANUAL_KEYS = tuple(s.name for s in MANUAL_FIELDS)
_MANUAL_REQUIRED = ("name", "title", "indication", "points", "why_no_ea")
_CHANNEL_FIELD_NAMES = tuple(s.name for s in CHANNEL_FIELDS)
_CHANNEL_KEYS = (*_CHANNEL_FIELD_NAMES, "segments")
_EVIDENCE_KEYS = tuple(s.name for s in MARKER_FIELDS)
#: Where the file's words differ from the model's, by the problem's path: (where, field).
_FILE_WORDS: dict[Path, tuple[str, str]] = {("evidence_markers",): ("top-level", "evidence")}
_LONG_NUMBER = re.compile(r"[0-9_]{4300,}")
_SYNTAX_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_D = TypeVar("_D", bound="DataclassInstance")


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


def _given(table: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The keys of ``table`` among ``names``, as written (arrays as tuples): the validator
    judges the values, types included."""
    return {n: tuple(v) if isinstance(v := table[n], list) else v for n in names if n in table}


def _file_path(path: Path) -> Path:
    """Where a program's value lives in its file: ``("name",)`` in ``[program]``,
    ``evidence_markers`` in ``[[evidence]]``; channels and segments as they are."""
    head = path[0] if path else ""
    if head in ("channels", "segments"):
        return path
    if head == "evidence_markers":
        return ("evidence", *path[1:])
    return ("program", *path)


def _child(value: object, part: str | int) -> object:
    """``value[part]`` of a TOML document's table or array, else ``MISSING``."""
    if isinstance(value, dict):
        return value.get(part, MISSING)
    if isinstance(value, list) and isinstance(part, int) and part < len(value):
        return value[part]
    return MISSING


def _with_floats(program: Program) -> Program:
    """The program with every number as a float (a file may write ``60`` for ``60.0``)."""
    channels = tuple(
        replace(
            _floats(c, CHANNEL_FIELDS),
            segments=tuple(_floats(s, SEGMENT_FIELDS[type(s)]) for s in c.segments),
        )
        for c in program.channels
    )
    return replace(_floats(program, PROGRAM_FIELDS), channels=channels)


def _floats(obj: _D, specs: Sequence[Spec]) -> _D:
    values = {name: getattr(obj, name) for name in number_fields(specs)}
    return replace(obj, **{name: float(v) for name, v in values.items() if v is not None})


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
    """Reads program TOML into a ``Program``, checking only the file's keys and structure;
    then ``waveforms.validate`` checks the program and each problem is put at its line."""

    def __init__(self, text: str, source: str) -> None:
        self._text = text
        self._source = source
        self._locator: _Locator | None = None
        self._data: dict[str, Any] = {}
        self._shared_users: set[int] = set()  # channels that play the program-level segments

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
            f"{self._source}:{line}: {where} {field} = {value_text(value)} is {problem}; "
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

    def _require(
        self,
        table: Mapping[str, Any],
        path: Path,
        where: str,
        names: Sequence[str],
        specs: Sequence[Spec],
    ) -> None:
        for name in names:
            if name not in table:
                self._fail(path, name, where, name, MISSING, "required", allowed_of(specs, name))

    def _tables(
        self, parent: Mapping[str, Any], parent_path: Path, where: str, field: str, allowed: str
    ) -> list[dict[str, Any]]:
        value = parent.get(field)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self._fail(parent_path, field, where, field, value, "not an array of tables", allowed)
        return value

    # -- problems of the program, at their lines

    def _check(self, program: Program, shared: tuple[Segment, ...] | None) -> None:
        """Run the validator; the program-level segments are checked once, as themselves."""
        problems = [p for p in check_program(program) if not self._plays_shared(p.path)]
        if shared is not None:
            problems += segment_problems(shared, ("segments",), "program", program)
        if problems:
            first = min(problems, key=lambda p: self._line_of(self._pointer(p)))
            raise InvalidProgramError(self._message(first), problems)

    def _plays_shared(self, path: Path) -> bool:
        return (
            len(path) > 2
            and path[0] == "channels"
            and path[1] in self._shared_users
            and path[2] in ("segments", "duration_s")
        )

    def _message(self, problem: Problem) -> str:
        where, field = _FILE_WORDS.get(problem.path, (problem.where, problem.field))
        text = replace(problem, where=where, field=field).text(self._shown, self._place)
        return f"{self._source}:{self._line_of(self._pointer(problem))}: {text}"

    def _pointer(self, problem: Problem) -> Path:
        """The place in the file to point at: the value (or ``locate``); for a relation, the
        first of its fields that the file gives (a default is not in the file)."""
        places = [problem.locate or problem.path]
        if problem.other is not None and problem.other_value is not None:
            places.append(problem.other)
        paths = [_file_path(p) for p in places]
        return next((p for p in paths if self._in_file(p)), paths[0])

    def _line_of(self, path: Path) -> int:
        last = path[-1] if path else None
        if isinstance(last, str):
            return self._line(path[:-1], last)
        return self._line(path, None)

    def _in_file(self, path: Path) -> bool:
        value: object = self._data
        for part in path:
            value = _child(value, part)
            if value is MISSING:
                return False
        return True

    def _shown(self, path: Path, value: object) -> str:
        """A value as the file wrote it; one the file leaves out is its default, or missing."""
        if isinstance(value, Raw) or value is MISSING or self._in_file(_file_path(path)):
            return value_text(value)
        if value is None or (isinstance(value, str | tuple) and not value):
            return "(missing)"
        shown = number_text(value) if isinstance(value, float) else value_text(value)
        return f"{shown} (default)"

    def _place(self, path: Path) -> str:
        return f"line {self._line_of(_file_path(path))}"

    # -- the document

    def program(self) -> Program:
        """The file's program; a manual-acupuncture entry is refused at its ``kind`` line."""
        entry = self.entry()
        if isinstance(entry, ManualEntry):
            raise ProgramError(entry.refusal(f"{self._source}:{self._line(('program',), 'kind')}"))
        return entry

    def entry(self) -> Entry:
        """The file's library entry: a program, or a manual-acupuncture entry."""
        data = self._document()
        meta = data.get("program", MISSING)
        kind = meta.get("kind", "ea") if isinstance(meta, dict) else "ea"
        if kind == "manual":
            return self._manual(data, meta)
        self._unknown_keys(data, (), "top-level", _TOP_KEYS)
        if not isinstance(meta, dict):
            problem = "required" if meta is MISSING else f"{type_name(meta)}, not a table"
            self._fail((), "program", "top-level", "program", meta, problem, "a [program] table")
        if kind not in _KINDS:
            self._fail(
                ("program",), "kind", "program", "kind", kind, "not an entry kind", _KINDS_TEXT
            )
        self._unknown_keys(meta, ("program",), "program", (*_PROGRAM_KEYS, "kind"))
        self._require(meta, ("program",), "program", _PROGRAM_REQUIRED, PROGRAM_FIELDS)
        fields = _given(meta, _PROGRAM_KEYS)
        shared = self._shared_segments(data)
        channels = self._channels(data, shared)
        markers = self._markers(data, fields.get("sources"))
        fields["evidence"] = self._evidence_level(meta, markers)
        program = Program(channels=channels, evidence_markers=markers, **fields)
        self._check(program, shared)
        return _with_floats(program)

    def _manual(self, data: Mapping[str, Any], meta: Mapping[str, Any]) -> ManualEntry:
        """A ``kind = "manual"`` entry: ``[program]`` and ``[[evidence]]``, never channels."""
        for key in ("channels", "segments"):
            if key in data:
                self._fail(
                    (),
                    key,
                    "top-level",
                    key,
                    data[key],
                    'not allowed in a manual-acupuncture entry (kind = "manual" carries no '
                    "current)",
                    "keys program, evidence",
                )
        self._unknown_keys(data, (), "top-level", ("program", "evidence"))
        self._unknown_keys(meta, ("program",), "program", (*_MANUAL_KEYS, "kind"))
        self._require(meta, ("program",), "program", _MANUAL_REQUIRED, MANUAL_FIELDS)
        fields = _given(meta, _MANUAL_KEYS)
        markers = self._markers(data, fields.get("sources"))
        entry = ManualEntry(evidence_markers=markers, **fields)
        problems = list(check_entry(entry))
        if problems:
            first = min(problems, key=lambda p: self._line_of(self._pointer(p)))
            raise InvalidProgramError(self._message(first), problems)
        return entry

    def _document(self) -> dict[str, Any]:
        """The TOML document: at most 256 KiB, valid TOML 1.0, nested at most 16 deep."""
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
            raise ProgramError(self._long_number_message()) from None
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
        self._data = data
        return data

    def _shared_segments(self, data: Mapping[str, Any]) -> tuple[Segment, ...] | None:
        if "segments" not in data:
            return None
        tables = self._tables(data, (), "top-level", "segments", "[[segments]] tables")
        return self._segment_list(tables, ("segments",), "program")

    def _channels(
        self, data: Mapping[str, Any], shared: tuple[Segment, ...] | None
    ) -> tuple[Channel, ...]:
        allowed = f"1..{MAX_CHANNELS} [[channels]] tables"
        if "channels" not in data:
            self._fail((), None, "top-level", "channels", MISSING, "required", allowed)
        tables = self._tables(data, (), "top-level", "channels", allowed)
        return tuple(self._channel(table, i, shared) for i, table in enumerate(tables))

    def _channel(
        self, table: Mapping[str, Any], index: int, shared: tuple[Segment, ...] | None
    ) -> Channel:
        path: Path = ("channels", index)
        self._unknown_keys(table, path, f"channel {index + 1}", _CHANNEL_KEYS)
        self._require(table, path, f"channel {index + 1}", ("name",), CHANNEL_FIELDS)
        where = channel_where(index, table["name"])
        self._require(table, path, where, ("sites",), CHANNEL_FIELDS)
        if "segments" in table:
            tables = self._tables(table, path, where, "segments", "[[channels.segments]] tables")
            segments = self._segment_list(tables, (*path, "segments"), where)
        elif shared is not None:
            segments = shared
            self._shared_users.add(index)
        else:
            self._fail(
                path,
                None,
                where,
                "segments",
                MISSING,
                "required",
                f"1..{MAX_SEGMENTS_PER_CHANNEL} [[channels.segments]] here, "
                "or a program-level [[segments]] array",
            )
        return Channel(segments=segments, **_given(table, _CHANNEL_FIELD_NAMES))

    def _segment_list(
        self, tables: list[dict[str, Any]], path: Path, owner: str
    ) -> tuple[Segment, ...]:
        return tuple(
            self._segment(table, (*path, k), f"{owner} segment {k + 1}")
            for k, table in enumerate(tables)
        )

    def _segment(self, table: Mapping[str, Any], path: Path, where: str) -> Segment:
        kind = table.get("kind", MISSING)
        cls = SEGMENT_KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            problem = "required" if kind is MISSING else "not a segment kind"
            self._fail(path, "kind", where, "kind", kind, problem, KINDS_TEXT)
        where = f"{where} ({kind})"
        specs = SEGMENT_FIELDS[cls]
        names = tuple(s.name for s in specs)
        self._unknown_keys(table, path, where, ("kind", *names))
        self._require(table, path, where, required_fields(cls), specs)
        make: Callable[..., Segment] = cls
        return make(**_given(table, names))

    def _markers(self, data: Mapping[str, Any], sources: object) -> tuple[EvidenceMarker, ...]:
        if "evidence" not in data:
            return ()
        allowed = f"0..{MAX_EVIDENCE_MARKERS} [[evidence]] tables"
        tables = self._tables(data, (), "top-level", "evidence", allowed)
        texts = sources if isinstance(sources, tuple) else ()
        keyed = (source_key(s) for s in texts if isinstance(s, str))
        keys = {k.casefold(): k for k in keyed if k is not None}
        return tuple(self._marker(table, i, keys) for i, table in enumerate(tables))

    def _marker(self, table: Mapping[str, Any], index: int, keys: dict[str, str]) -> EvidenceMarker:
        path: Path = ("evidence", index)
        self._unknown_keys(table, path, f"evidence {index + 1}", _EVIDENCE_KEYS)
        self._require(table, path, f"evidence {index + 1}", ("about",), MARKER_FIELDS)
        where = marker_where(index, table["about"])
        self._require(table, path, where, ("status",), MARKER_FIELDS)
        values = _given(table, _EVIDENCE_KEYS)
        refs = values.get("sources")
        if isinstance(refs, tuple):  # a source named as its key is written, case and all
            values["sources"] = tuple(
                keys.get(r.casefold(), r) if isinstance(r, str) else r for r in refs
            )
        return EvidenceMarker(**values)

    def _evidence_level(
        self, meta: Mapping[str, Any], markers: tuple[EvidenceMarker, ...]
    ) -> EvidenceLevel:
        """The level the file declares, else the one its markers support. A file cannot
        declare "unstated": that is what a program without a word on evidence has."""
        declared = meta.get("evidence", MISSING)
        if declared is MISSING:
            return derive_evidence(markers)
        if declared == "unstated":
            self._fail(
                ("program",),
                "evidence",
                "program",
                "evidence",
                declared,
                "not an evidence level",
                quoted(EVIDENCE_LEVELS),
            )
        level: EvidenceLevel = declared
        return level

    # -- messages about the text

    def _nesting_message(self, depth: int, line: int) -> str:
        return (
            f"{self._source}:{line}: TOML nesting = {depth} levels is too deep; allowed at most "
            f"{MAX_NESTING} levels of arrays and tables (a program file needs 4)"
        )

    def _long_number_message(self) -> str:
        match = _LONG_NUMBER.search(self._text)
        digits, line = 0, 1
        if match:
            digits, line = len(match.group()), self._text.count("\n", 0, match.start()) + 1
        return (
            f"{self._source}:{line}: TOML number = ({digits} digits) is too long to read; "
            "allowed numbers within the ranges of the program format"
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
            f"{self._source}:{line}: TOML text at column {column} = {value_text(excerpt)} "
            f"is invalid: {message}; allowed TOML 1.0 (https://toml.io/en/v1.0.0)"
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
    """Parse and validate program TOML; ``source`` names the text in error messages. A
    manual-acupuncture entry (``kind = "manual"``) is refused: it cannot be run."""
    return _Parser(text, source).program()


def parse_entry(text: str, source: str = "<string>") -> Entry:
    """Parse and validate a library entry: a program, or a manual-acupuncture entry."""
    return _Parser(text, source).entry()


def load_program(path: str | os.PathLike[str]) -> Program:
    """Load and validate a program file; the result records ``source_path``. A
    manual-acupuncture entry is refused (one line: why, and the line of its ``kind``).

    Files over 256 KiB are refused before they are read in full or parsed.
    """
    shown = os.fspath(path)
    return replace(parse_program(_read_text(shown), shown), source_path=shown)


def load_entry(path: str | os.PathLike[str]) -> Entry:
    """Load and validate a program file or a manual-acupuncture entry (``kind = "manual"``);
    the result records ``source_path``."""
    shown = os.fspath(path)
    return replace(parse_entry(_read_text(shown), shown), source_path=shown)


def _read_text(shown: str) -> str:
    """The text of a program file, or a one-line ``ProgramError``."""

    try:
        data = read_regular(shown, MAX_FILE_BYTES)
    except NotReadable as refused:
        if refused.kind is not None:
            raise ProgramError(
                f"{shown}: file = {value_text(shown)} is {refused.kind}, not a regular file; "
                "allowed a regular TOML program file"
            ) from None
        if refused.size is not None:
            raise ProgramError(
                f"{shown}:1: file size = {refused.size} bytes is too large; "
                f"allowed at most {MAX_FILE_BYTES} bytes (256 KiB)"
            ) from None
        raise ProgramError(
            f"{shown}: file = {value_text(shown)} cannot be read ({refused.reason}); "
            "allowed a readable TOML program file"
        ) from None
    try:
        return data.decode("utf-8-sig")  # tolerate the BOM some editors write
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ProgramError(
            f"{shown}:{line}: file byte = 0x{data[exc.start]:02x} is not UTF-8 text; "
            "allowed UTF-8 encoded TOML"
        ) from None


class NotReadable(Exception):
    """``read_regular`` refused a file: it is of another ``kind`` (a FIFO, a directory...),
    its ``size`` is over the limit, or it cannot be read (``reason``)."""

    def __init__(
        self, *, kind: str | None = None, size: int | None = None, reason: str = ""
    ) -> None:
        super().__init__(kind or (f"{size} bytes" if size is not None else reason))
        self.kind, self.size, self.reason = kind, size, reason


def read_regular(path: str, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes``; else ``NotReadable``.

    A FIFO would block open() until some writer came, a device may never end: only a regular
    file is read. Checked before opening, and on the open file (the path may have changed in
    between; O_NONBLOCK keeps that open from waiting on a FIFO). Shared by every loader of a
    user's file (programs, screening answers)."""
    try:
        kind = file_kind(os.stat(path).st_mode)
        if kind is not None:
            raise NotReadable(kind=kind)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        with os.fdopen(os.open(path, flags), "rb") as handle:
            info = os.fstat(handle.fileno())
            kind = file_kind(info.st_mode)
            if kind is not None:
                raise NotReadable(kind=kind)
            if info.st_size > max_bytes:
                raise NotReadable(size=info.st_size)
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise NotReadable(reason=exc.strerror or type(exc).__name__) from None
    if len(data) > max_bytes:
        raise NotReadable(size=len(data))
    return data


def file_kind(mode: int) -> str | None:
    """What a file of this ``st_mode`` is when it is not a regular file ("a named pipe
    (FIFO)"), for a message; None for a regular file. Shared by every loader that must not
    block on a FIFO or read a device (programs, screening answers, the records store)."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"
