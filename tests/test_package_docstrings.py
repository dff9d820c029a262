"""Every package's docstring lists the modules it holds today, so a reader who opens a folder
learns what each file is for without opening them all, and a new module cannot go unlisted."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("contract", "assets", "resources", "sensors", "training", "scripts", "benchmarks")


def _packages() -> list[Path]:
    return sorted(init.parent for top in TOP_LEVEL for init in (ROOT / top).rglob("__init__.py"))


def _members(package: Path) -> list[str]:
    modules = [p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")]
    subpackages = [p.name for p in package.iterdir() if (p / "__init__.py").is_file()]
    return sorted(modules + subpackages)


@pytest.mark.parametrize("package", _packages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_package_docstring_names_every_module(package: Path) -> None:
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    missing = [m for m in _members(package) if not re.search(rf"\b{re.escape(m)}\b", docstring)]
    assert not missing, (
        f"{package.relative_to(ROOT)}/__init__.py's docstring does not name {missing}: "
        "add one line per module saying what it holds"
    )
