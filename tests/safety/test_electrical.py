"""Electrical formulas against the worked examples in the safety reference."""

from __future__ import annotations

import math

import pytest

from safety import electrical as E


def test_biphasic_200us_100hz_has_duty_004_and_rms_02_of_peak() -> None:
    # safety.md section 2 worked example: duty = 2 * 200e-6 * 100 = 0.04 -> I_rms = 0.2 I_peak
    assert E.duty_cycle(200, 100, biphasic=True) == pytest.approx(0.04)
    assert E.rms_current_ma(40.0, 200, 100, biphasic=True) == pytest.approx(8.0)


def test_2hz_600us_biphasic_rms_is_0049_of_peak() -> None:
    assert E.rms_current_ma(1.0, 600, 2, biphasic=True) == pytest.approx(0.049, abs=5e-4)


def test_monophasic_counts_one_phase() -> None:
    assert E.duty_cycle(200, 100, biphasic=False) == pytest.approx(0.02)


def test_duty_never_exceeds_one() -> None:
    assert E.duty_cycle(1000, 1000, biphasic=True) == 1.0


def test_peak_for_rms_inverts_rms() -> None:
    peak = E.peak_for_rms_ma(8.0, 200, 100, biphasic=True)
    assert peak == pytest.approx(40.0)
    assert E.peak_for_rms_ma(1.0, 0, 100, biphasic=True) == math.inf


def test_density_and_charge_per_phase() -> None:
    # 8 mA rms on a 4 cm^2 facial pad is the 2 mA/cm^2 threshold
    assert E.current_density_ma_per_cm2(8.0, 4.0) == pytest.approx(2.0)
    # 40 mA for 200 us = 8 uC
    assert E.charge_per_phase_uc(40.0, 200.0) == pytest.approx(8.0)
