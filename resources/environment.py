"""The environment drift gate: is the running interpreter the one `requirements.lock` describes?

The seeds' "works yesterday, fails today": someone upgrades a shared library under a running
orchestrator and the next model trains on other code than the last. The lock pins every
distribution, but a pin only helps if something compares it with what is really imported.
This module does, through the public `importlib.metadata` view of the installed
distributions, and answers with a diff (package, locked, installed) and the environment hash
the registry records (`environment_fingerprint`, reused so there is one hash, not two).

Dagster-free: the training asset turns a drift into a refused run (assets/model/
environment_gate.py), the factory into a warning when the code location loads.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from resources.paths import PROJECT_ROOT
from resources.registry.registry import environment_fingerprint

RUNTIME_LOCK_PATH = PROJECT_ROOT / "requirements.lock"
DEV_LOCK_PATH = PROJECT_ROOT / "requirements-dev.lock"
# The lock this environment was installed from: an image carries the runtime lock only, a
# development checkout installs the development lock (the same pins plus the tools).
LOCK_PATH = DEV_LOCK_PATH if DEV_LOCK_PATH.is_file() else RUNTIME_LOCK_PATH
# The installer itself: `make lock` writes `pip freeze --all --exclude pip`, so pip is the one
# distribution a locked environment holds without a pin.
UNPINNED_TOOLS = frozenset({"pip"})


def normalized(name: str) -> str:
    """PEP 503 names: `typing_extensions`, `Typing.Extensions` and `typing-extensions` agree."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Drift:
    """One package whose installed version is not the locked one (None: absent on that side)."""

    package: str
    locked: str | None
    installed: str | None


@dataclass(frozen=True)
class EnvironmentCheck:
    """The running environment against the lock: the hashes and every difference."""

    lock_path: str
    environment_sha256: str
    lock_sha256: str | None
    drift: tuple[Drift, ...]

    @property
    def matches_lock(self) -> bool:
        return not self.drift

    def table(self) -> str:
        """The diff as a Markdown table (the run's failure and the UI show it as is)."""
        rows = [
            f"| {d.package} | {d.locked or 'not locked'} | {d.installed or 'not installed'} |"
            for d in self.drift
        ]
        return "\n".join(["| package | locked | installed |", "| --- | --- | --- |", *rows])

    def to_json(self) -> dict[str, Any]:
        return {
            "lock_path": self.lock_path,
            "environment_sha256": self.environment_sha256,
            "lock_sha256": self.lock_sha256,
            "drift": [asdict(d) for d in self.drift],
        }


class EnvironmentDrift(RuntimeError):
    """Training refused: the environment is not the locked one."""

    def __init__(self, check: EnvironmentCheck):
        self.check = check
        super().__init__(
            f"the environment differs from {check.lock_path} in {len(check.drift)} "
            f"package(s):\n{check.table()}\n"
            "Reinstall from the lock (`make venv`, or rebuild the image from it), or, to train "
            "on this environment anyway, set allow_environment_drift: true in the run config: "
            "the drift is then recorded on the model."
        )


def installed_distributions() -> dict[str, str]:
    """{normalized name: version} of every distribution this interpreter can import from."""
    installed: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        # The first one found on sys.path is the one imported; later duplicates are shadowed.
        if name and normalized(name) not in installed:
            installed[normalized(name)] = dist.version
    return installed


def locked_pins(lock_text: str) -> dict[str, str]:
    """{normalized name: version} of a lock's `name==version` lines (comments skipped)."""
    pins: dict[str, str] = {}
    for raw in lock_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[normalized(name.strip())] = version.strip()
    return pins


def compare(locked: dict[str, str], installed: dict[str, str]) -> tuple[Drift, ...]:
    """Every package whose installed version is not its pin, or that only one side has."""
    names = (set(locked) | set(installed)) - UNPINNED_TOOLS
    return tuple(
        Drift(name, locked.get(name), installed.get(name))
        for name in sorted(names)
        if locked.get(name) != installed.get(name)
    )


def check_environment(lock_path: str | Path = LOCK_PATH) -> EnvironmentCheck:
    """Compare the running environment with the lock at `lock_path`. A missing lock is one
    drift row of its own: nothing can vouch for the environment then."""
    path = Path(lock_path)
    hashes = environment_fingerprint(path if path.is_file() else None)
    if not path.is_file():
        missing = (Drift(f"(lock file {path})", None, "no lock to compare with"),)
        return EnvironmentCheck(str(path), hashes["environment_sha256"], None, missing)
    drift = compare(locked_pins(path.read_text()), installed_distributions())
    return EnvironmentCheck(
        str(path), hashes["environment_sha256"], hashes.get("lock_sha256"), drift
    )


def require_locked_environment(
    allow_drift: bool, lock_path: str | Path = LOCK_PATH
) -> EnvironmentCheck:
    """The check, raising EnvironmentDrift on any difference unless `allow_drift`."""
    check = check_environment(lock_path)
    if not check.matches_lock and not allow_drift:
        raise EnvironmentDrift(check)
    return check


def warn_on_drift(lock_path: str | Path = LOCK_PATH) -> EnvironmentCheck:
    """At code-location load: a warning in the log, never an error, so that a drifted code
    server still loads and its UI can show why its training runs are refused. Logged under
    the `dagster` logger, which Dagster's processes print."""
    check = check_environment(lock_path)
    if not check.matches_lock:
        logging.getLogger("dagster").warning(
            "this code location runs on an environment that differs from %s; training runs "
            "are refused until it matches (or allow_environment_drift is set):\n%s",
            check.lock_path,
            check.table(),
        )
    return check
