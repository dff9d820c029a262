"""The trainer runs in images and pods without Dagster: importing it must not pull Dagster."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.environment import REPO_ROOT

_PROBE = """
import importlib, json, pkgutil, sys
import training
modules = [m.name for m in pkgutil.walk_packages(training.__path__, "training.")]
for name in modules:
    importlib.import_module(name)
print(json.dumps({
    "modules": modules,
    "dagster": sorted(m for m in sys.modules if m.split(".")[0].startswith("dagster")),
}))
"""


def test_importing_every_training_module_never_imports_dagster():
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"training.loop", "training.checkpoint", "training.cli"} <= set(report["modules"])
    assert report["dagster"] == []
