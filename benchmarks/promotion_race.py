"""Promotion race: N processes promote their own version from the same observed production,
round after round, on the local backend or on an S3 API server on loopback.

    python -m benchmarks.promotion_race --racers 8 --rounds 20 --backend local
    python -m benchmarks.promotion_race --racers 8 --rounds 20 --backend s3

Each round: all racers wait at a barrier, read production (the same version for all: the
previous round is over), register their own version, wait at a second barrier, then call
`promote` against the version they read. The last line is
`rounds=R winners=W lost_updates=L dangling=D p50_promote_ms=… p99_promote_ms=…`, where
winners counts rounds with exactly one winner, lost_updates counts successful promotions
that the history does not hold (or rounds with more than one winner), and dangling counts
alias targets without a version record.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from resources.registry.registry import (
    PRODUCTION,
    ModelRegistry,
    ModelVersion,
    PromotionConflict,
    promote,
)
from resources.storage.object_store import ConditionalObjectStore, LocalObjectStore, open_s3_store

MODEL = "race"


@dataclass(frozen=True)
class StoreSpec:
    """How a racer process opens the same store (a picklable description, not a client)."""

    backend: str
    root: str = ""
    endpoint: str = ""
    bucket: str = ""

    def open(self) -> ConditionalObjectStore:
        if self.backend == "local":
            return LocalObjectStore(self.root)
        return open_s3_store(
            self.bucket,
            "ml",
            region="us-east-1",
            endpoint_url=self.endpoint,
            access_key="testing",
            secret_key="testing",
        )


def racer_version(round_index: int, racer: int) -> str:
    return f"r{round_index:03d}-p{racer:02d}"


def version_record(version: str, run_id: str) -> ModelVersion:
    """A record whose fields say plainly that no checkpoint stands behind it (a race only)."""
    return ModelVersion(
        version=version,
        day="2025-01-01",
        checkpoint_key=f"checkpoints/race/{version}/step-000000",
        checkpoint_manifest_uri="none (race benchmark)",
        manifest_sha256="0" * 64,
        config={},
        dataset={"inputs": []},
        fingerprint=version,
        parent_version=None,
        code_version="race",
        environment={},
        image_digest=None,
        torch_version="none",
        metrics={},
        evaluation={"passed": True},
        run_id=run_id,
    )


def _racer(spec: StoreSpec, racer: int, rounds: int, barrier: Any, results: Any) -> None:
    registry = ModelRegistry(spec.open(), MODEL)
    for round_index in range(rounds):
        barrier.wait()
        state = registry.read_alias(PRODUCTION)
        observed = state.version if state else None
        version = racer_version(round_index, racer)
        run_id = f"run-{round_index}-{racer}"
        registry.register(version_record(version, run_id))
        barrier.wait()
        started = time.perf_counter()
        try:
            promote(registry, version, observed, f"race round {round_index}", run_id)
            outcome = "won"
        except PromotionConflict:
            outcome = "conflict"
        except Exception as err:  # reported, counted as neither winner nor clean loser
            outcome = f"error: {type(err).__name__}: {err}"
        elapsed_ms = (time.perf_counter() - started) * 1000
        results.put((round_index, racer, version, run_id, outcome, elapsed_ms))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_race(spec: StoreSpec, racers: int, rounds: int) -> dict[str, Any]:
    """Run the race and check the registry afterwards; returns the counts the last line shows
    plus the per-round outcomes."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(racers)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_racer, args=(spec, i, rounds, barrier, results), daemon=True)
        for i in range(racers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in range(racers * rounds)]
    for process in processes:
        process.join(timeout=60)
    registry = ModelRegistry(spec.open(), MODEL)
    history = registry.history(PRODUCTION)
    by_round: dict[int, Counter] = {}
    for round_index, _, _, _, outcome, _ in outcomes:
        by_round.setdefault(round_index, Counter())[outcome] += 1
    won = {(version, run_id) for _, _, version, run_id, outcome, _ in outcomes if outcome == "won"}
    recorded = {(m.to_version, m.run_id) for m in history}
    lost = len(won - recorded) + sum(max(0, c["won"] - 1) for c in by_round.values())
    known = set(registry.list_versions())
    dangling = sum(1 for m in history if m.to_version not in known)
    state = registry.read_alias(PRODUCTION)
    dangling += int(state is not None and state.version not in known)
    return {
        "rounds": rounds,
        "winners": sum(1 for c in by_round.values() if c["won"] == 1),
        "conflicts": sum(c["conflict"] for c in by_round.values()),
        "errors": [o for *_, o, _ in outcomes if o.startswith("error")],
        "lost_updates": lost,
        "dangling": dangling,
        "history": history,
        "problems": registry.verify(PRODUCTION),
        "by_round": by_round,
        "latencies_ms": [o[-1] for o in outcomes],
    }


def summary_line(result: dict[str, Any]) -> str:
    latencies = result["latencies_ms"]
    return (
        f"rounds={result['rounds']} winners={result['winners']} "
        f"lost_updates={result['lost_updates']} dangling={result['dangling']} "
        f"p50_promote_ms={_percentile(latencies, 0.5):.1f} "
        f"p99_promote_ms={_percentile(latencies, 0.99):.1f}"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--racers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backend", choices=("local", "s3"), default="local")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="promotion-race-") as tmp:
        if args.backend == "local":
            result = run_race(StoreSpec("local", root=tmp), args.racers, args.rounds)
        else:
            import boto3
            from moto.server import ThreadedMotoServer

            os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
            port = _free_port()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            try:
                endpoint = f"http://127.0.0.1:{port}"
                bucket = f"race-{uuid.uuid4().hex[:12]}"
                boto3.client(
                    "s3",
                    endpoint_url=endpoint,
                    region_name="us-east-1",
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                ).create_bucket(Bucket=bucket)
                spec = StoreSpec("s3", endpoint=endpoint, bucket=bucket)
                result = run_race(spec, args.racers, args.rounds)
            finally:
                server.stop()
    print(f"backend={args.backend} racers={args.racers}")
    print(f"history_moves={len(result['history'])} conflicts={result['conflicts']}")
    print(f"errors={len(result['errors'])} {result['errors'][:3]}")
    print(f"registry_problems={result['problems']}")
    print(summary_line(result))


if __name__ == "__main__":
    main()
