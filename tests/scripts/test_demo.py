"""`make demo` on an empty DAGSTER_HOME: 3 partitions of 4 assets with rows, identical re-runs."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.environment import REPO_ROOT

# Starts real processes (trainer, daemon/webserver, make): `make test-fast` skips it.
# Runs the project's definitions on the example's generated data: pinned to the example.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("example_project")]

ROW = re.compile(r"^(\d{4}-\d{2}-\d{2}) +(\w+) +(\d+) +([0-9a-f]{12}) +(file://\S+)$")


def _make_demo(dagster_home: Path, data_dir: Path) -> list[tuple[str, str, int, str, str]]:
    done = subprocess.run(
        ["make", "-s", "demo"],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home), "LOCAL_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [ROW.match(line) for line in done.stdout.splitlines()]
    return [(m[1], m[2], int(m[3]), m[4], m[5]) for m in rows if m]


def _objects(data_dir: Path) -> dict[str, bytes]:
    store = data_dir / "object-store"
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in store.rglob("*.parquet")}


def test_make_demo_publishes_three_days_identically_twice(tmp_path):
    dagster_home, data_dir = tmp_path / "home", tmp_path / "data"
    first = _make_demo(dagster_home, data_dir)
    assert len({row[0] for row in first}) == 3
    assert len(first) == 12 and all(rows > 0 for _, _, rows, _, _ in first)
    assert (dagster_home / "dagster.yaml").is_file()
    objects = _objects(data_dir)
    assert len(objects) == 12

    second = _make_demo(dagster_home, data_dir)
    assert second == first
    assert _objects(data_dir) == objects
