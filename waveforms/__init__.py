"""WHAT to deliver: the program model, EA segment kinds, rendering, and the built-in library.

Never talks to devices and never decides what is safe.

The names below load on first use (PEP 562 ``__getattr__``), not with the package, so that
``waveforms.errors`` (the root of acustim's errors, which every package imports) does not
bring in numpy with the rendering: the ``acustim`` command line starts without it.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

#: each exported name and the module it comes from
_LAZY = {
    "builtin_names": "waveforms.builtin",
    "builtin_programs": "waveforms.builtin",
    "load_builtin": "waveforms.builtin",
    "load_manual": "waveforms.builtin",
    "manual_names": "waveforms.builtin",
    "AcustimError": "waveforms.errors",
    "ProgramError": "waveforms.errors",
    "load_entry": "waveforms.files",
    "load_program": "waveforms.files",
    "parse_entry": "waveforms.files",
    "parse_program": "waveforms.files",
    "Channel": "waveforms.program",
    "ChannelDemand": "waveforms.program",
    "Continuous": "waveforms.program",
    "DenseDisperse": "waveforms.program",
    "Intermittent": "waveforms.program",
    "ManualEntry": "waveforms.program",
    "Program": "waveforms.program",
    "Ramp": "waveforms.program",
    "Segment": "waveforms.program",
    "Rendered": "waveforms.render",
    "render": "waveforms.render",
    "segment_at": "waveforms.render",
    "InvalidProgramError": "waveforms.validate",
    "Problem": "waveforms.validate",
    "check_entry": "waveforms.validate",
    "check_program": "waveforms.validate",
    "validate_program": "waveforms.validate",
}

if TYPE_CHECKING:  # what type checkers see; at run time ``__getattr__`` below imports them
    from waveforms.builtin import (
        builtin_names,
        builtin_programs,
        load_builtin,
        load_manual,
        manual_names,
    )
    from waveforms.errors import AcustimError, ProgramError
    from waveforms.files import load_entry, load_program, parse_entry, parse_program
    from waveforms.program import (
        Channel,
        ChannelDemand,
        Continuous,
        DenseDisperse,
        Intermittent,
        ManualEntry,
        Program,
        Ramp,
        Segment,
    )
    from waveforms.render import Rendered, render, segment_at
    from waveforms.validate import (
        InvalidProgramError,
        Problem,
        check_entry,
        check_program,
        validate_program,
    )
else:

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # once: later look-ups do not come here
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_LAZY))

    class _Package(types.ModuleType):
        """Importing the submodule ``waveforms.render`` binds it on the package as ``render``;
        the package's ``render`` is the function (as when this file imported it eagerly)."""

        def __setattr__(self, name: str, value: object) -> None:
            if name == "render" and isinstance(value, types.ModuleType):
                value = value.render
            super().__setattr__(name, value)

    sys.modules[__name__].__class__ = _Package


__all__ = [
    "AcustimError",
    "Channel",
    "ChannelDemand",
    "Continuous",
    "DenseDisperse",
    "Intermittent",
    "InvalidProgramError",
    "ManualEntry",
    "Problem",
    "Program",
    "ProgramError",
    "Ramp",
    "Rendered",
    "Segment",
    "builtin_names",
    "builtin_programs",
    "check_entry",
    "check_program",
    "load_builtin",
    "load_entry",
    "load_manual",
    "load_program",
    "manual_names",
    "parse_entry",
    "parse_program",
    "render",
    "segment_at",
    "validate_program",
]
