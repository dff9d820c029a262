"""The lock installer takes the +cpu torch as pip is configured, else from the lock's torch index.

Every check is a dry run or `make -n`: pip reads index pages and local wheels, downloads nothing
and never reaches download.pytorch.org.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.environment import REPO_ROOT

INSTALLER = "scripts/install_lock.py"
LOCK = REPO_ROOT / "requirements.lock"
TORCH = "torch==2.13.0+cpu"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
INDEX_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index"}


def _dry_run(env: dict[str, str]) -> tuple[list[list[str]], str]:
    done = subprocess.run(
        [sys.executable, INSTALLER, "--dry-run", str(LOCK)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in done.stdout.splitlines()], done.stderr


def _other_pins() -> list[str]:
    lines = [line.strip() for line in LOCK.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#") and line != TORCH]


def _pip_config_ignored(empty_index: Path) -> dict[str, str]:
    """A fresh laptop: no pip config file, no PIP_* variable, an index without the +cpu build.

    The index is an empty local folder standing in for PyPI (which has torch 2.13.0 but never a
    +cpu build), so the test needs no network.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env |= {
        "PIP_CONFIG_FILE": os.devnull,  # pip then skips every config file (global, user, site)
        "PIP_INDEX_URL": empty_index.as_uri(),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    return env


def test_without_a_configured_torch_only_torch_falls_back_to_the_cpu_index(tmp_path: Path):
    empty_index = tmp_path / "simple"
    empty_index.mkdir()
    env = _pip_config_ignored(empty_index)
    config = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert config, "pip config list printed nothing"
    assert all(line.startswith(":env:") for line in config), f"a config file leaked in: {config}"

    commands, stderr = _dry_run(env)

    assert f"# torch-index: {TORCH_INDEX}" in LOCK.read_text().splitlines()
    assert len(commands) == 2, commands
    others, torch = commands
    assert torch[-1] == TORCH and "--no-deps" in torch
    assert torch[torch.index("--index-url") + 1] == TORCH_INDEX
    assert "--extra-index-url" not in torch, "the fallback replaces the index for torch alone"
    assert "--no-deps" in others and not INDEX_OPTIONS & set(others)
    assert others[others.index("--no-deps") + 1 :] == _other_pins()
    assert f"from {TORCH_INDEX}" in stderr


def test_a_local_torch_wheel_is_used_without_any_fallback():
    # The machine's own pip configuration, with --no-index so that only its find-links (the
    # local wheel folder) are asked and no index is reached over the network.
    env = os.environ | {"PIP_NO_INDEX": "1"}
    dry_install = ["install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet", TORCH]
    probe = subprocess.run(
        [sys.executable, "-m", "pip", *dry_install],
        env=env,
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"pip's configured find-links hold no {TORCH} wheel here")

    commands, stderr = _dry_run(env)

    torch = [command for command in commands if TORCH in command]
    assert len(torch) == 1, commands
    assert not INDEX_OPTIONS & set(torch[0]), f"a fallback was attempted: {torch[0]}"
    assert "from the configured sources" in stderr


def _make_n(*args: str) -> list[str]:
    # A parent `make test` passes its flags down; this must be a plain dry run.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    done = subprocess.run(
        ["make", "-n", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_makefile_and_the_dockerfile_install_through_the_installer(tmp_path: Path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # newer than the lock and the installer
    assert not any(INSTALLER in line for line in _make_n(f"VENV={venv}", "venv"))
    for prerequisite in ("requirements.lock", "requirements-dev.lock", INSTALLER):
        recipe = _make_n("-W", prerequisite, f"VENV={venv}", "venv")
        assert recipe[1:] == [
            f"{venv}/bin/python {INSTALLER} requirements.lock",
            f"{venv}/bin/python {INSTALLER} requirements-dev.lock",
            f"{venv}/bin/python -m pip check",
            f"touch {venv}/.installed",
        ], recipe

    lock = _make_n("lock")
    assert f".venv-lock/bin/python {INSTALLER} .venv-lock/torch.lock" in lock
    assert any(f'echo "# torch-index: {TORCH_INDEX}"' in line for line in lock)

    dockerfile = (REPO_ROOT / "deployments/docker/Dockerfile").read_text().splitlines()
    install = dockerfile.index(f"RUN python {INSTALLER} requirements.lock && pip check")
    assert dockerfile.index(f"COPY {INSTALLER} scripts/") < install
