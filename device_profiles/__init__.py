"""WHICH devices: one TOML file per device model, and the loader that checks it.

Never talks to a device.
"""

from device_profiles.profile import (
    DeviceProfile,
    ProfileError,
    builtin_profile_ids,
    load_profile,
    parse_profile,
)

__all__ = ["DeviceProfile", "ProfileError", "builtin_profile_ids", "load_profile", "parse_profile"]
