"""A test-only sixth device, "fakedev", made of exactly what the architecture page says a new
device is: one profile (``fakedev.toml``), one codec module with its driver (``codec.py``) and
one simulator module with its contract hook (``simulator.py``). ``tests/contract/
test_new_device.py`` puts the profile among the built-in ones and shows that the links,
``make_driver``, the contract suite, the bench and ``acustim devices`` take it up by
themselves.

The protocol (BLE, one service, one characteristic to write and one to read):

- ``L a b``: the soft limits of channels A and B, 0..100 (the device clamps strength to them);
  at power-on they are 100.
- ``O`` then per channel A, B: strength 0..100, pulse rate 1..100 Hz, intensity 0..100 %. An
  output is valid for 250 ms from its write; then the channel stops.
- the status characteristic reads the battery, 0..100 %.
"""
