"""A user profile may only lower what the built-in profile of its model allows.

``check_lowers(profile, builtin)`` compares a profile loaded from a file with the built-in
profile of the model it names (its ``id``) and raises one ``ProfileError`` line for the first
field that is not equal or safer; the rule of every field is the table in
``device_profiles.profile``. Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
from typing import Any

from device_profiles.profile import DeviceProfile, GattService, ProfileError

#: Why a limit is refused, and why an identity field is.
_WHY = "a profile file can only lower what the built-in profile of its model allows"
_SAME = "it describes the hardware, which a file cannot change"


def _show(value: Any) -> str:
    """A value as it is written in a profile file."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # quoted, a newline escaped
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_show(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


def _show_gatt(gatt: tuple[GattService, ...]) -> str:
    """A GATT table in one line: each service, its characteristics and their properties."""
    if not gatt:
        return "no [[gatt]] table"
    services = (
        f"service {service.uuid}: "
        + ", ".join(f"{c.uuid} ({' '.join(c.properties)})" for c in service.characteristics)
        for service in gatt
    )
    return "[[gatt]] " + "; ".join(services)


class _Checker:
    def __init__(self, profile: DeviceProfile, builtin: DeviceProfile) -> None:
        self.profile, self.builtin = profile, builtin
        self.source = profile.source_path or "<string>"

    def refuse(self, field: str, value: Any, built_in: Any, allowed: str, why: str = _WHY) -> None:
        self.fail(f"{field} = {_show(value)}", _show(built_in), allowed, why)

    def fail(self, what: str, built_in: str, allowed: str, why: str = _WHY) -> None:
        raise ProfileError(
            f"{self.source}: {what}: the built-in {self.builtin.id} profile has {built_in}; "
            f"allowed {allowed} ({why})"
        )

    def equal(self, field: str, value: Any, built_in: Any) -> None:
        if value != built_in:
            self.refuse(field, value, built_in, f"only {_show(built_in)}", _SAME)

    def at_most(self, field: str, value: float, built_in: float) -> None:
        if not value <= built_in:
            self.refuse(field, value, built_in, f"<= {_show(built_in)}")

    def at_least(self, field: str, value: float, built_in: float) -> None:
        if not value >= built_in:
            self.refuse(field, value, built_in, f">= {_show(built_in)}")

    def true_only_if(self, field: str, value: bool, built_in: bool, why: str) -> None:
        if value and not built_in:
            self.refuse(field, value, built_in, "only false", why)


def check_lowers(profile: DeviceProfile, builtin: DeviceProfile) -> None:
    """Refuse ``profile`` (from a file) unless every field is equal to or safer than
    ``builtin``, the built-in profile of the same model. One ``ProfileError`` line names the
    file, the field, the built-in value and what is allowed."""
    c = _Checker(profile, builtin)
    p, b = profile, builtin
    pl, bl = p.limits, b.limits

    # [device]
    c.equal("[device] id", p.id, b.id)
    c.equal("[device] id", pl.model, b.id)  # the limits' model is the id
    c.equal("[device] name", p.name, b.name)
    c.equal("[device] link", p.link, b.link)
    c.equal("[device] codec", p.codec, b.codec)
    c.equal("[device] simulator", p.simulator, b.simulator)
    c.equal("[device] simulator_class", p.simulator_class, b.simulator_class)
    c.equal("[device] serial_baud", p.serial_baud, b.serial_baud)
    extra_names = [n for n in p.ble_names if n not in b.ble_names]
    if extra_names:
        c.refuse(
            "[device] ble_names",
            p.ble_names,
            b.ble_names,
            f"only names from {_show(b.ble_names)}",
            "a file may drop names, never add one: scans match the names to this model",
        )
    silent_why = "a file cannot claim the device stops by itself when the host goes silent"
    c.true_only_if(
        "[device] stops_when_host_silent",
        p.stops_when_host_silent,
        b.stops_when_host_silent,
        silent_why,
    )
    c.true_only_if(
        "[device] stops_when_host_silent",
        pl.stops_when_host_silent,
        bl.stops_when_host_silent,
        silent_why,
    )
    if p.stops_when_host_silent == b.stops_when_host_silent:
        # the note explains the built-in's claim; only a profile that lowers the claim to
        # "keeps stimulating" may explain that in its own words
        c.equal(
            "[device] stops_when_host_silent_note",
            p.stops_when_host_silent_note,
            b.stops_when_host_silent_note,
        )

    # [output]
    c.equal("[output] channels", pl.channels, bl.channels)
    c.at_most("[output] level_max_du", pl.max_level_du, bl.max_level_du)
    c.equal("[output] level_unit", p.level_unit, b.level_unit)
    (f_lo, f_hi), (bf_lo, bf_hi) = pl.frequency_range_hz, bl.frequency_range_hz
    c.at_least("[output] frequency_min_hz", f_lo, bf_lo)
    c.at_most("[output] frequency_max_hz", f_hi, bf_hi)
    c.equal("[output] pulse_width_controlled", p.pulse_width_controlled, b.pulse_width_controlled)
    (w_lo, w_hi), (bw_lo, bw_hi) = pl.pulse_width_range_us, bl.pulse_width_range_us
    c.at_least("[output] pulse_width_min_us", w_lo, bw_lo)
    c.at_most("[output] pulse_width_max_us", w_hi, bw_hi)
    c.true_only_if(
        "[output] isolated_outputs",
        p.isolated_outputs,
        b.isolated_outputs,
        "a file cannot claim that the outputs are isolated from each other, which lets "
        "channels run whose sites would be refused as a pair",
    )
    if p.isolated_outputs == b.isolated_outputs:
        # the source backs the built-in's fact; only a file that lowers it to "not
        # isolated" may give its own reason
        c.equal(
            "[output] isolated_outputs_source",
            p.isolated_outputs_source,
            b.isolated_outputs_source,
        )
    c.true_only_if(
        "[output] biphasic",
        pl.biphasic,
        bl.biphasic,
        "a file cannot claim charge-balanced output, which lets needle programs run",
    )
    if pl.calibration is not None:
        # the guard counts two phases per pulse for a biphasic output: on a calibrated
        # profile, "not biphasic" halves the duty it computes and lets more current through
        c.equal("[output] biphasic", pl.biphasic, bl.biphasic)

    # [frame]
    c.equal("[frame] samples_per_frame", pl.samples_per_frame, bl.samples_per_frame)
    c.equal("[frame] sample_period_s", pl.sample_period_s, bl.sample_period_s)
    c.equal("[frame] frames_ahead", p.frames_ahead, b.frames_ahead)

    # [limits]
    c.at_most(
        "[limits] max_rise_fraction_per_s", pl.max_rise_fraction_per_s, bl.max_rise_fraction_per_s
    )
    c.at_most("[limits] max_session_s", pl.max_session_s, bl.max_session_s)

    # [device_settings]
    c.equal("[device_settings]", p.device_settings, b.device_settings)

    # [calibration]
    cal, bcal = pl.calibration, bl.calibration
    if bcal is not None:
        if cal is None:
            c.fail(
                "[calibration] is missing",
                f"[calibration] peak_ma_per_du = {bcal.peak_ma_per_du:g}, "
                f"load_ohm = {bcal.load_ohm:g}",
                f"a [calibration] table with peak_ma_per_du >= {bcal.peak_ma_per_du:g} "
                f"and load_ohm = {bcal.load_ohm:g}",
                f"the guard's current limits need it; {_WHY}",
            )
        else:
            c.at_least("[calibration] peak_ma_per_du", cal.peak_ma_per_du, bcal.peak_ma_per_du)
            c.equal("[calibration] load_ohm", cal.load_ohm, bcal.load_ohm)
    elif cal is not None:
        # A calibration added to an uncalibrated model is refused: being calibrated lifts the
        # 25 % ceiling on head, face and neck sites, and a file's figure (say 0.0001 mA per du)
        # is checked by nobody. A device is calibrated by measuring it (acustim calibrate).
        c.fail(
            f"[calibration] peak_ma_per_du = {cal.peak_ma_per_du:g}",
            "no [calibration] table (uncalibrated)",
            "no [calibration] table; calibrate the device on a load with 'acustim calibrate'",
            "a file's figure is unchecked, and calibrated devices run face sites without the "
            "25 % ceiling",
        )

    # [[gatt]]: the services and characteristics the codec talks to
    if p.gatt != b.gatt:
        c.fail(
            f"[[gatt]] differs ({_show_gatt(p.gatt)})",
            _show_gatt(b.gatt),
            "only the same services, characteristics and properties, in the same order",
            _SAME,
        )
