"""A model registry on the object store where moving an alias cannot lose an update, and a
move that committed is never reported as failed.

Layout under `registry/<model>/` (Dagster-free; the same code runs against a local directory
and S3 through `ConditionalObjectStore`):

    versions/<version>.json           immutable version record, written create-only
    aliases/<alias>.json              the pointer: the version it names, the move that put it
                                      there (sequence, kind, from, to, why, run id, time) and
                                      the versions rolled back from this alias; only ever
                                      replaced by compare-and-swap
    history/<alias>/<sequence>.json   one create-only record per move, numbered 1, 2, 3, ...

A move, in order: (1) the target's version record must exist; (2) the current pointer's move
must have its history record (read; written only if a crash left it out); (3) the pointer is
replaced by CAS against the version of the pointer that was read (S3 `IfMatch=<etag>`, locally
a flock + content hash), carrying sequence n+1; (4) history record n+1 is written create-only
from that pointer.

The commit point is the CAS in (3). Before it, a failed write is retried (bounded, with
backoff) or reported as "nothing moved"; when its answer is lost (timeout, reset, a 409/412
that may hide an earlier attempt of the same request) the pointer is re-read, and if it holds
this very move the move is reported as committed. After it, nothing can turn the move into a
failure: (4) is idempotent and retried, and if it still fails the result says so
(`MoveResult.history_pending`) while readers take the record from the pointer (which holds it
verbatim) until the next move of the alias writes it in (2).

Why it cannot race: of any number of writers that read the pointer at sequence n, exactly one
replaces it; every other is refused, re-reads, sees that the alias no longer names the version
it decided against, and gets `PromotionConflict` (re-decide, never retry blindly). History
record n+1 is only ever written from the pointer that holds move n+1, so it is identical
whoever writes it, and a gap or a duplicate is impossible.

Rollback (`rollback`) moves the alias to the version that served before the current one was
promoted, skipping versions that were themselves rolled back, and marks the version it moves
away from in the pointer (atomically with the move): `promote` refuses a marked version unless
the caller names it in `reinstate`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from resources.storage.object_store import (
    ConditionalObjectStore,
    ConditionalWriteConflict,
    ObjectNotFound,
    PreconditionFailed,
    validate_object_key,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

REGISTRY_PREFIX = "registry"
RECORD_FORMAT = "model-registry-version/v1"
POINTER_FORMAT = "model-registry-alias/v1"
PRODUCTION = "production"
# The registry namespace of the template's model (ModelRegistryResource.model_name).
DEFAULT_MODEL = "ctr"
# Attempts of one move when the CAS keeps failing while the alias still names the expected
# version (S3 409 ConditionalRequestConflict, a lost answer, or a move away and back).
MAX_CAS_ATTEMPTS = 8
# Reads of history when the pointer moved while the records were read (each read is a
# consistent snapshot; re-reading only makes it end at the newest move).
HISTORY_READ_ATTEMPTS = 3
PROMOTION = "promotion"  # any move to a named version (the daily promotion, a pin)
ROLLBACK = "rollback"  # a move back to what served before (marks the version it leaves)
_HISTORY_FILE = re.compile(r"^(\d{8})\.json$")


class RegistryError(RuntimeError):
    """Base class of the registry's errors."""


class UnknownVersion(RegistryError):
    """No version record with this id."""


class VersionAlreadyRegistered(RegistryError):
    """The version id exists with different content: version records are immutable."""


class AliasNotSet(RegistryError):
    """The alias names no version yet."""


class RegistryInconsistent(RegistryError):
    """What the registry's construction rules out (a dangling alias, a history gap)."""


class GarbledPointer(RegistryInconsistent):
    """The alias pointer object is not a pointer (truncated, edited by hand)."""


class PromotionConflict(RegistryError):
    """The alias no longer names the version the caller decided against."""

    def __init__(
        self,
        *,
        alias: str,
        candidate: str,
        expected: str | None,
        observed: str | None,
        key: str = "",
    ):
        self.alias, self.candidate = alias, candidate
        self.expected, self.observed = expected, observed
        where = f" ({key})" if key else ""
        super().__init__(
            f"alias {alias!r}{where}: refused to move it to {candidate!r}: it was expected to "
            f"name {expected!r} but names {observed!r}. The decision was made against "
            f"{expected!r}; re-decide against {observed!r} (re-evaluate the candidate against "
            "the current version), do not retry blindly."
        )


class AliasContended(RegistryError):
    """Every compare-and-swap attempt met a concurrent write while the alias still named the
    expected version: nothing moved, and nothing was decided against another version."""


class MoveFailed(RegistryError):
    """The pointer write kept failing (store unreachable, timeouts) and the pointer, re-read,
    does not hold the move: nothing moved. `outcome_known` is False when it could not be
    re-read either: re-run the same call, which reports the move if it had committed."""

    def __init__(self, message: str, *, outcome_known: bool = True):
        super().__init__(message)
        self.outcome_known = outcome_known


class RolledBackVersion(RegistryError):
    """The target was rolled back from this alias; only a move naming it in `reinstate` may
    bring it back."""


class NothingToRollBackTo(RegistryError):
    """No version served before the current one (other than versions rolled back)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff (and jitter) for one store operation."""

    attempts: int = 5
    first_delay_s: float = 0.05
    max_delay_s: float = 1.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (0-based)."""
        base = min(self.max_delay_s, self.first_delay_s * 2**attempt)
        return base * random.uniform(0.5, 1.0)


def canonical_json(value: Any) -> bytes:
    """Deterministic bytes: the same value always serializes identically."""
    return json.dumps(value, sort_keys=True, indent=1, allow_nan=False).encode()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def environment_fingerprint(lock_path: str | Path | None = None) -> dict[str, Any]:
    """sha256 of the installed distributions (`name==version`, sorted) and, when a lock file is
    given, the pins whose installed version differs (`name: installed != locked`)."""
    installed: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            installed[name] = dist.version
    lines = "\n".join(f"{name}=={version}" for name, version in sorted(installed.items()))
    result: dict[str, Any] = {"environment_sha256": hashlib.sha256(lines.encode()).hexdigest()}
    if lock_path is not None:
        text = Path(lock_path).read_text()
        mismatches = []
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" not in line:
                continue
            name, _, version = line.partition("==")
            name = name.strip().lower().replace("_", "-")
            have = installed.get(name)
            if have != version.strip():
                mismatches.append(f"{name}: installed {have} != locked {version.strip()}")
        result["lock_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        result["lock_mismatches"] = mismatches
    return result


@dataclass(frozen=True)
class ModelVersion:
    """An immutable version record: what was trained, on what, by which code, and how it did."""

    version: str
    day: str
    checkpoint_key: str  # the step directory, e.g. checkpoints/model_checkpoint/<D>/<fp>/step-…
    checkpoint_manifest_uri: str
    manifest_sha256: str  # sha256 of the checkpoint's manifest.json: the exact bytes approved
    config: dict[str, Any]  # trainer config (serving builds the model from it)
    dataset: dict[str, Any]  # training-dataset manifest: input partitions and their hashes
    fingerprint: str
    parent_version: str | None  # warm-start parent
    code_version: str
    environment: dict[str, Any]  # environment_fingerprint()
    image_digest: str | None
    torch_version: str
    metrics: dict[str, Any]
    evaluation: dict[str, Any]
    run_id: str
    registered_at: str = field(default_factory=_now)

    def to_json(self, model: str) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "model": model, **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelVersion:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias: the pointer carries the latest, history keeps all of them."""

    alias: str
    sequence: int
    from_version: str | None
    to_version: str
    why: str
    run_id: str
    moved_at: str
    kind: str = PROMOTION  # PROMOTION or ROLLBACK; records written before kinds existed: PROMOTION

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "sequence": self.sequence,
            "kind": self.kind,
            "from": self.from_version,
            "to": self.to_version,
            "why": self.why,
            "run_id": self.run_id,
            "moved_at": self.moved_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AliasMove:
        return cls(
            alias=data["alias"],
            sequence=int(data["sequence"]),
            from_version=data["from"],
            to_version=data["to"],
            why=data["why"],
            run_id=data["run_id"],
            moved_at=data["moved_at"],
            kind=data.get("kind", PROMOTION),
        )


@dataclass(frozen=True)
class AliasState:
    """The pointer as read: the version it names, the move that put it there, and the store's
    version of the pointer object (what the next compare-and-swap must name)."""

    alias: str
    version: str
    move: AliasMove
    store_version: str
    # Versions rolled back from this alias -> the sequence of the rollback move that left them.
    rolled_back: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MoveResult:
    """What a move did. `moved` is False when the alias already held this move (an idempotent
    re-run). `history_pending` is None once the move's history record is durable; otherwise
    it says why it is not yet (the move is committed all the same: readers take the record
    from the pointer, and the next move of the alias writes it)."""

    move: AliasMove
    moved: bool
    history_pending: str | None = None


class ModelRegistry:
    def __init__(self, store: ConditionalObjectStore, model: str, retry: RetryPolicy | None = None):
        self.store = store
        self.model = validate_object_key(model)
        self.retry = retry or RetryPolicy()

    # Keys ---------------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return f"{REGISTRY_PREFIX}/{self.model}"

    def version_key(self, version: str) -> str:
        return validate_object_key(f"{self.prefix}/versions/{version}.json")

    def alias_key(self, alias: str) -> str:
        return validate_object_key(f"{self.prefix}/aliases/{alias}.json")

    def history_key(self, alias: str, sequence: int) -> str:
        return validate_object_key(f"{self.prefix}/history/{alias}/{sequence:08d}.json")

    # Versions -----------------------------------------------------------------------------

    def register(self, record: ModelVersion) -> ModelVersion:
        """Write the record create-only. Registering the same content again (a retried run) is
        a no-op returning the stored record; other content under the same id is refused."""
        key = self.version_key(record.version)
        data = canonical_json(record.to_json(self.model))

        def create() -> ModelVersion | None:
            try:
                self.store.put_if_absent(key, data)
                return None
            except PreconditionFailed:  # exists; or a 409 and absent: the read raises, retried
                return self.get_version(record.version)

        try:
            stored = self._retry(create)
        except Exception as err:
            raise RegistryError(
                f"model {self.model!r} version {record.version!r}: registering "
                f"{self.store.uri(key)} failed {self.retry.attempts} times "
                f"({type(err).__name__}: {err}); nothing was promoted. Run it again: "
                "registering the same record is idempotent."
            ) from err
        if stored is None:
            return record
        differing = sorted(
            f.name
            for f in fields(ModelVersion)
            if f.name not in ("registered_at", "run_id")
            and getattr(stored, f.name) != getattr(record, f.name)
        )
        if differing:
            raise VersionAlreadyRegistered(
                f"model {self.model!r} version {record.version!r} is already registered "
                f"({self.store.uri(key)}) with different {', '.join(differing)}. Version records "
                "are immutable: register the new model under a new version id."
            )
        return stored

    def get_version(self, version: str) -> ModelVersion:
        key = self.version_key(version)
        try:
            return ModelVersion.from_json(json.loads(self.store.get_bytes(key)))
        except ObjectNotFound as err:
            raise UnknownVersion(
                f"model {self.model!r} has no version {version!r} (no record at "
                f"{self.store.uri(key)}). Register it first, or pick one of "
                f"{self.list_versions()[-5:]}."
            ) from err

    def list_versions(self) -> list[str]:
        prefix = f"{self.prefix}/versions"
        return sorted(
            key.rsplit("/", 1)[-1].removesuffix(".json") for key in self.store.list_keys(prefix)
        )

    # Retries ------------------------------------------------------------------------------

    def _retry(
        self, operation: Callable[[], T], *, fatal: tuple[type[BaseException], ...] = ()
    ) -> T:
        """Run `operation`, retrying any failure but `fatal` ones with backoff, at most
        `self.retry.attempts` times; the last failure propagates. Only for operations that
        are idempotent (reads, create-only writes that verify what exists)."""
        for attempt in range(self.retry.attempts):
            try:
                return operation()
            except fatal:
                raise
            except Exception:
                if attempt + 1 >= self.retry.attempts:
                    raise
                time.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    # Aliases ------------------------------------------------------------------------------

    def read_alias(self, alias: str) -> AliasState | None:
        key = self.alias_key(alias)
        try:
            current = self.store.read_with_version(key)
        except ObjectNotFound:
            return None
        try:
            pointer = json.loads(current.data)
            move = AliasMove.from_json(pointer["move"])
            rolled_back = {str(v): int(n) for v, n in pointer.get("rolled_back", {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise GarbledPointer(
                f"model {self.model!r} alias {alias!r}: the pointer {self.store.uri(key)} is not "
                f"a valid pointer ({type(err).__name__}: {err}; {len(current.data)} bytes). "
                "Nothing can be promoted or served through it until it is repaired: "
                f"ModelRegistry.restore_pointer({alias!r}, why=...) rewrites it from the newest "
                f"record under {self.store.uri(self.history_prefix(alias))} (or restore the "
                "object's previous version from the bucket's versioning)."
            ) from err
        return AliasState(alias, move.to_version, move, current.version, rolled_back)

    def resolve(self, alias: str) -> ModelVersion:
        """The version record the alias names; a pointer to a missing record is an error."""
        state = self.read_alias(alias)
        if state is None:
            raise AliasNotSet(
                f"model {self.model!r} alias {alias!r} names no version yet "
                f"({self.store.uri(self.alias_key(alias))} is absent). Promote a version first."
            )
        try:
            return self.get_version(state.version)
        except UnknownVersion as err:
            raise RegistryInconsistent(f"alias {alias!r} is dangling: {err}") from err

    def history_prefix(self, alias: str) -> str:
        return validate_object_key(f"{self.prefix}/history/{alias}")

    def _moves_up_to(self, alias: str, state: AliasState | None) -> list[AliasMove]:
        """The stored records up to the move `state` names (newer ones, written after the
        pointer was read, are left out), plus that move itself if its record is not stored."""
        last = state.move.sequence if state else None
        moves = []
        for key in self.store.list_keys(self.history_prefix(alias)):
            name = _HISTORY_FILE.match(key.rsplit("/", 1)[-1])
            if name is None or (last is not None and int(name.group(1)) > last):
                continue
            moves.append(AliasMove.from_json(json.loads(self.store.get_bytes(key))))
        if state is not None and (not moves or moves[-1].sequence < last):
            moves.append(state.move)  # committed; its record is written by the next move
        return moves

    def history(self, alias: str) -> list[AliasMove]:
        """Every move of the alias in order, 1..n with no gap, as of one reading of the
        pointer: it is read first, then the records up to the move it names (records are
        immutable, so this is a consistent snapshot even while the alias moves). If the
        pointer moved meanwhile, it is read again so that the answer ends at a recent move."""
        for _ in range(HISTORY_READ_ATTEMPTS):
            state = self.read_alias(alias)
            moves = self._moves_up_to(alias, state)
            now = self.read_alias(alias)
            if (now.move if now else None) == (state.move if state else None):
                break
        problems = _history_problems(alias, moves, state)
        if problems:
            raise RegistryInconsistent(
                f"history of alias {alias!r} ({self.store.uri(self.history_prefix(alias))}): "
                f"{'; '.join(problems)}"
            )
        return moves

    def verify(self, alias: str) -> list[str]:
        """What is wrong with the alias (empty when consistent): a dangling pointer, history
        gaps, moves that do not chain, a history target without a version record."""
        try:
            moves = self.history(alias)
        except RegistryInconsistent as err:
            return [str(err)]
        known = set(self.list_versions())
        return [
            f"move {m.sequence} of alias {alias!r} names {m.to_version!r}, which has no record"
            for m in moves
            if m.to_version not in known
        ]

    def _write_history(self, move: AliasMove, *, read_first: bool) -> None:
        """Make the history record of `move` durable; idempotent, retried. `read_first`: the
        record usually exists (the previous move's), so look before writing: a create-only PUT
        on an existing key is refused (412) and would fail on every promotion."""
        key = self.history_key(move.alias, move.sequence)
        data = canonical_json(move.to_json())

        def stored_matches() -> None:
            stored = AliasMove.from_json(json.loads(self.store.get_bytes(key)))
            if stored != move:
                raise RegistryInconsistent(
                    f"history record {self.store.uri(key)} differs from move {move.sequence} "
                    f"({move.from_version!r} -> {move.to_version!r}) that the alias pointer "
                    "holds; inspect both objects"
                )

        def attempt() -> None:
            if read_first:
                try:
                    return stored_matches()
                except ObjectNotFound:
                    pass  # a crash came between the pointer and this record
            try:
                self.store.put_if_absent(key, data)
            except ConditionalWriteConflict:
                raise  # not applied: retried
            except PreconditionFailed:
                stored_matches()  # another writer (or our own lost attempt) created it

        self._retry(attempt, fatal=(RegistryInconsistent,))

    def repair(self, alias: str) -> None:
        """Write the history record of the pointer's move if a failure after the commit left
        it out (every move does this first; readers never need it)."""
        state = self.read_alias(alias)
        if state is not None:
            self._write_history(state.move, read_first=True)

    def _history_after_commit(self, move: AliasMove, *, read_first: bool) -> str | None:
        """Past the commit point nothing may fail the move: the reason, if the record is not
        durable yet."""
        try:
            self._write_history(move, read_first=read_first)
            return None
        except Exception as err:
            key = self.history_key(move.alias, move.sequence)
            pending = (
                f"alias {move.alias!r} move {move.sequence} ({move.from_version!r} -> "
                f"{move.to_version!r}) is committed, but its history record "
                f"{self.store.uri(key)} is not written yet ({type(err).__name__}: {err}); the "
                "pointer holds the move, and the next move of the alias (or "
                "ModelRegistry.repair) writes it"
            )
            log.warning(pending)
            return pending

    def move_alias(
        self,
        alias: str,
        to_version: str,
        *,
        expected: str | None,
        why: str,
        run_id: str,
        reinstate: str | None = None,
    ) -> MoveResult:
        """Move `alias` to `to_version` only if it still names `expected` (None: unset).

        Raises PromotionConflict when it names anything else (also when it names `to_version`
        by another move than this one from `expected`), UnknownVersion when the target has no
        record, RolledBackVersion when the target was rolled back from this alias and
        `reinstate` does not name it. A failed CAS re-reads and re-decides; it never
        overwrites.
        """
        if reinstate is not None and reinstate != to_version:
            raise ValueError(
                f"alias {alias!r}: reinstate={reinstate!r} must name the target {to_version!r}"
            )
        # No pointer may name a version without a record.
        self._retry(lambda: self.get_version(to_version), fatal=(UnknownVersion,))

        def target(state: AliasState | None) -> str:
            if state is not None and to_version in state.rolled_back and reinstate is None:
                raise RolledBackVersion(
                    f"model {self.model!r} alias {alias!r} "
                    f"({self.store.uri(self.alias_key(alias))}): refused to move it from "
                    f"{state.version!r} to {to_version!r}: "
                    f"{to_version!r} was rolled back from it (move "
                    f"{state.rolled_back[to_version]}). An automatic promotion never brings a "
                    f"rolled-back version back; to do it on purpose, name it: "
                    f"reinstate={to_version!r}."
                )
            return to_version

        def done(state: AliasState) -> bool:  # this move made already, or nothing to move
            return state.version == to_version and expected in (state.move.from_version, to_version)

        return self._move(
            alias, target, done, candidate=to_version, expected=expected, why=why, run_id=run_id
        )

    def rollback(self, alias: str, *, expected: str, why: str, run_id: str) -> MoveResult:
        """Move `alias` back to the version that served before `expected` (the version it
        names now) was promoted, skipping versions that were themselves rolled back, and mark
        `expected` as rolled back (in the same compare-and-swap). Rolling back again goes
        further back, never forward. Returns the move (from: the version left, to: the one
        restored). Raises PromotionConflict when the alias does not name `expected`,
        NothingToRollBackTo when nothing served before it."""

        def target(state: AliasState | None) -> str:
            if state is None:
                raise AliasNotSet(
                    f"model {self.model!r} alias {alias!r} names no version; nothing to roll back"
                )
            return self._rollback_target(alias, state)

        def done(state: AliasState) -> bool:
            return state.move.kind == ROLLBACK and state.move.from_version == expected

        return self._move(
            alias,
            target,
            done,
            candidate=f"the version that served before {expected!r} (rollback)",
            expected=expected,
            why=why,
            run_id=run_id,
            kind=ROLLBACK,
        )

    def rollback_target(self, alias: str) -> str:
        """The version `rollback` would move the alias to now."""
        state = self.read_alias(alias)
        if state is None:
            raise AliasNotSet(f"model {self.model!r} alias {alias!r} names no version")
        return self._rollback_target(alias, state)

    def _rollback_target(self, alias: str, state: AliasState) -> str:
        target = rollback_target(self._moves_up_to(alias, state), state.version, state.rolled_back)
        if target is None:
            raise NothingToRollBackTo(
                f"model {self.model!r} alias {alias!r} ({self.store.uri(self.alias_key(alias))}): "
                f"no version served before {state.version!r} other than rolled-back ones "
                f"{sorted(state.rolled_back)}; move it to a named version instead"
            )
        return target

    def _move(
        self,
        alias: str,
        choose: Callable[[AliasState | None], str],
        done: Callable[[AliasState], bool],
        *,
        candidate: str,
        expected: str | None,
        why: str,
        run_id: str,
        kind: str = PROMOTION,
    ) -> MoveResult:
        """The compare-and-swap loop shared by promotions and rollbacks: `choose` picks the
        target from the pointer as read, `done` recognizes this call's move already made (an
        idempotent re-run after a crash or a lost answer)."""
        if not why.strip():
            raise ValueError(f"moving alias {alias!r} needs a reason (why)")
        validate_object_key(alias)
        key = self.alias_key(alias)
        last_error: Exception | None = None
        for attempt in range(MAX_CAS_ATTEMPTS):
            state = self._read_alias_retried(alias)
            observed = state.version if state else None
            if state is not None and done(state):
                pending = self._history_after_commit(state.move, read_first=True)
                return MoveResult(state.move, moved=False, history_pending=pending)
            if observed != expected:
                raise PromotionConflict(
                    alias=alias,
                    candidate=candidate,
                    expected=expected,
                    observed=observed,
                    key=self.store.uri(key),
                )
            to_version = choose(state)
            if to_version == observed:  # expected is already the target: nothing to move
                pending = self._history_after_commit(state.move, read_first=True)
                return MoveResult(state.move, moved=False, history_pending=pending)
            move = AliasMove(
                alias=alias,
                sequence=state.move.sequence + 1 if state else 1,
                from_version=observed,
                to_version=to_version,
                why=why,
                run_id=run_id,
                moved_at=_now(),
                kind=kind,
            )
            rolled_back = dict(state.rolled_back) if state else {}
            if kind == ROLLBACK and observed is not None:
                rolled_back[observed] = move.sequence
            pointer = canonical_json(
                {
                    "format": POINTER_FORMAT,
                    "model": self.model,
                    "move": move.to_json(),
                    "rolled_back": rolled_back,
                }
            )
            if state is not None:
                try:  # before the commit point: a failure here moves nothing
                    self._write_history(state.move, read_first=True)
                except RegistryInconsistent:
                    raise
                except Exception as err:
                    record_key = self.history_key(alias, state.move.sequence)
                    raise MoveFailed(
                        f"alias {alias!r} ({self.store.uri(key)}): nothing moved ({observed!r} "
                        f"-> {to_version!r}): the history record of move {state.move.sequence} "
                        f"({self.store.uri(record_key)}) is missing and could not be written "
                        f"first ({type(err).__name__}: {err}). Re-run the same call."
                    ) from err
            try:
                if state is None:
                    self.store.put_if_absent(key, pointer)
                else:
                    self.store.put_if_version(key, pointer, state.store_version)
            except Exception as err:
                # The answer is lost or negative, yet the write may have landed (a timeout, a
                # reset, a client retry refused because its first attempt succeeded): the
                # pointer says which.
                try:
                    now = self._read_alias_retried(alias)
                except Exception as read_err:
                    raise MoveFailed(
                        f"alias {alias!r} ({self.store.uri(key)}): the outcome of moving it "
                        f"from {observed!r} to {to_version!r} (move {move.sequence}) is unknown: "
                        f"the write failed ({type(err).__name__}: {err}) and the pointer could "
                        f"not be read back ({type(read_err).__name__}: {read_err}). Re-run the "
                        "same call: it reports the move if it committed, makes it otherwise.",
                        outcome_known=False,
                    ) from err
                if now is not None and now.move == move:
                    pending = self._history_after_commit(move, read_first=True)
                    return MoveResult(move, moved=True, history_pending=pending)
                last_error = err
                if not isinstance(err, PreconditionFailed) or isinstance(
                    err, ConditionalWriteConflict
                ):
                    time.sleep(self.retry.delay(min(attempt, 6)))
                continue  # re-read and re-decide
            pending = self._history_after_commit(move, read_first=False)
            return MoveResult(move, moved=True, history_pending=pending)
        detail = f"{type(last_error).__name__}: {last_error}"
        if isinstance(last_error, PreconditionFailed):
            raise AliasContended(
                f"alias {alias!r} ({self.store.uri(key)}): nothing moved: {MAX_CAS_ATTEMPTS} "
                f"compare-and-swap attempts to move it from {expected!r} to {candidate!r} met a "
                "concurrent write "
                f"each time while it still named {expected!r} (last: {detail}). Nothing was "
                "decided against another version: retry the same call later."
            )
        raise MoveFailed(
            f"alias {alias!r} ({self.store.uri(key)}): nothing moved: {MAX_CAS_ATTEMPTS} "
            f"attempts to move it from {expected!r} to {candidate!r} failed and the pointer, "
            "read back, still "
            f"names {expected!r} (last: {detail}). A write whose answer was lost can in rare "
            "cases land later: read the alias before deciding again."
        ) from last_error

    def _read_alias_retried(self, alias: str) -> AliasState | None:
        return self._retry(lambda: self.read_alias(alias), fatal=(GarbledPointer,))

    def restore_pointer(self, alias: str, why: str) -> AliasState:
        """Rewrite a garbled pointer from the newest history record (and the rollback marks
        the history holds), by compare-and-swap against the garbled object. A move that only
        the damaged pointer held (its record not yet written) is lost: `why` is logged."""
        key = self.alias_key(alias)
        current = self.store.read_with_version(key)
        try:
            self.read_alias(alias)
            raise RegistryError(f"alias {alias!r}: the pointer {self.store.uri(key)} is valid")
        except GarbledPointer:
            pass
        moves = self._moves_up_to(alias, None)
        if not moves:
            raise RegistryInconsistent(
                f"alias {alias!r}: no history under {self.store.uri(self.history_prefix(alias))}"
                " to restore the pointer from"
            )
        rolled_back = {m.from_version: m.sequence for m in moves if m.kind == ROLLBACK}
        pointer = {
            "format": POINTER_FORMAT,
            "model": self.model,
            "move": moves[-1].to_json(),
            "rolled_back": rolled_back,
        }
        self.store.put_if_version(key, canonical_json(pointer), current.version)
        log.warning(f"alias {alias!r}: pointer restored to move {moves[-1].sequence}: {why}")
        restored = self.read_alias(alias)
        assert restored is not None
        return restored


def rollback_target(
    moves: list[AliasMove], current: str, rolled_back: Mapping[str, int]
) -> str | None:
    """The version that served before `current` was promoted, skipping versions rolled back:
    find the newest non-rollback move that put `current` in place and take the version it
    replaced; if that one was rolled back (or is `current`), repeat from the move that put it
    in place, further back. None when the walk reaches the start of the history."""
    skip = {current, *rolled_back}
    version, before = current, len(moves)
    while True:
        index = next(
            (
                i
                for i in range(before - 1, -1, -1)
                if moves[i].to_version == version and moves[i].kind != ROLLBACK
            ),
            None,
        )
        if index is None:
            return None
        previous = moves[index].from_version
        if previous is None:
            return None
        if previous not in skip:
            return previous
        version, before = previous, index


def _history_problems(alias: str, moves: list[AliasMove], state: AliasState | None) -> list[str]:
    problems = []
    for index, move in enumerate(moves, start=1):
        if move.sequence != index:
            problems.append(f"record {index} holds sequence {move.sequence} (a gap)")
            break
        previous = moves[index - 2].to_version if index > 1 else None
        if move.from_version != previous:
            problems.append(
                f"move {index} starts from {move.from_version!r}, previous move ended at "
                f"{previous!r}"
            )
    if state is None and moves:
        problems.append("history exists but the alias pointer is missing")
    if state is not None and (not moves or moves[-1] != state.move):
        problems.append(
            f"the pointer holds move {state.move.sequence} but history ends at "
            f"{moves[-1].sequence if moves else 0}"
        )
    return problems


def promote(
    registry: ModelRegistry,
    candidate_version: str,
    expected_production: str | None,
    why: str,
    run_id: str,
    *,
    alias: str = PRODUCTION,
    reinstate: str | None = None,
) -> MoveResult:
    """Make `candidate_version` production if production is still `expected_production` (the
    version the candidate was evaluated against; None when there was none). Raises
    PromotionConflict otherwise: re-evaluate against the new production, then decide again.
    A version rolled back from production is refused unless `reinstate` names it."""
    return registry.move_alias(
        alias,
        candidate_version,
        expected=expected_production,
        why=why,
        run_id=run_id,
        reinstate=reinstate,
    )
