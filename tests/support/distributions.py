"""A faked set of installed distributions, through the public `importlib.metadata` view.

`importlib.metadata.distributions()` is how everything (our drift gate, the registry's
environment hash, entry-point discovery) lists what is installed; replacing it for one test
changes what they all see and nothing that is imported. The fakes are real `Distribution`
subclasses: their metadata is read the way the standard library reads any other.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from resources.environment import normalized


class _ReportedAs(importlib.metadata.Distribution):
    """A real installed distribution whose METADATA reports another version."""

    def __init__(self, real: importlib.metadata.Distribution, version: str):
        self._real, self._version = real, version

    def read_text(self, filename: str) -> str | None:
        text = self._real.read_text(filename)
        if filename == "METADATA" and text is not None:
            text = re.sub(r"(?m)^Version: .*$", f"Version: {self._version}", text, count=1)
        return text

    def locate_file(self, path: str | Path) -> Path:
        return Path(self._real.locate_file(path))


class _NotOnDisk(importlib.metadata.Distribution):
    """A distribution that only exists as metadata: an unlocked package someone installed."""

    def __init__(self, name: str, version: str):
        self._metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"

    def read_text(self, filename: str) -> str | None:
        return self._metadata if filename == "METADATA" else None

    def locate_file(self, path: str | Path) -> Path:
        return Path("/nonexistent") / path


def fake_installed(
    monkeypatch: pytest.MonkeyPatch,
    *,
    changed: dict[str, str] | None = None,
    removed: Iterable[str] = (),
    added: dict[str, str] | None = None,
) -> None:
    """From now on (this test), the installed set is the real one with `changed` packages
    reporting other versions, `removed` ones gone and `added` ones present."""
    real = list(importlib.metadata.distributions())
    changed = {normalized(k): v for k, v in (changed or {}).items()}
    gone = {normalized(name) for name in removed}
    faked: list[importlib.metadata.Distribution] = []
    for dist in real:
        name = normalized(dist.metadata["Name"] or "")
        if name in gone:
            continue
        faked.append(_ReportedAs(dist, changed[name]) if name in changed else dist)
    faked += [_NotOnDisk(name, version) for name, version in (added or {}).items()]
    monkeypatch.setattr(importlib.metadata, "distributions", lambda **_: iter(faked))
