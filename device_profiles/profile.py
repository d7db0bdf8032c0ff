"""Device profiles: one TOML file per device model, loaded into a ``DeviceProfile``.

A profile states what a model can do (channels, units and ranges, frame cadence), whether its
outputs are isolated from each other (with the source; unknown counts as not isolated), whether
it keeps stimulating when the host goes silent, its calibration to mA where known, and the
device-side settings the bridge writes on every connect. A profile can only lower the absolute
limits of ``safety`` (``DeviceLimits.check`` refuses anything else).

The built-in profiles are the only registry of devices. A profile names the code of its model
by import path, and everything else reads it from there:

- ``[device] codec``: the module with the model's protocol and its ``Driver``; a bare name is a
  module of ``firmware_bridge.codecs`` (``coyote3``: ``firmware_bridge.codecs.coyote3``), a
  dotted one a full import path. ``firmware_bridge.driver.make_driver`` takes ``Driver`` from it.
- ``[device] simulator`` and ``simulator_class``: the simulator's module (a bare name is a module
  of ``simulators``) and its class there (``coyote3``, ``Coyote3Simulator``).
  ``firmware_bridge.link`` makes the simulator; the contract suite and the bench find the
  module's ``contract`` hook (a ``simulators.ContractHook``) next to it.
- ``[device] link``: ``"ble"`` or ``"serial"``; the in-process link to the simulator and its
  other hostings follow from it (``firmware_bridge.link.link_for_profile``, ``hostings``).
- ``[[gatt]]`` (BLE only): the services and characteristics the device offers, with their
  properties; the simulator's bleak backend serves this table.

An import path is checked when the file is read (its form) and when a built-in profile is
loaded (that the module exists, without running it); ``codec_module`` and ``simulator_class``
import it and check that it defines what the profile says. Every problem is one
``ProfileError`` line: the file, the field and what is allowed.

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
[device] link, codec, simulator,     equal; simulator_class    describe the hardware and its
simulator_class, serial_baud         and [[gatt]] may be left  protocol; codec and simulator name
                                     out: then the built-in's  the code that speaks it
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
[output] isolated_outputs            true only if the          "isolated" lets two channels run
(``isolated_outputs``)               built-in's is true        whose sites would be refused as a
                                                               pair (current cannot pass between
                                                               isolated outputs); missing is false
[output] isolated_outputs_source     equal, unless the file    the source of the built-in's fact;
                                     lowers isolated_outputs   only a lowered flag may give its
                                     to false                  own reason
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
[calibration] where the built-in has refused                   a file's figure is unchecked, and a
none                                                           calibrated device runs face sites
                                                               without the 25 % ceiling: a device
                                                               is calibrated by measuring it
                                                               (``acustim calibrate``)
[[gatt]] (``gatt``): service,        equal: the same services, describes the hardware: the
characteristics (uuid, properties)   characteristics and       characteristics the codec writes,
                                     properties, in order      reads and subscribes to
``source_path``                      (set by the loader)       not a field of the file
==================================== ========================= =====================================

The built-in profiles are loaded as they are.

Never talks to a device and never decides what is safe beyond loading and checking the file.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from safety.errors import LimitError
from safety.limits import ABS_MAX_RISE_FRACTION_PER_S, Calibration, DeviceLimits
from waveforms.errors import AcustimError

MAX_PROFILE_BYTES = 64 * 1024

#: The kinds of link a device has ([device] link).
LINKS = ("ble", "serial")
#: The GATT characteristic properties a profile may name (bleak's names).
GATT_PROPERTIES = ("read", "write", "write-without-response", "notify", "indicate")

_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
#: The package of a codec or simulator module that a profile names by a bare name.
CODEC_PACKAGE = "firmware_bridge.codecs"
SIMULATOR_PACKAGE = "simulators"
_ALLOWED = {
    "codec": "a module that defines Driver: a module of firmware_bridge.codecs by its name "
    "('coyote3') or any module by its dotted import path",
    "simulator": "a module with the simulator class: a module of simulators by its name "
    "('coyote3') or any module by its dotted import path",
    "simulator_class": "the name of a class of the simulator module, e.g. 'Coyote3Simulator'",
}


class ProfileError(AcustimError):
    """A profile file is missing or invalid: the message names the file, field and range."""


class GattCharacteristic(NamedTuple):
    """One characteristic of a BLE device: its UUID (lower case) and its properties."""

    uuid: str
    properties: tuple[str, ...]  # of GATT_PROPERTIES


class GattService(NamedTuple):
    """One GATT service of a BLE device and its characteristics, in the profile's order."""

    uuid: str
    characteristics: tuple[GattCharacteristic, ...]


@dataclass(frozen=True)
class DeviceProfile:
    """Everything the app knows about one device model."""

    id: str
    name: str
    link: str  # "ble" | "serial"
    #: the codec module: a module of firmware_bridge.codecs by name ("coyote3") or a dotted
    #: import path; it defines Driver
    codec: str
    #: the simulator's module: a module of simulators by name ("coyote3") or a dotted import
    #: path; None if the model has no simulator
    simulator: str | None
    limits: DeviceLimits
    stops_when_host_silent: bool
    stops_when_host_silent_note: str = ""
    pulse_width_controlled: bool = True
    #: whether the outputs are isolated from each other (no shared return between channels),
    #: and where that fact comes from; unknown counts as not isolated
    isolated_outputs: bool = False
    isolated_outputs_source: str = ""
    ble_names: tuple[str, ...] = ()
    serial_baud: int | None = None
    device_settings: dict[str, int] = field(default_factory=dict)
    #: Frames the stream keeps queued in the device ahead of playback, so a late frame does
    #: not leave a gap. Strength changes (and the emergency zero) still apply on arrival.
    frames_ahead: int = 0
    #: what one device unit of level is on this model ("du" for abstract steps, "mV", ...)
    level_unit: str = "du"
    #: the simulator's class in its module ("Coyote3Simulator"); None without a simulator
    simulator_class: str | None = None
    #: the GATT table of a BLE device ([[gatt]]); empty for a serial one
    gatt: tuple[GattService, ...] = ()
    source_path: str = ""

    @property
    def codec_module_path(self) -> str:
        """The codec module's full import path (``firmware_bridge.codecs.coyote3``)."""
        return _full_path(self.codec, CODEC_PACKAGE)

    @property
    def simulator_module_path(self) -> str | None:
        """The simulator module's full import path (``simulators.coyote3``), or None."""
        return None if self.simulator is None else _full_path(self.simulator, SIMULATOR_PACKAGE)

    @property
    def calibrated(self) -> bool:
        return self.limits.calibration is not None

    @property
    def channels(self) -> tuple[str, ...]:
        return self.limits.channels


def builtin_folder() -> Traversable:
    """Where the built-in profiles are: this package's folder, one ``<id>.toml`` per model."""
    return resources.files("device_profiles")


def builtin_profile_ids() -> list[str]:
    """The ids of the profiles shipped in this package."""
    folder = builtin_folder()
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_builtin_profile(ident: str) -> DeviceProfile:
    """The built-in profile ``ident`` (``coyote3``), as shipped: not compared with anything.

    Also checks that the modules it names exist (``find_spec``: without running them)."""
    if ident not in builtin_profile_ids():
        raise ProfileError(
            f"unknown device {ident!r}; built-in devices: {', '.join(builtin_profile_ids())}"
        )
    ref = builtin_folder() / f"{ident}.toml"
    profile = parse_profile(ref.read_text(encoding="utf-8"), f"{ident}.toml")
    _check_modules_exist(profile)
    return profile


def _full_path(name: str, package: str) -> str:
    """A module a profile names: a bare name is a module of ``package``."""
    return name if "." in name else f"{package}.{name}"


#: (codec, simulator) module paths that were found, so each is looked up once
_FOUND: set[tuple[str, str | None]] = set()


def _check_modules_exist(profile: DeviceProfile) -> None:
    key = (profile.codec_module_path, profile.simulator_module_path)
    if key in _FOUND:
        return
    _find_module(profile, "codec", profile.codec_module_path)
    if profile.simulator_module_path is not None:
        _find_module(profile, "simulator", profile.simulator_module_path)
    _FOUND.add(key)


def _no_module(profile: DeviceProfile, key: str, module: str) -> ProfileError:
    value = getattr(profile, key)
    return ProfileError(
        f"{profile.source_path}: [device] {key} = {value!r}: no {key} called {value!r} (there "
        f"is no module {module}); allowed {_ALLOWED[key]}"
    )


def _about(exc: ModuleNotFoundError, module: str) -> bool:
    """Whether a ``ModuleNotFoundError`` is about ``module`` or a parent package of it (and not
    about a module that ``module`` itself imports, which is a bug of that module's)."""
    return exc.name is not None and (module == exc.name or module.startswith(exc.name + "."))


def _find_module(profile: DeviceProfile, key: str, module: str) -> None:
    """That ``module`` exists, without running it (only its parent packages are imported)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError as exc:  # a parent package is missing
        if not _about(exc, module):
            raise
        found = False
    except ValueError:  # imported already, without a spec
        found = module in sys.modules
    if not found:
        raise _no_module(profile, key, module)


def _import_named(profile: DeviceProfile, key: str, module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if not _about(exc, module):
            raise  # the module exists but something it imports does not: not the profile's
        raise _no_module(profile, key, module) from None


def codec_module(profile: DeviceProfile) -> ModuleType:
    """The codec module the profile names (``[device] codec``), imported. It must define
    ``Driver``; anything else is one ``ProfileError`` line."""
    module = _import_named(profile, "codec", profile.codec_module_path)
    if not isinstance(getattr(module, "Driver", None), type):
        raise ProfileError(
            f"{profile.source_path}: [device] codec = {profile.codec!r}: module "
            f"{profile.codec_module_path} defines no class Driver; allowed {_ALLOWED['codec']}"
        )
    return module


def simulator_class(profile: DeviceProfile) -> type[Any]:
    """The simulator class the profile names (``[device] simulator``, ``simulator_class``),
    imported. ``ProfileError`` if the profile names none or its module has no such class."""
    module_path = profile.simulator_module_path
    if module_path is None or profile.simulator_class is None:
        raise ProfileError(
            f"{profile.source_path}: [device] simulator is not set: {profile.id} has no simulator"
        )
    module = _import_named(profile, "simulator", module_path)
    cls = getattr(module, profile.simulator_class, None)
    if not isinstance(cls, type):
        raise ProfileError(
            f"{profile.source_path}: [device] simulator_class = {profile.simulator_class!r}: "
            f"module {module_path} defines no class {profile.simulator_class!r}; allowed "
            f"{_ALLOWED['simulator_class']}"
        )
    return cls


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

    ids = builtin_profile_ids()
    builtin = _named_builtin(text, ids)
    profile = parse_profile(text, source, inherit=builtin)
    if builtin is None or profile.id != builtin.id:
        raise ProfileError(
            f"{source}: [device] id = {profile.id!r} is not a built-in device model; a profile "
            f"file must name one ({', '.join(ids)}) and may only lower what its built-in "
            "profile allows"
        )
    check_lowers(profile, builtin)
    return profile


def _named_builtin(text: str, ids: list[str]) -> DeviceProfile | None:
    """The built-in profile whose id a user's file names, if it does (else None)."""
    try:
        device = tomllib.loads(text).get("device")
    except tomllib.TOMLDecodeError:
        return None  # parse_profile says what is wrong
    ident = device.get("id") if isinstance(device, dict) else None
    return load_builtin_profile(ident) if isinstance(ident, str) and ident in ids else None


def parse_profile(
    text: str, source: str = "<string>", *, inherit: DeviceProfile | None = None
) -> DeviceProfile:
    """Parse and check one profile; every problem is one ProfileError line.

    Checks the file against the absolute limits of ``safety``, and the form of the import
    paths it names (it never imports them): this is how the built-in profiles are read
    (``load_builtin_profile`` then checks that their modules exist). A file of the user's goes
    through ``parse_user_profile`` (which ``load_profile`` uses for every path), which also
    compares it with its built-in model, so it can only name the code its model names.

    ``inherit`` (the built-in profile of a user's file) gives ``[device] simulator_class`` and
    ``[[gatt]]`` where the file leaves them out: the fields that profiles gained with the
    device registry, so a copy made before them still loads."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: TOML syntax error: {exc}") from None
    known = {"device", "output", "frame", "limits", "device_settings", "calibration", "gatt"}
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
    if link not in LINKS:
        raise ProfileError(f"{source}: [device] link = {link!r}; allowed 'ble' or 'serial'")
    name = dev.text("name")
    codec = dev.text("codec")
    if not _MODULE_PATH.match(codec):
        raise ProfileError(
            f"{source}: [device] codec = {codec!r} is not a module's name or import path; "
            f"allowed {_ALLOWED['codec']}"
        )
    simulator = dev.text("simulator", None) if "simulator" in dev.data else None
    sim_class = dev.text("simulator_class", None) if "simulator_class" in dev.data else None
    if simulator is not None and not _MODULE_PATH.match(simulator):
        raise ProfileError(
            f"{source}: [device] simulator = {simulator!r} is not a module's name or import "
            f"path; allowed {_ALLOWED['simulator']}"
        )
    if sim_class is not None and not _IDENTIFIER.match(sim_class):
        raise ProfileError(
            f"{source}: [device] simulator_class = {sim_class!r} is not a class name; allowed "
            f"{_ALLOWED['simulator_class']}"
        )
    if inherit is not None:  # the lowering check compares both with the built-in's
        if simulator is not None and sim_class is None:
            sim_class = inherit.simulator_class  # a user's file may leave it out
    elif simulator is None and sim_class is not None:
        raise ProfileError(
            f"{source}: [device] simulator_class is set without a simulator; allowed only "
            "with [device] simulator (the module the class is in)"
        )
    elif simulator is not None and sim_class is None:
        raise ProfileError(
            f"{source}: [device] simulator_class is missing; a profile with a simulator names "
            f"its class ({_ALLOWED['simulator_class']})"
        )
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
    isolated = out.flag("isolated_outputs", False)
    isolated_source = out.text("isolated_outputs_source", "")
    if isolated and not isolated_source.strip():
        raise ProfileError(
            f"{source}: [output] isolated_outputs = true without isolated_outputs_source; "
            "allowed only with the source of the fact (a claim of isolated outputs needs "
            "one), or isolated_outputs = false"
        )
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

    if inherit is None:
        gatt = _gatt_table(data, link, source)
    elif "gatt" in data:  # the lowering check compares it (and the link) with the built-in's
        gatt = _gatt_table(data, "ble", source)
    else:
        gatt = inherit.gatt  # a user's file may leave it out

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
        simulator_class=sim_class,
        limits=limits,
        stops_when_host_silent=silent_stop,
        stops_when_host_silent_note=silent_note,
        pulse_width_controlled=pw_controlled,
        isolated_outputs=isolated,
        isolated_outputs_source=isolated_source,
        ble_names=ble_names,
        serial_baud=baud,
        device_settings=settings,
        frames_ahead=ahead,
        level_unit=level_unit,
        gatt=gatt,
        source_path=source,
    )


def _gatt_table(data: dict[str, Any], link: str, source: str) -> tuple[GattService, ...]:
    """The ``[[gatt]]`` services: required for a BLE device, refused for a serial one."""
    if "gatt" not in data:
        if link == "ble":
            raise ProfileError(
                f"{source}: [[gatt]] is missing; a BLE device's profile lists its GATT services "
                "([[gatt]] service = UUID, characteristics = [{ uuid = UUID, properties = "
                "[...] }, ...])"
            )
        return ()
    if link != "ble":
        raise ProfileError(
            f"{source}: [[gatt]] is for BLE devices; this profile has [device] link = {link!r}"
        )
    entries = data["gatt"]
    if not isinstance(entries, list) or not entries:
        raise ProfileError(
            f"{source}: [gatt] must be one or more services, each written as a [[gatt]] table"
        )
    services: list[GattService] = []
    seen: set[str] = set()

    def uuid_of(table: _Table, key: str) -> str:
        value = table.text(key)
        if not _UUID.match(value):
            raise ProfileError(
                f"{source}: [{table.name}] {key} = {value!r} is not a 128-bit UUID; allowed "
                "8-4-4-4-12 hex digits, e.g. '0000180c-0000-1000-8000-00805f9b34fb'"
            )
        value = value.lower()
        if value in seen:
            raise ProfileError(f"{source}: [{table.name}] {key} = {value!r} is listed twice")
        seen.add(value)
        return value

    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ProfileError(f"{source}: [[gatt]] #{i} is not a table")
        service = _Table(source, f"gatt #{i}", entry)
        service_uuid = uuid_of(service, "service")
        raw = service._get("characteristics", (list,), "a list of { uuid, properties } tables")
        service.done()
        if not raw:
            raise ProfileError(f"{source}: [gatt #{i}] characteristics is empty")
        characteristics: list[GattCharacteristic] = []
        for j, char in enumerate(raw, 1):
            name = f"gatt #{i} characteristic #{j}"
            if not isinstance(char, dict):
                raise ProfileError(f"{source}: [{name}] is not a {{ uuid, properties }} table")
            table = _Table(source, name, char)
            char_uuid = uuid_of(table, "uuid")
            properties = table.texts("properties")
            table.done()
            allowed = ", ".join(GATT_PROPERTIES)
            if not properties:
                raise ProfileError(f"{source}: [{name}] properties is empty; allowed {allowed}")
            for prop in properties:
                if prop not in GATT_PROPERTIES:
                    raise ProfileError(
                        f"{source}: [{name}] properties: {prop!r} is not a GATT property; "
                        f"allowed {allowed}"
                    )
            if len(set(properties)) != len(properties):
                raise ProfileError(f"{source}: [{name}] properties names one twice")
            characteristics.append(GattCharacteristic(char_uuid, properties))
        services.append(GattService(service_uuid, tuple(characteristics)))
    return tuple(services)
