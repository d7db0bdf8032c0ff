"""FAKE devices: firmware emulators written from the protocol document.

Each simulator speaks a device's real byte protocol (bytes in, state and replies out), runs on
a ``Clock`` that tests can drive, and keeps a ``DeliveryRecord`` of what it would have
delivered: the oracle for safety tests seen from the device's side.

This package must never import the host side (``firmware_bridge``, ``safety``, ``acustim``,
``gui``): a simulator is an independent implementation of the firmware, written from
``../shared/reference/devices.md``, so a codec bug cannot cancel itself out in tests.
Device-specific constants (UUIDs, frame sizes) stay in their modules, e.g.
``simulators.coyote3``.

No list of devices here: a device's profile (``device_profiles/<id>.toml``: ``[device]
simulator = "coyote3"``, ``simulator_class = "Coyote3Simulator"``) names its simulator, and the
host side makes it from there (``firmware_bridge.link``). ``simulators.Coyote3Simulator`` and
the like still work: the class is found in its device module (``simulators/<device>.py``) by
name.

Each device module also provides ``contract``, a ``ContractHook``: the few device-specific
things the shared device contract (``tests/contract``) and the bench need of its simulator.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from simulators.clock import Clock, FunctionClock, VirtualClock, WallClock
from simulators.record import DeliveredInterval, DeliveryRecord

__all__ = [
    "Clock",
    "ContractHook",
    "DeliveredInterval",
    "DeliveryRecord",
    "FunctionClock",
    "VirtualClock",
    "WallClock",
    "contract_of",
    "device_modules",
]

Sim = TypeVar("Sim")


@dataclass(frozen=True)
class ContractHook(Generic[Sim]):
    """What the shared device contract needs of one simulator, in the device's own terms.

    Each ``simulators/<device>.py`` defines one, named ``contract``, next to its simulator.
    The contract runs a session through the engine with ``levels={"A": level_du}`` and
    ``ceilings={"A": 4 * level_du}`` and judges it on the simulator's record."""

    #: a level (device units) well inside the device's scale
    level_du: int
    #: undo the device-side limits, as a reboot or another app would (called where the
    #: simulator lives, before the link drops)
    tamper: Callable[[Sim], None]
    #: the device holds the session's limits for these channel ceilings (a channel not named
    #: has ceiling 0) and nothing above zero
    limits_written: Callable[[Sim, Mapping[str, int]], bool]
    #: output_du on the device for one du of level at intensity 1
    output_scale: float = 1.0


#: modules of this package that are not a device's
_SHARED_MODULES = frozenset({"clock", "output_stage", "record"})


def device_modules() -> list[str]:
    """The names of the device modules of this package (``coyote3``, ``et312``, ...)."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(__path__)
        if not m.ispkg and not m.name.startswith("_") and m.name not in _SHARED_MODULES
    )


def contract_of(simulator: type[Any]) -> ContractHook[Any]:
    """The ``contract`` hook of the module that defines the simulator class ``simulator``."""
    module = importlib.import_module(simulator.__module__)
    hook = getattr(module, "contract", None)
    if not isinstance(hook, ContractHook):
        raise LookupError(
            f"{simulator.__module__} defines no 'contract' (a simulators.ContractHook) next to "
            f"{simulator.__name__}; the device contract (tests/contract) and the bench need one"
        )
    return hook


def __getattr__(name: str) -> type[Any]:
    """``simulators.Coyote3Simulator``: a simulator class, found by name in its device
    module, so that a new device needs no line here."""
    if name.endswith("Simulator"):
        for module_name in device_modules():
            found = getattr(importlib.import_module(f"simulators.{module_name}"), name, None)
            if isinstance(found, type):
                globals()[name] = found
                return found
    raise AttributeError(f"module 'simulators' has no attribute {name!r}")
