"""Split one resolved set of pins into the runtime lock and the development lock.

    python scripts/split_lock.py FULL_LOCK requirements.lock requirements-dev.lock

FULL_LOCK is `pip freeze` of an environment holding pyproject's runtime dependencies and its
`dev` extra, resolved together (`make lock` writes it). The runtime lock is the closure of
pyproject's `dependencies` over the installed distributions' own requirements, read through
`importlib.metadata` of the interpreter running this script (the one FULL_LOCK was frozen
from): what the images install. The development lock is every pin of FULL_LOCK: the runtime
pins, identical, plus the tools (tests, linters, loopback servers, profilers) that only a
development checkout needs. Both keep FULL_LOCK's header lines (its "# torch-index:").
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

RUNTIME_HEADER = "# Runtime: what the images install (pyproject's dependencies and theirs)."
DEV_HEADER = (
    "# Development: requirements.lock's pins, identical, plus pyproject's dev extra and its "
    "dependencies."
)


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(roots: list[str]) -> set[str]:
    """Normalized names of `roots` and everything they require, extras and markers applied."""
    seen: set[str] = set()
    pending = [Requirement(root) for root in roots]
    while pending:
        requirement = pending.pop()
        name = normalized(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError as err:
            raise SystemExit(
                f"split_lock: {requirement.name} is required but not installed in "
                f"{sys.prefix}; run this with the interpreter the full lock was frozen from"
            ) from err
        extras = requirement.extras or {""}
        for spec in map(Requirement, requires):
            if spec.marker is None or any(
                spec.marker.evaluate({"extra": extra}) for extra in extras
            ):
                pending.append(spec)
    return seen


def split(full_lock: str, runtime_roots: list[str]) -> tuple[str, str]:
    headers = [line for line in full_lock.splitlines() if line.startswith("#")]
    pins = [line.strip() for line in full_lock.splitlines() if line.strip() and line[0] != "#"]
    runtime_names = runtime_closure(runtime_roots)
    runtime = [pin for pin in pins if normalized(pin.partition("==")[0]) in runtime_names]
    missing = runtime_names - {normalized(pin.partition("==")[0]) for pin in runtime}
    if missing:
        raise SystemExit(f"split_lock: the runtime needs {sorted(missing)}, which the lock lacks")
    return (
        "\n".join([*headers, RUNTIME_HEADER, *runtime]) + "\n",
        "\n".join([*headers, DEV_HEADER, *pins]) + "\n",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("full_lock", type=Path)
    parser.add_argument("runtime_lock", type=Path)
    parser.add_argument("dev_lock", type=Path)
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args(argv)
    roots = tomllib.loads(args.pyproject.read_text())["project"]["dependencies"]
    runtime, dev = split(args.full_lock.read_text(), roots)
    args.runtime_lock.write_text(runtime)
    args.dev_lock.write_text(dev)


if __name__ == "__main__":
    main()
