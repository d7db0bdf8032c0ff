"""One module per device protocol: pure encode/decode functions and the device's driver.

Each module exposes ``Driver`` (a ``firmware_bridge.driver.DeviceDriver``). A device's profile
names its module by import path (``[device] codec = "firmware_bridge.codecs.coyote3"``) and
``make_driver`` takes ``Driver`` from there: no list of codecs here. Codecs accept nothing but
frames made by the safety guard.
"""
