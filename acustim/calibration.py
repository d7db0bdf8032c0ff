"""Calibration: milliamps, not device units (issue 13).

A practitioner or engineer connects a resistor (500 ohm) across each output, and a scope
(``peak``) or a true-rms meter (``rms``). ``calibrate`` runs a real session through
``Device.start`` (every frame through the guard: soft start, ceilings), with a built-in load
program at one frequency and pulse width, steps each channel up through a few levels, never
above a cap, holds each level until the reading is given, checks a last verification reading,
fits the guard's linear model (peak mA = ``peak_ma_per_du`` x delivered du, least squares
through the origin) and stores it per physical device. From then on ``Engine.connect`` applies
it: the guard caps rms current and rms current density on that device, and the record and the
report say when and by whom it was calibrated.

Policies (ours; ``docs/calibration.md``):

* ``FIT_TOLERANCE`` (15 %): the worst reading may differ from the fit by at most this, and so
  may the verification reading; else the device is not linear enough for the guard's model.
* At least ``MIN_READINGS`` (3) increasing levels per channel; every reading finite and > 0
  and larger than the one before.
* Plausible: the full scale at the calibration waveform may not exceed 50 mA rms into the load
  (IEC 60601-2-10: a reading or the load is wrong), nor be below ``MIN_FULL_SCALE_PEAK_MA``.
* Every channel of the device is measured, and the largest channel gain is stored: the guard
  has one figure for all channels, and more mA per du is the safe side.
* A fit below the built-in profile calibration (the Pulse Pal's nominal) would let the guard
  allow more output: within the tolerance it is stored at the built-in figure (the safe side,
  said so); further below it is refused, and the built-in figure stays in force.
* The cap: ``DEFAULT_CAP_FRACTION`` (25 %) of the device's full scale unless lowered; never
  above the full scale.
* Loads of at most 500 ohm (a smaller resistor draws at least as much current: the safe side).
* A device that sets its pulse width itself (Coyote 3) is refused: the guard's rms model needs
  the delivered pulse width.
* A device whose profile is not biphasic (ET-312, Coyote 2) takes rms readings only: the guard
  counts one phase per pulse there, and the box may deliver more (the ET-312's biphasic gates,
  the Coyote 2's bursts); an rms reading includes it, a peak reading would not.
* An ET-312's front knobs must be fully up (``KNOB_FULL_MIN``): they scale its output.
* A calibration is valid for ``CALIBRATION_VALID_DAYS`` (365, 12 months);
  ``ACUSTIM_CALIBRATION_VALID_DAYS`` may lower it, never raise it. An expired, unreadable or
  mismatching file is not applied, and the plan says the device is uncalibrated.

Files: ``<data dir>/calibrations/<device key>.json`` (the data dir of the records:
``$ACUSTIM_DATA_DIR`` or the user data dir), written atomically, mode 0600.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from acustim import __version__
from acustim.events import EventKind, SessionEvent
from acustim.prestart import LOAD_TEST_PROGRAM
from safety.electrical import duty_cycle, peak_for_rms_ma
from safety.limits import ABS_MAX_RMS_CURRENT_MA, Calibration
from waveforms.errors import AcustimError
from waveforms.program import Channel, Continuous, Program

if TYPE_CHECKING:
    from acustim.engine import Device, Session
    from acustim.prestart import StartPlan
    from device_profiles.profile import DeviceProfile

__all__ = [
    "CALIBRATION_PROGRAM_NAME",
    "CALIBRATION_VALID_DAYS",
    "FIT_TOLERANCE",
    "CalibrationError",
    "CalibrationRecord",
    "Lookup",
    "calibrate",
    "calibration_dir",
    "calibration_path",
    "configured_valid_days",
    "device_key",
    "fit_through_origin",
    "load_program_for",
    "lookup",
    "virtual_meter",
]

MeterKind = Literal["peak", "rms"]

FORMAT: Final = "acustim-calibration"
FORMAT_VERSION: Final = 1
#: our policy: the worst reading (and the verification reading) within 15 % of the fit
FIT_TOLERANCE: Final = 0.15
MIN_READINGS: Final = 3
#: our policy: a calibration is valid for 12 months
CALIBRATION_VALID_DAYS: Final = 365
VALID_DAYS_SETTING: Final = "ACUSTIM_CALIBRATION_VALID_DAYS"
#: our policy: the run goes up to this fraction of full scale unless a lower cap is given
DEFAULT_CAP_FRACTION: Final = 0.25
#: our policy: a device whose full scale is below 1 mA peak into the load is implausible for
#: a TENS/EA stimulator (a reading typed in A instead of mA, a meter on the wrong range)
MIN_FULL_SCALE_PEAK_MA: Final = 1.0
DEFAULT_LOAD_OHM: Final = 500.0
LOAD_OHM_RANGE: Final = (100.0, 500.0)
DEFAULT_FREQUENCY_HZ: Final = 50.0
DEFAULT_PULSE_WIDTH_US: Final = 200.0
DEFAULT_STEPS: Final = 4
CALIBRATION_PROGRAM_NAME: Final = LOAD_TEST_PROGRAM
#: placeholder sites of the load program (a resistor has none): one hand-forearm pair
_LOAD_SITES: Final = ("LI4-L", "LI11-L")
#: the longest a level may take to settle (wall clock) before the run gives up
SETTLE_TIMEOUT_S: Final = 120.0
#: an ET-312's front knob below this (of 255) scales the output the box delivers: refused
KNOB_FULL_MIN: Final = 250
MAX_BY_CHARS: Final = 80
MAX_FILE_BYTES: Final = 64 * 1024
_BY = re.compile(r"[^\x00-\x1f\x7f]+\Z")


class CalibrationError(AcustimError):
    """A calibration was refused (nothing stored), or a calibration file cannot be used."""


# --- where -------------------------------------------------------------------------------------
def calibration_dir() -> Path:
    """``<data dir>/calibrations``: the data dir of the records (``$ACUSTIM_DATA_DIR``)."""
    from acustim.records.files import default_store_path

    return default_store_path().parent / "calibrations"


def device_key(device: Device) -> str:
    """Which physical device this is: ``sim:<id>#unit-N`` for a simulator, the serial number
    where the handshake gives one, else the port path or BLE address (``<id>@<where>``)."""
    profile = device.profile
    sim = device.simulator
    if sim is not None:
        stage = getattr(sim, "output_stage", None)
        unit = getattr(stage, "unit_id", "unit-0")
        return f"sim:{profile.id}#{unit}"
    identity = device.identity
    if identity is not None:
        for name, value in identity.details:
            if name.lower() in ("serial", "serial number") and value.strip():
                return f"{profile.id}#sn-{value.strip()}"
    where = device.transport.url
    for prefix in ("serial://", "ble://"):
        if where.startswith(prefix):
            where = where[len(prefix) :]
    if profile.link == "ble":
        where = where.upper()
    return f"{profile.id}@{where}"


def calibration_path(key: str, directory: Path | None = None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._")[:80] or "device"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return (directory or calibration_dir()) / f"{safe}-{digest}.json"


def configured_valid_days(environ: Mapping[str, str] | None = None) -> int:
    """``CALIBRATION_VALID_DAYS``, or the lower whole number of days in
    ``ACUSTIM_CALIBRATION_VALID_DAYS``; a bad setting is one line."""
    env = os.environ if environ is None else environ
    raw = env.get(VALID_DAYS_SETTING, "").strip()
    if not raw:
        return CALIBRATION_VALID_DAYS
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= CALIBRATION_VALID_DAYS:
        raise CalibrationError(
            f"{VALID_DAYS_SETTING}={raw[:20]!r}: how long a calibration is valid; allowed a "
            f"whole number of days 1..{CALIBRATION_VALID_DAYS} (it may only be lowered)"
        )
    return int(raw)


# --- the record ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelFit:
    channel: str
    levels_du: tuple[int, ...]
    readings: tuple[float, ...]  # as given (peak or rms mA)
    peak_ma: tuple[float, ...]  # as peak mA
    peak_ma_per_du: float
    worst_residual: float  # fraction of the fitted value
    verify_level_du: int
    verify_reading: float
    verify_residual: float
    knob: int | None = None  # the front knob of the channel during the run (ET-312), of 255

    def as_json(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "levels_du": list(self.levels_du),
            "readings": list(self.readings),
            "peak_ma": [round(p, 6) for p in self.peak_ma],
            "peak_ma_per_du": self.peak_ma_per_du,
            "worst_residual": round(self.worst_residual, 6),
            "verify": {
                "level_du": self.verify_level_du,
                "reading": self.verify_reading,
                "residual": round(self.verify_residual, 6),
            },
            "knob": self.knob,
        }


@dataclass(frozen=True)
class CalibrationRecord:
    """One stored calibration of one physical device."""

    device_key: str
    device: str  # profile id
    model: str
    date: str  # ISO 8601 UTC
    by: str
    meter: MeterKind
    load_ohm: float
    frequency_hz: float
    pulse_width_us: float
    peak_ma_per_du: float  # what the guard uses
    fitted_ma_per_du: float  # the largest channel fit (may be below peak_ma_per_du)
    channels: tuple[ChannelFit, ...]
    acustim_version: str = __version__
    identity: str | None = None
    notes: tuple[str, ...] = ()
    source: str = ""  # the file it was read from

    @property
    def calibration(self) -> Calibration:
        return Calibration(peak_ma_per_du=self.peak_ma_per_du, load_ohm=self.load_ohm)

    @property
    def day(self) -> str:
        return self.date[:10]

    def expires(self, valid_days: int | None = None) -> datetime:
        days = configured_valid_days() if valid_days is None else valid_days
        return datetime.fromisoformat(self.date) + timedelta(days=days)

    def as_json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "device_key": self.device_key,
            "device": self.device,
            "model": self.model,
            "identity": self.identity,
            "date": self.date,
            "by": self.by,
            "meter": self.meter,
            "load_ohm": self.load_ohm,
            "frequency_hz": self.frequency_hz,
            "pulse_width_us": self.pulse_width_us,
            "peak_ma_per_du": self.peak_ma_per_du,
            "fitted_ma_per_du": self.fitted_ma_per_du,
            "tolerance": FIT_TOLERANCE,
            "channels": [c.as_json() for c in self.channels],
            "notes": list(self.notes),
            "acustim_version": self.acustim_version,
        }

    def meta(self) -> dict[str, object]:
        """For the session record (``meta["calibration"]``)."""
        return {
            "peak_ma_per_du": self.peak_ma_per_du,
            "load_ohm": self.load_ohm,
            "date": self.date,
            "by": self.by,
            "meter": self.meter,
            "source": self.source,
            "device_key": self.device_key,
            "expires": self.expires().isoformat(),
        }


def _number(data: Mapping[str, Any], name: str, lo: float, hi: float) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is not a number")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name} = {value!r} is outside {lo:g}..{hi:g}")
    return float(value)


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is missing")
    return value


def parse_record(text: str, source: str) -> CalibrationRecord:
    """A calibration file's record; ``ValueError`` naming the first bad field."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not an acustim calibration file")
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"version {data.get('version')!r}; allowed {FORMAT_VERSION}")
    date = _text(data, "date")
    moment = datetime.fromisoformat(date)
    if moment.tzinfo is None:
        raise ValueError("date has no time zone")
    meter = data.get("meter")
    if meter not in ("peak", "rms"):
        raise ValueError("meter is not 'peak' or 'rms'")
    chans = data.get("channels")
    if not isinstance(chans, list) or not chans:
        raise ValueError("channels is missing")
    fits = []
    for c in chans:
        if not isinstance(c, dict):
            raise ValueError("a channel is not a table")
        fits.append(
            ChannelFit(
                channel=_text(c, "channel"),
                levels_du=tuple(int(x) for x in c.get("levels_du", [])),
                readings=tuple(float(x) for x in c.get("readings", [])),
                peak_ma=tuple(float(x) for x in c.get("peak_ma", [])),
                peak_ma_per_du=_number(c, "peak_ma_per_du", 1e-9, 1e6),
                worst_residual=_number(c, "worst_residual", 0.0, FIT_TOLERANCE),
                verify_level_du=int((c.get("verify") or {}).get("level_du", 0)),
                verify_reading=float((c.get("verify") or {}).get("reading", 0.0)),
                verify_residual=float((c.get("verify") or {}).get("residual", 0.0)),
                knob=c.get("knob") if isinstance(c.get("knob"), int) else None,
            )
        )
    peak = _number(data, "peak_ma_per_du", 1e-9, 1e6)
    if peak < max(f.peak_ma_per_du for f in fits) * (1 - 1e-9):
        raise ValueError("peak_ma_per_du is below a channel's fit")
    return CalibrationRecord(
        device_key=_text(data, "device_key"),
        device=_text(data, "device"),
        model=_text(data, "model"),
        identity=data.get("identity") if isinstance(data.get("identity"), str) else None,
        date=date,
        by=_text(data, "by"),
        meter=meter,
        load_ohm=_number(data, "load_ohm", *LOAD_OHM_RANGE),
        frequency_hz=_number(data, "frequency_hz", 0.1, 10000.0),
        pulse_width_us=_number(data, "pulse_width_us", 1.0, 100000.0),
        peak_ma_per_du=peak,
        fitted_ma_per_du=_number(data, "fitted_ma_per_du", 1e-9, 1e6),
        channels=tuple(fits),
        acustim_version=str(data.get("acustim_version", "")),
        notes=tuple(str(n) for n in data.get("notes", []) if isinstance(n, str)),
        source=source,
    )


def write_record(record: CalibrationRecord, path: Path) -> Path:
    """Write atomically (a temporary file in the same directory, then a rename), mode 0600."""
    from acustim.records.files import restrictive_umask

    directory = path.parent
    try:
        with restrictive_umask():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cal-", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record.as_json(), fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise CalibrationError(
            f"cannot store the calibration in {directory} ({exc.strerror or exc}): set "
            "ACUSTIM_DATA_DIR to a directory you can write; nothing stored"
        ) from None
    return path


# --- looking one up --------------------------------------------------------------------------
@dataclass(frozen=True)
class Lookup:
    """What ``lookup`` found for a device: a record to apply, or why none applies."""

    key: str
    path: Path
    record: CalibrationRecord | None = None  # valid and applicable
    note: str | None = None  # why none applies (missing: None and no record)


def lookup(device: Device, *, now: datetime | None = None) -> Lookup:
    """The valid calibration of ``device``, or why it has none. Never raises for a bad file:
    the note is one line, and the device is treated as uncalibrated."""
    key = device_key(device)
    path = calibration_path(key)
    try:
        if not path.exists():
            return Lookup(key, path)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"{size} bytes; allowed at most {MAX_FILE_BYTES}")
        record = parse_record(path.read_bytes().decode("utf-8"), str(path))
    except (OSError, ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Lookup(
            key,
            path,
            note=f"calibration file {path} is unreadable ({' '.join(why.split())[:120]}): "
            f"{device.spec} is treated as uncalibrated; calibrate it again",
        )
    profile = device.profile
    if record.device_key != key or record.device != profile.id:
        return Lookup(
            key,
            path,
            note=f"calibration file {path} is for {record.device_key}, not {key}: "
            "not applied (treated as uncalibrated)",
        )
    said = device.identity.model if device.identity is not None else None
    recorded_model = (record.identity or "").split(",")[0].strip()
    if said and recorded_model and said != recorded_model:
        return Lookup(
            key,
            path,
            note=f"calibration file {path} was measured on a device that said {recorded_model!r}; "
            f"this one says {said!r}: not applied (treated as uncalibrated)",
        )
    try:
        days = configured_valid_days()
    except CalibrationError as exc:
        return Lookup(key, path, note=f"{exc}: calibration not applied")
    moment = now or datetime.now(UTC)
    expires = record.expires(days)
    if moment >= expires:
        return Lookup(
            key,
            path,
            note=f"calibration of {record.day} by {record.by} expired on "
            f"{expires.date().isoformat()} (valid {days} days): {device.spec} is treated as "
            "uncalibrated; calibrate it again",
        )
    if moment < datetime.fromisoformat(record.date) - timedelta(days=1):
        return Lookup(
            key,
            path,
            note=f"calibration of {record.day} is dated in the future: not applied",
        )
    # the figure must be what its own readings give (a file edited to a weaker gain would let
    # more current through, and lift the 25 % ceiling on face sites), and plausible
    for fit in record.channels:
        if len(fit.levels_du) < MIN_READINGS or len(fit.levels_du) != len(fit.peak_ma):
            return Lookup(
                key,
                path,
                note=f"calibration file {path}: channel {fit.channel} holds "
                f"{len(fit.peak_ma)} readings for {len(fit.levels_du)} levels; allowed at "
                f"least {MIN_READINGS} of each: not applied (treated as uncalibrated)",
            )
        gain, worst = fit_through_origin(fit.levels_du, fit.peak_ma)
        if record.peak_ma_per_du < gain * (1 - 1e-6) or worst > FIT_TOLERANCE:
            return Lookup(
                key,
                path,
                note=f"calibration file {path}: its figure ({record.peak_ma_per_du:g} mA/du) is "
                f"not what channel {fit.channel}'s readings give ({gain:g} mA/du, worst "
                f"{worst:.0%} off): not applied (treated as uncalibrated)",
            )
    if record.peak_ma_per_du * profile.limits.max_level_du < MIN_FULL_SCALE_PEAK_MA:
        return Lookup(
            key,
            path,
            note=f"calibration file {path}: {record.peak_ma_per_du:g} mA/du is implausibly "
            f"small: not applied (treated as uncalibrated)",
        )
    base = profile.limits.calibration
    if base is not None and record.peak_ma_per_du < base.peak_ma_per_du:
        return Lookup(
            key,
            path,
            note=f"calibration of {record.day} ({record.peak_ma_per_du:g} mA/du) is weaker than "
            f"the profile's {base.peak_ma_per_du:g} mA/du: not applied",
        )
    return Lookup(key, path, record=record)


def applied_profile(profile: DeviceProfile, record: CalibrationRecord) -> DeviceProfile:
    """``profile`` with the calibration's figure in its limits (what the guard then uses)."""
    limits = dataclasses.replace(profile.limits, calibration=record.calibration)
    return dataclasses.replace(profile, limits=limits)


# --- fitting -------------------------------------------------------------------------------------
def fit_through_origin(levels: Sequence[float], peak_ma: Sequence[float]) -> tuple[float, float]:
    """Least squares through the origin: (gain, worst residual as a fraction of the fit)."""
    sxx = sum(x * x for x in levels)
    gain = sum(x * y for x, y in zip(levels, peak_ma, strict=True)) / sxx
    worst = max(abs(y - gain * x) / (gain * x) for x, y in zip(levels, peak_ma, strict=True))
    return gain, worst


def default_levels(cap_du: int, steps: int = DEFAULT_STEPS) -> list[int]:
    out = sorted({max(1, round(cap_du * (k + 1) / steps)) for k in range(steps)})
    return out


def _check_reading(
    value: object, channel: str, level: int, previous: float | None, unit: str
) -> float:
    where = f"reading at {channel} = {level} {unit}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CalibrationError(
            f"{where}: {value!r} is not a number; allowed a finite current in mA > 0"
        )
    if value <= 0:
        raise CalibrationError(
            f"{where}: {value:g} mA; allowed > 0 mA (is the meter on {channel}'s load, and "
            "the load connected?); nothing stored"
        )
    if previous is not None and value <= previous:
        raise CalibrationError(
            f"{where}: {value:g} mA is not above the reading before it ({previous:g} mA): the "
            "readings must rise with the level (wrong channel, or a meter range change?); "
            "nothing stored"
        )
    return float(value)


def load_program_for(
    profile: DeviceProfile, channels: Sequence[str], frequency_hz: float, pulse_width_us: float
) -> Program:
    """The built-in load program: every named channel at one constant frequency and pulse
    width, intensity 1, for the device's longest session."""
    length = min(3600.0, profile.limits.max_session_s)
    return Program(
        name=CALIBRATION_PROGRAM_NAME,
        title="Calibration into a load resistor (no person connected)",
        indication="calibration of the device's output into a 500 ohm load; not a treatment",
        channels=tuple(
            Channel(
                name=ch,
                sites=_LOAD_SITES,
                segments=(
                    Continuous(
                        length, frequency_hz, pulse_width_us, 1.0, label="calibration level"
                    ),
                ),
            )
            for ch in channels
        ),
        description="A load test: a resistor on each output, a scope or true-rms meter.",
    ).checked()


# --- the run -------------------------------------------------------------------------------------
@dataclass
class _Watch:
    """Session events the run must see (a knob report, the end)."""

    knobs: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: SessionEvent) -> None:
        if event.kind == EventKind.KNOB:
            with self.lock:
                for ch, v in event.data.items():
                    if isinstance(v, int):
                        self.knobs[str(ch)] = v


def virtual_meter(device: Device, kind: MeterKind = "peak", load_ohm: float = 500.0) -> Reader:
    """For a ``sim:`` device: a ``read(level_du, channel)`` that reads the simulator's virtual
    meter on the IO loop (where the simulator lives)."""
    sim = device.simulator
    if sim is None or not hasattr(sim, "meter"):
        raise CalibrationError(
            f"{device.spec}: a virtual meter needs a simulator (sim:<device>); a real device "
            "needs a real meter"
        )

    def read(level_du: int, channel: str) -> float:
        value: float = device.engine.io.call(lambda: sim.meter(channel, kind, load_ohm))
        return value

    return read


#: ``read(level_du, channel) -> mA``: the meter reading while ``channel`` holds ``level_du``
Reader = Callable[[int, str], float]


@dataclass(frozen=True)
class Step:
    """What the run is doing, for displays (``on_step``)."""

    channel: str
    level_du: int
    what: Literal["holding", "verify", "done"]


def _settle(session: Session, channel: str, level: int) -> None:
    """Wait until ``channel`` delivers ``level`` (the guard's soft start ramps it there)."""
    asked = session.runner.level_requests  # a snapshot from before the request is stale
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        if session.done:
            result = session.wait(0)
            raise CalibrationError(
                f"the calibration session ended before {channel} reached {level} du "
                f"({result.outcome}: {result.reason}); nothing stored"
            )
        status = session.status()
        ch = next((c for c in status.channels if c.name == channel), None)
        if status.level_requests < asked:
            ch = None
        elif (
            ch is not None
            and ch.level_du == level
            and ch.target_du == level
            and ch.delivered_du >= level - 1e-6
        ):
            # one more frame at this level, so the device has it on its output
            frames = status.frames_sent
            while session.status().frames_sent < frames + 2 and not session.done:
                time.sleep(0.002)
            return
        if ch is not None and ch.target_du < level:
            raise CalibrationError(
                f"the device or the guard lowered {channel} to {ch.target_du} du while the "
                f"run asked for {level} du; nothing stored"
            )
        if time.monotonic() > deadline:
            raise CalibrationError(
                f"{channel} did not reach {level} du within {SETTLE_TIMEOUT_S:g} s (held at "
                f"{ch.level_du if ch else 0} du); nothing stored"
            )
        time.sleep(0.005)


def calibrate(
    device: Device,
    levels: Sequence[int] | None = None,
    *,
    read: Reader,
    by: str,
    no_person_connected: bool,
    meter: MeterKind = "peak",
    load_ohm: float = DEFAULT_LOAD_OHM,
    cap_du: int | None = None,
    channels: Sequence[str] | None = None,
    frequency_hz: float = DEFAULT_FREQUENCY_HZ,
    pulse_width_us: float | None = None,
    store: bool = True,
    on_step: Callable[[Step], None] | None = None,
    on_plan: Callable[[StartPlan], None] | None = None,
    now: datetime | None = None,
) -> CalibrationRecord:
    """Calibrate ``device`` (see the module); returns the stored record. Every refusal is a
    one-line ``CalibrationError`` and stores nothing; output is zero whenever this returns or
    raises (Ctrl-C in ``read`` included)."""
    profile = device.profile
    lim = profile.limits
    unit = profile.level_unit
    if no_person_connected is not True:
        raise CalibrationError(
            "a calibration runs into a load resistor: confirm that no person is connected "
            "(no_person_connected=True; the CLI asks)"
        )
    who = by.strip() if isinstance(by, str) else ""
    if not who or len(who) > MAX_BY_CHARS or not _BY.fullmatch(who):
        raise CalibrationError(
            f"--by {by!r}: who measured; allowed 1..{MAX_BY_CHARS} printable characters"
        )
    if meter not in ("peak", "rms"):
        raise CalibrationError(f"meter {meter!r}: allowed 'peak' (a scope) or 'rms'")
    from device_profiles.profile import codec_module

    if not codec_module(profile).Driver.ONE_PULSE_PER_PERIOD:
        raise CalibrationError(
            f"{profile.name} writes bursts of several pulses per period at low rates, where "
            "the guard's rms model counts one: with a calibration its current caps would be "
            "too lenient (a calibrated Coyote 2 delivered 2.3x its rms cap at 2 Hz on the "
            "simulator), so it is refused and the device stays uncalibrated, under the 25 % "
            "head ceiling (docs/calibration.md)"
        )
    if not profile.pulse_width_controlled:
        raise CalibrationError(
            f"{profile.name} sets its pulse width itself: the guard's rms model would use the "
            "program's pulse widths, not the delivered ones, so a calibration cannot be "
            "applied safely; refused (docs/calibration.md)"
        )
    if meter == "peak" and not profile.limits.biphasic:
        raise CalibrationError(
            f"--meter peak on {profile.name}: its profile counts one phase per pulse, and the "
            "guard computes rms current from that; the box may deliver more per pulse (two "
            "phases, bursts), which only a true-rms reading includes; allowed --meter rms"
        )
    if isinstance(load_ohm, bool) or not (
        isinstance(load_ohm, int | float) and LOAD_OHM_RANGE[0] <= load_ohm <= LOAD_OHM_RANGE[1]
    ):
        raise CalibrationError(
            f"load {load_ohm!r} ohm; allowed {LOAD_OHM_RANGE[0]:g}..{LOAD_OHM_RANGE[1]:g} ohm "
            "(IEC 60601-2-10 measures into 500 ohm; a smaller load is the safe side)"
        )
    width = (
        min(max(DEFAULT_PULSE_WIDTH_US, lim.pulse_width_range_us[0]), lim.pulse_width_range_us[1])
        if pulse_width_us is None
        else pulse_width_us
    )
    f_lo, f_hi = lim.frequency_range_hz
    w_lo, w_hi = lim.pulse_width_range_us
    if not (isinstance(frequency_hz, int | float) and f_lo <= frequency_hz <= f_hi):
        raise CalibrationError(
            f"frequency {frequency_hz!r} Hz; allowed {f_lo:g}..{f_hi:g} Hz on {profile.name}"
        )
    if not (isinstance(width, int | float) and w_lo <= width <= w_hi):
        raise CalibrationError(
            f"pulse width {width!r} us; allowed {w_lo:g}..{w_hi:g} us on {profile.name}"
        )
    full = lim.max_level_du
    default_cap = max(1, math.floor(full * DEFAULT_CAP_FRACTION))
    cap = default_cap if cap_du is None else cap_du
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= full:
        raise CalibrationError(
            f"cap {cap!r} {unit}: the highest level of the run; allowed 1..{full} {unit} "
            f"(default {default_cap}, {DEFAULT_CAP_FRACTION:.0%} of full scale)"
        )
    steps = list(levels) if levels is not None else default_levels(cap)
    if any(isinstance(x, bool) or not isinstance(x, int) for x in steps):
        raise CalibrationError(f"levels {steps!r}: whole numbers of {unit}")
    if len(steps) < MIN_READINGS:
        raise CalibrationError(
            f"levels {steps}: {len(steps)} level(s); allowed at least {MIN_READINGS} "
            "increasing levels"
        )
    if any(b <= a for a, b in itertools.pairwise(steps)) or steps[0] < 1:
        raise CalibrationError(f"levels {steps}: allowed strictly increasing levels >= 1 {unit}")
    if steps[-1] > cap:
        raise CalibrationError(
            f"level {steps[-1]} {unit} is above the cap; allowed 1..{cap} {unit} "
            "(raise --cap-du, at most the full scale)"
        )
    names = list(channels) if channels is not None else list(lim.channels)
    if sorted(names) != sorted(lim.channels):
        raise CalibrationError(
            f"channels {', '.join(names) or 'none'}: a calibration covers every channel of "
            f"{profile.name} ({', '.join(lim.channels)}): the guard has one figure for all"
        )
    verify = round((steps[-2] + steps[-1]) / 2)
    if verify in steps:
        verify = steps[0] + (steps[1] - steps[0]) // 2 if steps[1] - steps[0] > 1 else steps[-2]
    program = load_program_for(profile, names, float(frequency_hz), float(width))
    from acustim.prestart import prepare

    watch = _Watch()
    plan = prepare(device, program, ceilings=dict.fromkeys(names, cap), load_test=True)
    if on_plan is not None:
        on_plan(plan)  # shown before anything is sent
    session = device.start(
        program,
        ceilings=dict.fromkeys(names, cap),
        notes=f"calibration load test by {who}: no person connected",
        on_notice=watch,
        confirmed=plan.items,
        load_test=True,
    )
    readings: dict[str, list[float]] = {}
    verifies: dict[str, float] = {}
    try:
        for ch in names:
            previous: float | None = None
            got = readings.setdefault(ch, [])
            for level in steps:
                session.set_level(ch, level)
                _settle(session, ch, level)
                if on_step is not None:
                    on_step(Step(ch, level, "holding"))
                _check_knob(watch, ch, profile.name)
                value = _check_reading(read(level, ch), ch, level, previous, unit)
                got.append(value)
                previous = value
            session.set_level(ch, verify)  # a fall: at once
            _settle(session, ch, verify)
            if on_step is not None:
                on_step(Step(ch, verify, "verify"))
            verifies[ch] = _check_reading(read(verify, ch), ch, verify, None, unit)
            session.set_level(ch, 0)
        _check_knobs_all(watch, names, profile.name)
    finally:
        session.stop("calibration run ended")
        with contextlib.suppress(Exception):
            session.wait(10.0)
    if on_step is not None:
        on_step(Step(names[-1], 0, "done"))
    return _finish(
        device,
        steps,
        verify,
        readings,
        verifies,
        watch,
        who=who,
        meter=meter,
        load_ohm=float(load_ohm),
        frequency_hz=float(frequency_hz),
        pulse_width_us=float(width),
        store=store,
        now=now,
    )


def _check_knob(watch: _Watch, channel: str, name: str) -> None:
    with watch.lock:
        knob = watch.knobs.get(channel)
    if knob is not None and knob < KNOB_FULL_MIN:
        raise CalibrationError(
            f"{name}: the front knob of {channel} is at {knob}/255; turn both knobs fully up "
            f"(at least {KNOB_FULL_MIN}) before calibrating: a calibration at a lower knob "
            "would understate the current when the knob is turned up; nothing stored"
        )


def _check_knobs_all(watch: _Watch, names: Sequence[str], name: str) -> None:
    for ch in names:
        _check_knob(watch, ch, name)


def _finish(
    device: Device,
    steps: Sequence[int],
    verify: int,
    readings: Mapping[str, Sequence[float]],
    verifies: Mapping[str, float],
    watch: _Watch,
    *,
    who: str,
    meter: MeterKind,
    load_ohm: float,
    frequency_hz: float,
    pulse_width_us: float,
    store: bool,
    now: datetime | None,
) -> CalibrationRecord:
    profile = device.profile
    lim = profile.limits
    biphasic = lim.biphasic
    tol = FIT_TOLERANCE

    def to_peak(value: float) -> float:
        if meter == "peak":
            return value
        return peak_for_rms_ma(value, pulse_width_us, frequency_hz, biphasic=biphasic)

    fits: list[ChannelFit] = []
    for ch, values in readings.items():
        peaks = [to_peak(v) for v in values]
        gain, worst = fit_through_origin(steps, peaks)
        if worst > tol:
            raise CalibrationError(
                f"{ch}: the worst reading is {worst:.0%} off the linear fit "
                f"({gain:.4g} mA/du); allowed {tol:.0%}: the device is not linear enough for "
                "the guard's model (or a reading is wrong); nothing stored"
            )
        expected = gain * verify
        v_peak = to_peak(verifies[ch])
        v_res = abs(v_peak - expected) / expected
        if v_res > tol:
            raise CalibrationError(
                f"{ch}: the verification reading at {verify} du ({verifies[ch]:g} mA {meter}) "
                f"is {v_res:.0%} off the fit (expected about {expected:.3g} mA peak); "
                f"allowed {tol:.0%}: the readings do not describe this output; nothing stored"
            )
        with watch.lock:
            knob = watch.knobs.get(ch)
        fits.append(
            ChannelFit(
                ch,
                tuple(steps),
                tuple(values),
                tuple(peaks),
                gain,
                worst,
                verify,
                verifies[ch],
                v_res,
                knob,
            )
        )
    fitted = max(f.peak_ma_per_du for f in fits)
    # plausibility, at the calibration waveform and the full scale
    duty = duty_cycle(pulse_width_us, frequency_hz, biphasic=biphasic)
    full_peak = fitted * lim.max_level_du
    full_rms = full_peak * math.sqrt(duty)
    if full_rms > ABS_MAX_RMS_CURRENT_MA:
        raise CalibrationError(
            f"the fit ({fitted:.4g} mA/du) gives {full_rms:.0f} mA rms at full scale "
            f"({lim.max_level_du} du, {frequency_hz:g} Hz, {pulse_width_us:g} us) into "
            f"{load_ohm:g} ohm; allowed at most {ABS_MAX_RMS_CURRENT_MA:g} mA rms "
            "(IEC 60601-2-10): a reading, the meter kind or the load is wrong; nothing stored"
        )
    if min(f.peak_ma_per_du for f in fits) * lim.max_level_du < MIN_FULL_SCALE_PEAK_MA:
        weakest = min(f.peak_ma_per_du for f in fits)
        raise CalibrationError(
            f"the fit ({weakest:.3g} mA/du) gives {weakest * lim.max_level_du:.3g} mA peak at "
            f"full scale; allowed at least {MIN_FULL_SCALE_PEAK_MA:g} mA: implausibly small "
            "(readings in A instead of mA, or the meter on the wrong range?); nothing stored"
        )
    notes: list[str] = []
    gain = fitted
    base = (
        lim.calibration if device.base_profile is None else device.base_profile.limits.calibration
    )
    if base is not None and fitted < base.peak_ma_per_du:
        if fitted < base.peak_ma_per_du * (1 - tol):
            raise CalibrationError(
                f"the fit ({fitted:.4g} mA/du) is {1 - fitted / base.peak_ma_per_du:.0%} below "
                f"{profile.name}'s built-in {base.peak_ma_per_du:g} mA/du; allowed at most "
                f"{tol:.0%} below: a weaker figure would let the guard allow more output; the "
                "built-in figure stays in force; nothing stored"
            )
        gain = base.peak_ma_per_du
        notes.append(
            f"the fit ({fitted:.4g} mA/du) is below the built-in {base.peak_ma_per_du:g} mA/du "
            "within the tolerance: the built-in figure is stored (the safe side)"
        )
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    key = device_key(device)
    path = calibration_path(key)
    record = CalibrationRecord(
        device_key=key,
        device=profile.id,
        model=profile.name,
        identity=device.identity.describe() if device.identity is not None else None,
        date=moment.isoformat(),
        by=who,
        meter=meter,
        load_ohm=load_ohm,
        frequency_hz=frequency_hz,
        pulse_width_us=pulse_width_us,
        peak_ma_per_du=gain,
        fitted_ma_per_du=fitted,
        channels=tuple(fits),
        notes=tuple(notes),
        source=str(path),
    )
    if store:
        write_record(record, path)
    return record
