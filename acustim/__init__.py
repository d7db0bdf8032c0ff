"""THE APPLICATION: sessions, records, reports and the ``acustim`` command line.

The Python API for engineers::

    from acustim import Engine, load_program

    with Engine(virtual_time=True, records=False) as engine:
        device = engine.connect("sim:coyote3")
        session = device.start(load_program("han-2-100-analgesia"), levels={"A": 20})
        print(session.wait().outcome)

Never imports ``gui``.
"""

__version__ = "0.1.0"

from acustim.engine import Device, Engine, Session, load_program, resolve_device
from acustim.runner import SessionConfig, SessionStatus

__all__ = [
    "Device",
    "Engine",
    "Session",
    "SessionConfig",
    "SessionStatus",
    "__version__",
    "load_program",
    "resolve_device",
]
