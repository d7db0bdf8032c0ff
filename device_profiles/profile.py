"""Device profiles: one TOML file per device model, loaded into a ``DeviceProfile``.

A profile states what a model can do (channels, units and ranges, frame cadence), whether it
keeps stimulating when the host goes silent, its calibration to mA where known, and the
device-side settings the bridge writes on every connect. A profile can only lower the absolute
limits of ``safety`` (``DeviceLimits.check`` refuses anything else).

A profile file of the user's (anything but the built-in files of this package, by path: ``--device
sim:PATH``, ``PATH@ADDR``, ``acustim simulate PATH``) must name a built-in model (its ``id``) and
may only lower what the built-in profile of that model allows; ``lowering.check_lowers`` refuses
anything else with one ``ProfileError`` line (file, field, the built-in value, what is allowed).
The rule of every field (of ``DeviceProfile``, ``DeviceLimits`` and ``Calibration``):

==================================== ========================= =====================================
file field (``DeviceProfile`` field) rule for a user profile   why this direction is the safe one
==================================== ========================= =====================================
[device] id (``id``,                 a built-in id             names the model whose limits it
``limits.model``)                                              lowers
[device] name                        equal                     names the box in the warnings
                                                               ("switch it off at the device")
[device] link, codec, simulator,     equal                     describe the hardware and its
serial_baud                                                    protocol
[device] ble_names                   a subset                  scans match advertised names to a
                                                               model: a file may drop names, never
                                                               add one
[device] stops_when_host_silent      true only if the          "stops by itself" hides the warning
(``stops_when_host_silent``,         built-in's is true        to switch the box off at the device
``limits.stops_when_host_silent``)
[device] stops_when_host_silent_note equal, unless the file    explains the built-in's claim; only a
                                     lowers the flag to false  lowered flag may give its own reason
[output] channels                    equal (names and order)   describe the hardware
[output] level_max_du                <= built-in               every channel's ceiling and the
(``limits.max_level_du``)                                      soft-start rate are fractions of it
[output] level_unit,                 equal                     describe the hardware
pulse_width_controlled
[output] frequency_min_hz,           >= / <= built-in: the     the program check refuses a program
frequency_max_hz                     range lies inside         outside the range
(``limits.frequency_range_hz``)
[output] pulse_width_min_us,         >= / <= built-in: the     the program check refuses pulses
pulse_width_max_us                   range lies inside         shorter than the minimum (never
(``limits.pulse_width_range_us``)                              lengthens them) and shortens longer
                                                               ones
[output] biphasic                    true only if the          "charge-balanced" lets needle
                                     built-in's is true; equal programs run; on a calibrated profile
                                     when calibrated           "not biphasic" halves the duty the
                                                               guard counts for rms current
[frame] samples_per_frame,           equal                     the cadence of the stream and of a
sample_period_s, frames_ahead                                  fall to zero; the codecs depend on it
[limits] max_rise_fraction_per_s     <= built-in               a slower soft start
[limits] max_session_s               <= built-in               a shorter session
[device_settings] (every key)        equal: same keys, same    written to the box on every connect
                                     values                    (balance, mode): they shape its
                                                               output
[calibration]                        must stay                 the guard's rms-current and density
(``limits.calibration``) where the                             caps need it
built-in has one
[calibration] peak_ma_per_du         >= built-in               more mA per du: the guard counts more
                                                               current per level, so it allows less
[calibration] load_ohm               equal                     the guard does not read it: it states
                                                               the load the built-in's figure was
                                                               measured into, and the record keeps
                                                               it
[calibration] where the built-in has may be added              adds the guard's current caps, which
none                                                           only lower a level
``source_path``                      (set by the loader)       not a field of the file
==================================== ========================= =====================================

The built-in profiles are loaded as they are.

Never talks to a device and never decides what is safe beyond loading and checking the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from safety.errors import LimitError
from safety.limits import ABS_MAX_RISE_FRACTION_PER_S, Calibration, DeviceLimits
from waveforms.errors import AcustimError

MAX_PROFILE_BYTES = 64 * 1024


class ProfileError(AcustimError):
    """A profile file is missing or invalid: the message names the file, field and range."""


@dataclass(frozen=True)
class DeviceProfile:
    """Everything the app knows about one device model."""

    id: str
    name: str
    link: str  # "ble" | "serial"
    codec: str
    simulator: str | None
    limits: DeviceLimits
    stops_when_host_silent: bool
    stops_when_host_silent_note: str = ""
    pulse_width_controlled: bool = True
    ble_names: tuple[str, ...] = ()
    serial_baud: int | None = None
    device_settings: dict[str, int] = field(default_factory=dict)
    #: Frames the stream keeps queued in the device ahead of playback, so a late frame does
    #: not leave a gap. Strength changes (and the emergency zero) still apply on arrival.
    frames_ahead: int = 0
    #: what one device unit of level is on this model ("du" for abstract steps, "mV", ...)
    level_unit: str = "du"
    source_path: str = ""

    @property
    def calibrated(self) -> bool:
        return self.limits.calibration is not None

    @property
    def channels(self) -> tuple[str, ...]:
        return self.limits.channels


def builtin_profile_ids() -> list[str]:
    """The ids of the profiles shipped in this package."""
    folder = resources.files("device_profiles")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_builtin_profile(ident: str) -> DeviceProfile:
    """The built-in profile ``ident`` (``coyote3``), as shipped: not compared with anything."""
    if ident not in builtin_profile_ids():
        raise ProfileError(
            f"unknown device {ident!r}; built-in devices: {', '.join(builtin_profile_ids())}"
        )
    ref = resources.files("device_profiles") / f"{ident}.toml"
    return parse_profile(ref.read_text(encoding="utf-8"), f"{ident}.toml")


def load_profile(name_or_path: str | os.PathLike[str]) -> DeviceProfile:
    """Load a built-in profile by id (``coyote3``) or a profile file by path.

    A file must name a built-in model and may only lower what that model's built-in profile
    allows (see ``parse_user_profile``)."""
    text_path = str(name_or_path)
    if text_path in builtin_profile_ids():
        return load_builtin_profile(text_path)
    path = Path(name_or_path)
    if not path.suffix:
        raise ProfileError(
            f"unknown device {text_path!r}; built-in devices: {', '.join(builtin_profile_ids())}"
        )
    try:
        if path.stat().st_size > MAX_PROFILE_BYTES:
            raise ProfileError(f"{path}: larger than {MAX_PROFILE_BYTES} bytes; not a profile")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not UTF-8 text") from None
    return parse_user_profile(text, str(path))


class _Table:
    """Typed access to one TOML table with errors that name file, table and field."""

    def __init__(self, source: str, name: str, data: dict[str, Any]) -> None:
        self.source, self.name, self.data = source, name, data
        self.used: set[str] = set()

    def _get(self, key: str, kinds: tuple[type, ...], what: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise ProfileError(f"{self.source}: [{self.name}] {key} is missing ({what})")
            return default
        value = self.data[key]
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ProfileError(f"{self.source}: [{self.name}] {key} = {value!r} is not {what}")
        return value

    def text(self, key: str, default: Any = ...) -> str:
        return str(self._get(key, (str,), "text", default))

    def flag(self, key: str, default: Any = ...) -> bool:
        return bool(self._get(key, (bool,), "true or false", default))

    def number(self, key: str, low: float, high: float, default: Any = ...) -> float:
        value = self._get(key, (int, float), "a number", default)
        if not low <= value <= high:
            raise ProfileError(
                f"{self.source}: [{self.name}] {key} = {value} is out of range; "
                f"allowed {low:g}..{high:g}"
            )
        return float(value)

    def integer(self, key: str, low: int, high: int, default: Any = ...) -> int:
        value = self._get(key, (int,), "a whole number", default)
        if not low <= value <= high:
            raise ProfileError(
                f"{self.source}: [{self.name}] {key} = {value} is out of range; "
                f"allowed {low}..{high}"
            )
        return int(value)

    def texts(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self._get(key, (list,), "a list of text", default)
        if not all(isinstance(v, str) for v in value):
            raise ProfileError(f"{self.source}: [{self.name}] {key} must be a list of text")
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ProfileError(
                f"{self.source}: [{self.name}] unknown field {unknown[0]!r}; "
                f"known: {', '.join(sorted(self.used))}"
            )


def parse_user_profile(text: str, source: str = "<string>") -> DeviceProfile:
    """Parse and check a profile file of the user's; every problem is one ProfileError line.

    Its ``id`` must be a built-in model's, and it may only lower what the built-in profile of
    that model allows (the table at the top of this module)."""
    from device_profiles.lowering import check_lowers

    profile = parse_profile(text, source)
    ids = builtin_profile_ids()
    if profile.id not in ids:
        raise ProfileError(
            f"{source}: [device] id = {profile.id!r} is not a built-in device model; a profile "
            f"file must name one ({', '.join(ids)}) and may only lower what its built-in "
            "profile allows"
        )
    check_lowers(profile, load_builtin_profile(profile.id))
    return profile


def parse_profile(text: str, source: str = "<string>") -> DeviceProfile:
    """Parse and check one profile; every problem is one ProfileError line.

    Checks the file against the absolute limits of ``safety`` only: this is how the built-in
    profiles are read. A file of the user's goes through ``parse_user_profile`` (which
    ``load_profile`` uses for every path), which also compares it with its built-in model."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: TOML syntax error: {exc}") from None
    known = {"device", "output", "frame", "limits", "device_settings", "calibration"}
    for key in data:
        if key not in known:
            raise ProfileError(
                f"{source}: unknown table [{key}]; known: {', '.join(sorted(known))}"
            )

    def table(name: str, required: bool = True) -> _Table:
        value = data.get(name)
        if value is None and not required:
            return _Table(source, name, {})
        if not isinstance(value, dict):
            raise ProfileError(f"{source}: table [{name}] is missing")
        return _Table(source, name, value)

    dev = table("device")
    ident = dev.text("id")
    link = dev.text("link")
    if link not in ("ble", "serial"):
        raise ProfileError(f"{source}: [device] link = {link!r}; allowed 'ble' or 'serial'")
    name = dev.text("name")
    codec = dev.text("codec")
    simulator = dev.text("simulator", None) if "simulator" in dev.data else None
    silent_stop = dev.flag("stops_when_host_silent")
    silent_note = dev.text("stops_when_host_silent_note", "")
    ble_names = dev.texts("ble_names", ())
    baud = int(dev.integer("serial_baud", 300, 12_000_000)) if "serial_baud" in dev.data else None
    dev.done()

    out = table("output")
    channels = out.texts("channels")
    level_max = out.integer("level_max_du", 1, 1_000_000)
    level_unit = out.text("level_unit", "du")
    f_lo = out.number("frequency_min_hz", 0.0, 1e6)
    f_hi = out.number("frequency_max_hz", 0.0, 1e6)
    pw_controlled = out.flag("pulse_width_controlled", True)
    w_lo = out.number("pulse_width_min_us", 0.0, 1e6)
    w_hi = out.number("pulse_width_max_us", 0.0, 1e6)
    biphasic = out.flag("biphasic")
    out.done()

    frame = table("frame")
    samples = frame.integer("samples_per_frame", 1, 1000)
    sample_s = frame.number("sample_period_s", 0.001, 10.0)
    ahead = frame.integer("frames_ahead", 0, 4, 0)
    frame.done()

    lim = table("limits", required=False)
    rise = lim.number(
        "max_rise_fraction_per_s", 0.0, ABS_MAX_RISE_FRACTION_PER_S, ABS_MAX_RISE_FRACTION_PER_S
    )
    max_session = lim.number("max_session_s", 1.0, 3600.0, 3600.0)
    lim.done()

    settings_table = table("device_settings", required=False)
    settings = {}
    for key in list(settings_table.data):
        settings[key] = settings_table.integer(key, 0, 65535)
    settings_table.done()

    calibration = None
    if "calibration" in data:
        cal = table("calibration")
        calibration = Calibration(
            peak_ma_per_du=cal.number("peak_ma_per_du", 1e-6, 1000.0),
            load_ohm=cal.number("load_ohm", 1.0, 1e6, 500.0),
        )
        cal.done()

    limits = DeviceLimits(
        model=ident,
        channels=channels,
        max_level_du=level_max,
        frequency_range_hz=(f_lo, f_hi),
        pulse_width_range_us=(w_lo, w_hi),
        samples_per_frame=samples,
        sample_period_s=sample_s,
        biphasic=biphasic,
        calibration=calibration,
        max_rise_fraction_per_s=rise,
        max_session_s=max_session,
        stops_when_host_silent=silent_stop,
    )
    try:
        limits.check()
    except LimitError as exc:
        raise ProfileError(f"{source}: {exc}") from None
    return DeviceProfile(
        id=ident,
        name=name,
        link=link,
        codec=codec,
        simulator=simulator,
        limits=limits,
        stops_when_host_silent=silent_stop,
        stops_when_host_silent_note=silent_note,
        pulse_width_controlled=pw_controlled,
        ble_names=ble_names,
        serial_baud=baud,
        device_settings=settings,
        frames_ahead=ahead,
        level_unit=level_unit,
        source_path=source,
    )
