"""THE APPLICATION: sessions, records, reports and the ``acustim`` command line.

The Python API for engineers::

    from acustim import Engine, load_program

    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:coyote3")
        session = device.start(load_program("han-2-100-analgesia"), levels={"A": 20})
        print(session.wait().outcome)

The app (``gui``) reaches everything through the names below: the engine, the pre-start
flow, device listings, the program model and the screening questions.

The names below load on first use (PEP 562 ``__getattr__``), not with the package: the
``acustim`` command line imports this package and must start without the engine, numpy or
the device stacks (``tests/acustim/test_cli_startup.py``). Never imports ``gui``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: each lazily exported name and where it comes from: a module, or ``module:name`` when the
#: name here differs from the module's
_LAZY = {
    # the engine: devices and sessions
    "Device": "acustim.engine",
    "Engine": "acustim.engine",
    "Session": "acustim.engine",
    "load_program": "acustim.engine",
    "resolve_device": "acustim.engine",
    "SessionConfig": "acustim.runner",
    "SessionStatus": "acustim.runner",
    "ChannelStatus": "acustim.runner",
    # the pre-start flow (acustim.prestart)
    "prepare": "acustim.prestart",
    "StartPlan": "acustim.prestart",
    "PlanItem": "acustim.prestart",
    "ItemKind": "acustim.prestart",
    "Pending": "acustim.prestart",
    "UnconfirmedError": "acustim.prestart",
    "SHOWN_BEFORE_START": "acustim.prestart",
    "CAVEAT_KINDS": "acustim.prestart",
    "SCREENING_QUESTIONS": "safety.screening",
    "ScreeningQuestion": "safety.screening:Question",
    "SessionLimits": "safety.limits",
    # finding devices (nothing is opened)
    "DeviceProfile": "device_profiles.profile",
    "Found": "firmware_bridge.discovery",
    "list_simulators": "firmware_bridge.discovery:simulators",
    "list_serial_ports": "firmware_bridge.discovery:serial_ports",
    # programs, the built-in library and the acupoint catalogue
    "AcustimError": "waveforms.errors",
    "Program": "waveforms.program",
    "Segment": "waveforms.program",
    "builtin_names": "waveforms.builtin",
    "builtin_programs": "waveforms.builtin",
    "Acupoint": "waveforms.acupoints",
    "AcupointError": "waveforms.acupoints",
    "SIDE_NAMES": "waveforms.acupoints",
    "Side": "waveforms.acupoints",
    "parse_site": "waveforms.acupoints",
}

if TYPE_CHECKING:  # what type checkers see; at run time ``__getattr__`` below imports them
    from acustim.engine import Device, Engine, Session, load_program, resolve_device
    from acustim.prestart import (
        CAVEAT_KINDS,
        SHOWN_BEFORE_START,
        ItemKind,
        Pending,
        PlanItem,
        StartPlan,
        UnconfirmedError,
        prepare,
    )
    from acustim.runner import ChannelStatus, SessionConfig, SessionStatus
    from device_profiles.profile import DeviceProfile
    from firmware_bridge.discovery import Found
    from firmware_bridge.discovery import serial_ports as list_serial_ports
    from firmware_bridge.discovery import simulators as list_simulators
    from safety.limits import SessionLimits
    from safety.screening import SCREENING_QUESTIONS
    from safety.screening import Question as ScreeningQuestion
    from waveforms.acupoints import SIDE_NAMES, Acupoint, AcupointError, Side, parse_site
    from waveforms.builtin import builtin_names, builtin_programs
    from waveforms.errors import AcustimError
    from waveforms.program import Program, Segment
else:

    def __getattr__(name: str) -> object:
        where = _LAZY.get(name)
        if where is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        module, _, attribute = where.partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
        globals()[name] = value  # once: later look-ups do not come here
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CAVEAT_KINDS",
    "SCREENING_QUESTIONS",
    "SHOWN_BEFORE_START",
    "SIDE_NAMES",
    "Acupoint",
    "AcupointError",
    "AcustimError",
    "ChannelStatus",
    "Device",
    "DeviceProfile",
    "Engine",
    "Found",
    "ItemKind",
    "Pending",
    "PlanItem",
    "Program",
    "ScreeningQuestion",
    "Segment",
    "Session",
    "SessionConfig",
    "SessionLimits",
    "SessionStatus",
    "Side",
    "StartPlan",
    "UnconfirmedError",
    "__version__",
    "builtin_names",
    "builtin_programs",
    "list_serial_ports",
    "list_simulators",
    "load_program",
    "parse_site",
    "prepare",
    "resolve_device",
]
