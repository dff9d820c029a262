"""What a process pays to load the code location: `import definitions` against `import dagster`.

Every run worker, step process and code server starts by importing the definitions, so this is
paid per process. The baseline is dagster itself, which no code location can avoid; the rest is
the project's own modules and what they import (pyarrow, numpy). Each side runs in a fresh
interpreter with DAGSTER_DEPLOYMENT=local, alternating, and the medians of --repeats are kept.
Also reports whether the production-only clients (Kubernetes, dagster-aws, boto3) were loaded.

    python -m benchmarks.imports --repeats 7

The last line is `ratio=<import definitions / import dagster>`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

from resources.paths import PROJECT_ROOT

PRODUCTION_ONLY = ("dagster_k8s", "kubernetes", "dagster_aws", "boto3", "botocore")
_TIMED = """
import json, sys, time
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(json.dumps({{"s": elapsed, "loaded": [m for m in {production} if m in sys.modules]}}))
"""


def time_import(module: str) -> dict:
    code = _TIMED.format(module=module, production=PRODUCTION_ONLY)
    env = {**os.environ, "DAGSTER_DEPLOYMENT": "local"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    definitions, dagster = [], []
    loaded: set[str] = set()
    for repeat in range(args.repeats):
        order = ("definitions", "dagster") if repeat % 2 else ("dagster", "definitions")
        for module in order:
            result = time_import(module)
            (definitions if module == "definitions" else dagster).append(result["s"])
            if module == "definitions":
                loaded.update(result["loaded"])
    print(f"repeats={args.repeats} (alternated, medians, fresh interpreter each)")
    print(f"import_definitions_s={statistics.median(definitions):.3f}")
    print(f"import_dagster_s={statistics.median(dagster):.3f}")
    print(f"production_only_modules_loaded={','.join(sorted(loaded)) or 'none'}")
    print(f"ratio={statistics.median(definitions) / statistics.median(dagster):.2f}")


if __name__ == "__main__":
    main()
