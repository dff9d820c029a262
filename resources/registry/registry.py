"""A model registry on the object store where moving an alias cannot lose an update.

Layout under `registry/<model>/` (Dagster-free; the same code runs against a local directory
and S3 through `ConditionalObjectStore`):

    versions/<version>.json           immutable version record, written create-only
    aliases/<alias>.json              the pointer: the version it names and the move that put
                                      it there (sequence, from, to, why, run id, time); only
                                      ever replaced by compare-and-swap
    history/<alias>/<sequence>.json   one create-only record per move, numbered 1, 2, 3, ...

A move, in order: (1) the target's version record must exist; (2) the current pointer's move
is written to history if a crash left it out; (3) the pointer is replaced by CAS against the
version of the pointer that was read (S3 `IfMatch=<etag>`, locally a flock + content hash),
carrying sequence n+1; (4) history record n+1 is written create-only from that pointer.

Why it cannot race: the CAS in (3) is the only commit point. Of any number of writers that
read the pointer at sequence n, exactly one replaces it; every other gets PreconditionFailed,
re-reads, sees that the alias no longer names the version it decided against, and is refused
with `PromotionConflict` (re-decide, never retry blindly). History record n+1 is only ever
written from the pointer that holds move n+1, so it is identical whoever writes it, and a
gap or a duplicate is impossible.

Why a kill cannot corrupt it: a kill after (1) leaves a registered, unpromoted version; a kill
inside (3) leaves the old pointer (atomic rename / single PUT; the kernel drops the lock); a
kill after (3) leaves history one record short, and readers take the missing record from the
pointer (which holds it verbatim) until the next move writes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from resources.storage.object_store import (
    ConditionalObjectStore,
    ObjectNotFound,
    PreconditionFailed,
    validate_object_key,
)

REGISTRY_PREFIX = "registry"
RECORD_FORMAT = "model-registry-version/v1"
POINTER_FORMAT = "model-registry-alias/v1"
PRODUCTION = "production"
# The registry namespace of the template's model (ModelRegistryResource.model_name).
DEFAULT_MODEL = "ctr"
# Attempts of one move when the CAS keeps failing while the alias still names the expected
# version (S3 409 ConditionalRequestConflict, or a move away and back in between).
MAX_CAS_ATTEMPTS = 8
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


class PromotionConflict(RegistryError):
    """The alias no longer names the version the caller decided against."""

    def __init__(
        self, *, alias: str, candidate: str, expected: str | None, observed: str | None, detail=""
    ):
        self.alias, self.candidate = alias, candidate
        self.expected, self.observed = expected, observed
        super().__init__(
            f"alias {alias!r}: refused to move it to {candidate!r}: it was expected to name "
            f"{expected!r} but names {observed!r}{detail}. The decision was made against "
            f"{expected!r}; re-decide against {observed!r} (re-evaluate the candidate against "
            "the current version), do not retry blindly."
        )


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

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "sequence": self.sequence,
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
        )


@dataclass(frozen=True)
class AliasState:
    """The pointer as read: the version it names, the move that put it there, and the store's
    version of the pointer object (what the next compare-and-swap must name)."""

    alias: str
    version: str
    move: AliasMove
    store_version: str


@dataclass(frozen=True)
class MoveResult:
    move: AliasMove
    moved: bool  # False: the alias already named the target (an idempotent re-run)


class ModelRegistry:
    def __init__(self, store: ConditionalObjectStore, model: str):
        self.store = store
        self.model = validate_object_key(model)

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
        try:
            self.store.put_if_absent(key, canonical_json(record.to_json(self.model)))
            return record
        except PreconditionFailed:
            stored = self.get_version(record.version)
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

    # Aliases ------------------------------------------------------------------------------

    def read_alias(self, alias: str) -> AliasState | None:
        try:
            current = self.store.read_with_version(self.alias_key(alias))
        except ObjectNotFound:
            return None
        pointer = json.loads(current.data)
        move = AliasMove.from_json(pointer["move"])
        return AliasState(alias, move.to_version, move, current.version)

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

    def history(self, alias: str) -> list[AliasMove]:
        """Every move of the alias in order, 1..n with no gap: the stored records plus, if a
        crash came between the pointer and its history record, the move the pointer holds."""
        prefix = f"{self.prefix}/history/{alias}"
        moves = []
        for key in self.store.list_keys(prefix):
            if not _HISTORY_FILE.match(key.rsplit("/", 1)[-1]):
                continue
            moves.append(AliasMove.from_json(json.loads(self.store.get_bytes(key))))
        state = self.read_alias(alias)
        if state is not None and state.move.sequence == len(moves) + 1:
            moves.append(state.move)  # written to history by the next move
        problems = _history_problems(alias, moves, state)
        if problems:
            raise RegistryInconsistent(f"history of alias {alias!r}: {'; '.join(problems)}")
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

    def _record_history(self, move: AliasMove) -> None:
        key = self.history_key(move.alias, move.sequence)
        data = canonical_json(move.to_json())
        try:
            self.store.put_if_absent(key, data)
        except PreconditionFailed:
            existing = self.store.get_bytes(key)
            if existing != data:
                raise RegistryInconsistent(
                    f"history record {self.store.uri(key)} differs from the move the alias "
                    f"pointer holds for sequence {move.sequence}; inspect both objects"
                ) from None

    def move_alias(
        self,
        alias: str,
        to_version: str,
        *,
        expected: str | None,
        why: str,
        run_id: str,
    ) -> MoveResult:
        """Move `alias` to `to_version` only if it still names `expected` (None: unset).

        Raises PromotionConflict when it names anything else, UnknownVersion when the target
        has no record. A failed CAS re-reads and re-decides; it never overwrites.
        """
        if not why.strip():
            raise ValueError(f"moving alias {alias!r} to {to_version!r} needs a reason (why)")
        validate_object_key(alias)
        self.get_version(to_version)  # no pointer may name a version without a record
        key = self.alias_key(alias)
        for _ in range(MAX_CAS_ATTEMPTS):
            state = self.read_alias(alias)
            observed = state.version if state else None
            if observed == to_version and state is not None:
                self._record_history(state.move)
                return MoveResult(state.move, moved=False)
            if observed != expected:
                raise PromotionConflict(
                    alias=alias, candidate=to_version, expected=expected, observed=observed
                )
            move = AliasMove(
                alias=alias,
                sequence=state.move.sequence + 1 if state else 1,
                from_version=observed,
                to_version=to_version,
                why=why,
                run_id=run_id,
                moved_at=_now(),
            )
            pointer = canonical_json(
                {"format": POINTER_FORMAT, "model": self.model, "move": move.to_json()}
            )
            try:
                if state is None:
                    self.store.put_if_absent(key, pointer)
                else:
                    self._record_history(state.move)  # completes a move a crash left out
                    self.store.put_if_version(key, pointer, state.store_version)
            except PreconditionFailed:
                continue  # someone else wrote the pointer: re-read and re-decide
            self._record_history(move)
            return MoveResult(move, moved=True)
        raise PromotionConflict(
            alias=alias,
            candidate=to_version,
            expected=expected,
            observed=expected,
            detail=f", yet {MAX_CAS_ATTEMPTS} compare-and-swap attempts in a row met a "
            "concurrent write",
        )

    def previous_version(self, alias: str) -> str:
        """The version the alias named before its latest move (what "previous" rolls back to)."""
        state = self.read_alias(alias)
        if state is None or state.move.from_version is None:
            raise UnknownVersion(
                f"alias {alias!r} has no previous version (it is "
                f"{'unset' if state is None else 'at its first move'}); name a version instead"
            )
        return state.move.from_version


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
) -> MoveResult:
    """Make `candidate_version` production if production is still `expected_production` (the
    version the candidate was evaluated against; None when there was none). Raises
    PromotionConflict otherwise: re-evaluate against the new production, then decide again."""
    return registry.move_alias(
        alias, candidate_version, expected=expected_production, why=why, run_id=run_id
    )
