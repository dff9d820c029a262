"""Promotion race: N processes promote their own version from the same observed production,
round after round, on the local backend or on an S3 API server on loopback, with S3's 409
ConditionalRequestConflict injected into a fraction of the registry's conditional writes.

    python -m benchmarks.promotion_race --racers 8 --rounds 20 --backend local
    python -m benchmarks.promotion_race --racers 8 --rounds 20 --backend s3 --inject-409 0.2

Each round: all racers wait at a barrier, read production (the same version for all: the
previous round is over), register their own version, wait at a second barrier, then call
`promote` against the version they read. With `--inject-409 F`, each conditional write of a
racer (pointer swap, history record) is answered 409 with probability F: half of them before
the write (not applied, as S3 documents a 409), half after it landed (what a client retry of a
landed write, or a lost response, looks like: the caller cannot tell whether it committed).
The last line is `rounds=R winners=W lost_updates=L dangling=D committed_reported_failed=C
p50_promote_ms=… p99_promote_ms=…`, where winners counts rounds with exactly one winner,
lost_updates counts successful promotions that the history does not hold (or rounds with more
than one winner), dangling counts alias targets without a version record, and
committed_reported_failed counts promotions that raised although their move is in the history
(a promotion reported failed that had committed).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import random
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
from resources.storage.object_store import (
    ConditionalObjectStore,
    ConditionalWriteConflict,
    LocalObjectStore,
    open_s3_store,
)

MODEL = "race"


@dataclass(frozen=True)
class StoreSpec:
    """How a racer process opens the same store (a picklable description, not a client)."""

    backend: str
    root: str = ""
    endpoint: str = ""
    bucket: str = ""
    inject_409: float = 0.0  # fraction of conditional writes answered 409

    def open(self, seed: int = 0) -> ConditionalObjectStore:
        store = self._open()
        if self.inject_409 > 0:
            return Conflicts409(store, self.inject_409, random.Random(seed))
        return store

    def _open(self) -> ConditionalObjectStore:
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


class Conflicts409:
    """The store, with S3's 409 ConditionalRequestConflict answered to a fraction of its
    conditional writes, half before the write and half after it landed."""

    def __init__(self, store: ConditionalObjectStore, fraction: float, rng: random.Random):
        self._store, self._fraction, self._rng = store, fraction, rng
        self.injected = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _conditional(self, method: str, key: str, *args: Any) -> Any:
        write = getattr(self._store, method)
        if "/versions/" in key or self._rng.random() >= self._fraction:
            return write(key, *args)
        self.injected += 1
        if self._rng.random() < 0.5:
            write(key, *args)  # landed; the answer the caller gets is the 409
        raise ConditionalWriteConflict(f"{key}: injected 409 ConditionalRequestConflict", key=key)

    def put_if_absent(self, key: str, data: bytes) -> Any:
        return self._conditional("put_if_absent", key, data)

    def put_if_version(self, key: str, data: bytes, version: str) -> Any:
        return self._conditional("put_if_version", key, data, version)


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
    registry = ModelRegistry(spec.open(seed=racer), MODEL)
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
        injected = getattr(registry.store, "injected", 0)  # so far, by this racer
        results.put((round_index, racer, version, run_id, outcome, injected, elapsed_ms))


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
    registry = ModelRegistry(dataclasses.replace(spec, inject_409=0.0).open(), MODEL)
    history = registry.history(PRODUCTION)
    by_round: dict[int, Counter] = {}
    for round_index, _, _, _, outcome, _, _ in outcomes:
        by_round.setdefault(round_index, Counter())[outcome] += 1
    won = {(version, run_id) for _, _, version, run_id, outcome, *_ in outcomes if outcome == "won"}
    recorded = {(m.to_version, m.run_id) for m in history}
    lost = len(won - recorded) + sum(max(0, c["won"] - 1) for c in by_round.values())
    raised = {(version, run_id) for _, _, version, run_id, o, *_ in outcomes if o != "won"}
    injected: dict[int, int] = {}
    for _, racer, *_, count, _ in outcomes:
        injected[racer] = max(injected.get(racer, 0), count)
    known = set(registry.list_versions())
    dangling = sum(1 for m in history if m.to_version not in known)
    state = registry.read_alias(PRODUCTION)
    dangling += int(state is not None and state.version not in known)
    return {
        "rounds": rounds,
        "winners": sum(1 for c in by_round.values() if c["won"] == 1),
        "conflicts": sum(c["conflict"] for c in by_round.values()),
        "errors": [o[4] for o in outcomes if o[4].startswith("error")],
        "injected_409": sum(injected.values()),
        "lost_updates": lost,
        "dangling": dangling,
        "committed_reported_failed": len(raised & recorded),
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
        f"committed_reported_failed={result['committed_reported_failed']} "
        f"p50_promote_ms={_percentile(latencies, 0.5):.1f} "
        f"p99_promote_ms={_percentile(latencies, 0.99):.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--racers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backend", choices=("local", "s3"), default="local")
    parser.add_argument(
        "--inject-409",
        type=float,
        default=0.2,
        help="fraction of the racers' conditional writes answered 409 (0 for none)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="promotion-race-") as tmp:
        if args.backend == "local":
            spec = StoreSpec("local", root=tmp, inject_409=args.inject_409)
            result = run_race(spec, args.racers, args.rounds)
        else:
            import boto3

            from benchmarks.loopback_s3 import LoopbackS3

            os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
            server = LoopbackS3().start()
            try:
                endpoint = server.endpoint
                bucket = f"race-{uuid.uuid4().hex[:12]}"
                boto3.client(
                    "s3",
                    endpoint_url=endpoint,
                    region_name="us-east-1",
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                ).create_bucket(Bucket=bucket)
                spec = StoreSpec("s3", endpoint=endpoint, bucket=bucket, inject_409=args.inject_409)
                result = run_race(spec, args.racers, args.rounds)
            finally:
                server.stop()
    print(f"backend={args.backend} racers={args.racers} inject_409={args.inject_409}")
    print(
        f"history_moves={len(result['history'])} conflicts={result['conflicts']} "
        f"injected_409={result['injected_409']}"
    )
    print(f"errors={len(result['errors'])} {result['errors'][:3]}")
    print(f"registry_problems={result['problems']}")
    print(summary_line(result))


if __name__ == "__main__":
    main()
