"""One module per device protocol: pure encode/decode functions and the device's driver.

Each module exposes ``Driver`` (a ``firmware_bridge.driver.DeviceDriver``). Codecs accept
nothing but frames made by the safety guard.
"""
