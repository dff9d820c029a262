"""The environment drift gate's core: the installed distributions against requirements.lock,
with the installed set faked through `importlib.metadata` (tests/support/distributions.py)."""

import logging

import pytest

from resources.environment import (
    LOCK_PATH,
    Drift,
    EnvironmentDrift,
    check_environment,
    locked_pins,
    require_locked_environment,
    warn_on_drift,
)
from resources.factory import build_resources
from tests.support.distributions import fake_installed

LOCKED = locked_pins(LOCK_PATH.read_text())


def test_the_environment_the_lock_installed_matches_it():
    # `make venv` (and the images) install exactly the lock: the suite runs on that.
    check = require_locked_environment(allow_drift=False)
    assert check.matches_lock, check.table()
    assert len(check.environment_sha256) == 64 and check.lock_sha256


def test_an_upgrade_a_removal_and_an_extra_package_are_each_one_row(monkeypatch):
    clean = check_environment()
    fake_installed(
        monkeypatch,
        changed={"pyarrow": "99.0.0"},
        removed=["adbc-driver-sqlite"],
        added={"opencv-python": "4.10.0.84"},
    )
    check = check_environment()
    assert check.drift == (
        Drift("adbc-driver-sqlite", LOCKED["adbc-driver-sqlite"], None),
        Drift("opencv-python", None, "4.10.0.84"),
        Drift("pyarrow", LOCKED["pyarrow"], "99.0.0"),
    )
    assert f"| pyarrow | {LOCKED['pyarrow']} | 99.0.0 |" in check.table()
    assert "| opencv-python | not locked | 4.10.0.84 |" in check.table()
    assert "| adbc-driver-sqlite | " in check.table() and "not installed |" in check.table()
    # The registry's environment hash sees the same installed set: it changed too.
    assert check.environment_sha256 != clean.environment_sha256
    assert check.lock_sha256 == clean.lock_sha256


def test_drift_is_refused_unless_allowed(monkeypatch):
    fake_installed(monkeypatch, changed={"numpy": "1.0.0"})
    with pytest.raises(EnvironmentDrift) as refused:
        require_locked_environment(allow_drift=False)
    message = str(refused.value)
    assert f"| numpy | {LOCKED['numpy']} | 1.0.0 |" in message
    assert "allow_environment_drift" in message and "make venv" in message
    allowed = require_locked_environment(allow_drift=True)
    assert allowed.drift == (Drift("numpy", LOCKED["numpy"], "1.0.0"),)


def test_names_compare_the_way_pip_normalizes_them(tmp_path, monkeypatch):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        LOCK_PATH.read_text().replace("typing_extensions==", "Typing.Extensions==")
        + "# a comment line\n"
    )
    assert check_environment(lock).matches_lock


def test_a_missing_lock_is_drift(tmp_path):
    check = check_environment(tmp_path / "requirements.lock")
    assert not check.matches_lock and check.lock_sha256 is None
    assert "no lock to compare with" in check.table()


def test_loading_on_a_drifted_environment_warns_and_still_builds(monkeypatch, caplog, tmp_path):
    fake_installed(monkeypatch, changed={"pandas": "0.1.0"})
    with caplog.at_level(logging.WARNING, logger="dagster"):
        assert not warn_on_drift().matches_lock
        resources = build_resources("local", local_root=tmp_path)
    assert "trainer" in resources
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once from each call
    assert all(f"| pandas | {LOCKED['pandas']} | 0.1.0 |" in r.getMessage() for r in warnings)
