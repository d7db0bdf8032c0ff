"""Test-wide set-up. Qt must run offscreen, set before anything imports Qt."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import pytest


@pytest.fixture(autouse=True)
def _records_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test writes session records into the real user data directory."""
    monkeypatch.setenv("ACUSTIM_DATA_DIR", str(tmp_path_factory.mktemp("acustim-data")))
