"""Before the window opens: can Qt's X11 (xcb) platform plugin load on this machine?

On a stock Debian or Ubuntu desktop the plugin needs three libraries that PySide6's wheels do
not bring. Without them Qt aborts with a long message about plugins; this says in one line
what to install. Reads only the environment and the dynamic linker's cache; never imports Qt.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Callable, Mapping

#: (library name for the linker, Debian package)
XCB_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("xcb-cursor", "libxcb-cursor0"),
    ("xcb-icccm", "libxcb-icccm4"),
    ("xcb-keysyms", "libxcb-keysyms1"),
)


def uses_xcb(env: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Qt will try the xcb plugin: Linux, no other platform asked for, and no Wayland session
    (where Qt picks its wayland plugin first)."""
    if not platform.startswith("linux"):
        return False
    asked = env.get("QT_QPA_PLATFORM", "")
    if asked:
        return asked.split(":")[0] == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def missing_xcb_packages(
    env: Mapping[str, str] | None = None,
    find: Callable[[str], str | None] = ctypes.util.find_library,
    platform: str = sys.platform,
) -> list[str]:
    """The Debian packages the xcb plugin needs and the linker cannot find (none: fine)."""
    if not uses_xcb(os.environ if env is None else env, platform):
        return []
    return [package for library, package in XCB_LIBRARIES if find(library) is None]


def xcb_hint(missing: list[str]) -> str:
    return (
        "acustim gui: the window cannot open: Qt's X11 plugin needs "
        f"{', '.join(missing)}; on Debian or Ubuntu: sudo apt-get install {' '.join(missing)}"
    )
