"""The lock pins every dependency of pyproject exactly, at a version its range admits."""

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.environment import REPO_ROOT


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock line {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [Requirement(spec) for spec in declared]


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = _lock()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared but not locked: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} in the lock is outside pyproject's {requirement.specifier}"
        )


def test_torch_is_the_cpu_build_and_dagster_moves_in_lock_step():
    pins = _lock()
    assert pins["torch"] == "2.13.0+cpu"
    assert {pins[n] for n in pins if n in {"dagster", "dagster-webserver", "dagster-graphql"}} == {
        "1.13.27"
    }
    assert {pins[n] for n in ("dagster-k8s", "dagster-aws", "dagster-postgres")} == {"0.29.27"}
    assert not any(name.startswith("nvidia-") for name in pins), "a CUDA package slipped in"
