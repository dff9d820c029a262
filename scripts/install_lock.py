"""Install a lock file exactly, taking the CPU torch build from wherever it is available.

    python scripts/install_lock.py [--dry-run] requirements.lock

Every pin goes in with --no-deps, resolved as pip is configured (PyPI, a mirror, find-links).
Pins with a local version label (torch==2.13.0+cpu) are never on PyPI, which refuses such
uploads; only when the configured sources have none of them do they come from the index named
in the lock's "# torch-index: URL" line, passed for that one command so that no other package
ever looks there. Stdlib only: it runs in a fresh venv before anything is installed. The caller
runs `pip check` afterwards.
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

INDEX_HEADER = "# torch-index:"
# What pip prints when no configured source has the requested version; any other failure is
# not a reason to look elsewhere.
NOT_FOUND = "No matching distribution found"
PIP = [sys.executable, "-m", "pip"]


def read_lock(path: Path) -> tuple[str | None, list[str], list[str]]:
    """The lock's torch index, its ordinary pins, and its pins with a local version label."""
    index, plain, local = None, [], []
    for line in (raw.strip() for raw in path.read_text().splitlines()):
        if line.startswith(INDEX_HEADER):
            index = line.removeprefix(INDEX_HEADER).strip()
        elif line and not line.startswith("#"):
            (local if "+" in line.partition("==")[2] else plain).append(line)
    return index, plain, local


def install_command(pins: list[str], *options: str) -> list[str]:
    return [*PIP, "install", "--quiet", "--no-deps", *options, *pins]


def run(command: list[str], dry_run: bool) -> None:
    if dry_run:
        print(shlex.join(command))
    else:
        subprocess.run(command, check=True)


def as_configured(pins: list[str], dry_run: bool) -> bool:
    """Install the pins as pip is configured; False when no configured source has them.

    A dry run asks the same question with pip's own --dry-run, so it takes the same decision
    without installing: a local wheel is read in place, an index that lacks the version costs
    only its page (pip 23.2 does download a wheel it finds on a remote index).
    """
    options = ("--dry-run", "--ignore-installed") if dry_run else ()
    result = subprocess.run(
        install_command(pins, *options),
        stdout=subprocess.DEVNULL if dry_run else None,
        stderr=subprocess.PIPE,
        text=True,
    )
    if result.returncode == 0:
        return True
    if NOT_FOUND in result.stderr:
        return False
    sys.stderr.write(result.stderr)
    raise SystemExit(f"install_lock: pip failed on {' '.join(pins)} (exit {result.returncode})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument(
        "--dry-run", action="store_true", help="print the pip install commands, install nothing"
    )
    args = parser.parse_args(argv)
    index, plain, local = read_lock(args.lock)

    if plain:
        run(install_command(plain), args.dry_run)
    if not local:
        return
    pins = " ".join(local)
    if as_configured(local, args.dry_run):
        if args.dry_run:
            print(shlex.join(install_command(local)))
        print(f"install_lock: {pins} from the configured sources", file=sys.stderr)
        return
    if index is None:
        raise SystemExit(
            f"install_lock: no configured source has {pins}, and {args.lock} names no "
            f"'{INDEX_HEADER} URL' to fall back to"
        )
    print(f"install_lock: {pins} is in no configured source; from {index}", file=sys.stderr)
    run(install_command(local, "--index-url", index), args.dry_run)


if __name__ == "__main__":
    main()
