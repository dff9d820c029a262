"""The model-input declaration: which published tables feed the model, joined on which keys,
read as of which days, and how each column becomes an input.

Pure Python and JSON-serialisable (no Dagster, no torch): the trainer image holds only
training/ and resources/, so the declaration reaches the trainer as JSON (inside the training
config, which the training_dataset manifest's declaration fills in), never as an import of the
project's contract/. contract/model_inputs.py declares the example; a team with other data
edits that declaration, not the trainer.

Every problem is reported as a ModelInputsError naming the field (`history[0].lag_days`), the
value found and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ID_HASH, STRING_HASH, INTEGER_RANGE = "id_hash", "string_hash", "integer_range"
CATEGORICAL_KINDS = (ID_HASH, STRING_HASH, INTEGER_RANGE)
IDENTITY, LOG1P = "identity", "log1p"
NUMERIC_TRANSFORMS = (IDENTITY, LOG1P)
# The TrainConfig field that sizes each side of the factorised pair's hash space.
FACTOR_BUCKET_FIELDS = {"user": "user_buckets", "item": "item_buckets"}


class ModelInputsError(ValueError):
    """A model-input declaration that names nothing valid: the message names the field."""


@dataclass(frozen=True)
class ExamplesTable:
    """The labelled rows the model trains on: one published table, one row per example."""

    table: str  # the asset name of the table
    key: str  # unique per row: the row order and the held-out split hash it
    day_column: str  # the example's day (date32): history is read as of this day
    label: str  # 0/1 target


@dataclass(frozen=True)
class HistoryTable:
    """A daily table of per-key exposures and positives, joined to each example as of days
    strictly before the example's day (a day's aggregates include positives that happened
    after its exposures, so they may only describe later days)."""

    table: str  # the asset name of the table
    example_key: str  # the join key's column in the examples table
    history_key: str  # the join key's column in this table
    day_column: str  # the day (date32) each row aggregates
    exposures: str  # per key and day: how often the key was exposed
    positives: str  # per key and day: how many of those exposures were positive
    prefix: str  # names the three derived inputs (`<prefix>_log_<exposures>`, ...)
    # As-of rule: an example of day d reads the rows of days [d - lag - window + 1, d - lag];
    # lag >= 1 is what keeps the example's own day out. No window: every earlier day given.
    lag_days: int = 1
    window_days: int | None = None
    # Beta prior on the rate: a key seen twice without a positive is not a zero-rate key.
    prior_positives: float = 1.0
    prior_exposures: float = 6.0

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns read from each partition of this table."""
        return (self.history_key, self.day_column, self.exposures, self.positives)

    @property
    def features(self) -> tuple[str, str, str]:
        """The derived numeric inputs, in order: log exposures, rate logit, no-history flag."""
        return (
            f"{self.prefix}_log_{self.exposures}",
            f"{self.prefix}_rate_logit",
            f"{self.prefix}_no_history",
        )


@dataclass(frozen=True)
class CategoricalInput:
    """One categorical column and how it becomes an embedding index.

    - id_hash: integer ids hashed (with `salt`) into `buckets`; the factorised pair's buckets
      come from TrainConfig (user_buckets / item_buckets) and must be left unset here;
    - string_hash: strings hashed (salted by the column name) into `buckets`, 0 for null;
    - integer_range: integers in [minimum, maximum], index = value - minimum.
    """

    column: str
    kind: str
    buckets: int | None = None
    salt: int | None = None
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class NumericInput:
    """One numeric column: its transform (log1p clips at 0 first), nulls read as 0, and with
    `missing_indicator` one more input that is 1 where the value was null."""

    column: str
    transform: str = IDENTITY
    missing_indicator: bool = False

    @property
    def features(self) -> tuple[str, ...]:
        value = self.column if self.transform == IDENTITY else f"{self.transform}_{self.column}"
        return (value, f"{self.column}_missing") if self.missing_indicator else (value,)


@dataclass(frozen=True)
class Factorized:
    """The two id_hash inputs the model factorises: their embeddings' dot product (plus a bias
    each) is the affinity term; every other categorical input feeds the context MLP."""

    user: str
    item: str


@dataclass(frozen=True)
class ModelInputs:
    """Everything the trainer, the evaluation and the guard need to know about the model's
    inputs, declared once. The categorical order is the embedding order."""

    examples: ExamplesTable
    categorical: tuple[CategoricalInput, ...]
    numeric: tuple[NumericInput, ...]
    factorized: Factorized
    history: tuple[HistoryTable, ...] = ()
    # Columns of the examples table the evaluation reports (and judges) AUC per value of.
    segments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "history", tuple(self.history))
        object.__setattr__(self, "segments", tuple(self.segments))
        problems = _problems(self)
        if problems:
            raise ModelInputsError("Invalid model-input declaration: " + "; ".join(problems))

    # Derived views ---------------------------------------------------------------------------

    @property
    def tables(self) -> tuple[str, ...]:
        """Every table the model reads: the examples first, then the history tables."""
        return (self.examples.table, *(h.table for h in self.history))

    def history_table(self, table: str) -> HistoryTable:
        return next(h for h in self.history if h.table == table)

    @property
    def example_columns(self) -> tuple[str, ...]:
        """The columns read from each examples partition, without repeats, in a fixed order."""
        named = [
            self.examples.key,
            self.examples.day_column,
            self.examples.label,
            *(c.column for c in self.categorical),
            *(n.column for n in self.numeric),
            *(h.example_key for h in self.history),
            *self.segments,
        ]
        return tuple(dict.fromkeys(named))

    @property
    def categorical_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.categorical)

    def categorical_index(self, column: str) -> int:
        return self.categorical_columns.index(column)

    def numeric_features(self, history: bool) -> tuple[str, ...]:
        """The numeric inputs' names in order (the model's numeric width); the history
        tables' derived inputs last, when `history` is on."""
        own = tuple(name for n in self.numeric for name in n.features)
        return own + (tuple(f for h in self.history for f in h.features) if history else ())

    # JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; `from_dict(to_dict())` gives an equal declaration."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInputs:
        return _build(cls, data, "model_inputs")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_NESTED = {
    ModelInputs: {
        "examples": (ExamplesTable, False),
        "categorical": (CategoricalInput, True),
        "numeric": (NumericInput, True),
        "factorized": (Factorized, False),
        "history": (HistoryTable, True),
    }
}


def _build(cls: type, data: Any, path: str) -> Any:
    """`cls` from a JSON object, refusing unknown and missing fields by their path."""
    if not isinstance(data, Mapping):
        raise ModelInputsError(f"{path} must be a JSON object (got {data!r})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ModelInputsError(f"{path} has unknown fields {unknown}; known: {sorted(fields)}")
    required = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise ModelInputsError(f"{path} lacks the required fields {missing}")
    values = dict(data)
    for name, (nested, many) in _NESTED.get(cls, {}).items():
        if name not in values:
            continue
        if many:
            items = values[name]
            if not isinstance(items, list | tuple):
                raise ModelInputsError(f"{path}.{name} must be a list (got {items!r})")
            values[name] = tuple(
                _build(nested, item, f"{path}.{name}[{i}]") for i, item in enumerate(items)
            )
        else:
            values[name] = _build(nested, values[name], f"{path}.{name}")
    if cls is ModelInputs and "segments" in values:
        if not isinstance(values["segments"], list | tuple):
            raise ModelInputsError(f"{path}.segments must be a list (got {values['segments']!r})")
        values["segments"] = tuple(values["segments"])
    return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def _names(path: str, obj: Any, names: Sequence[str]) -> list[str]:
    return [
        f"{path}.{name} must be a non-empty string (got {getattr(obj, name)!r})"
        for name in names
        if not isinstance(getattr(obj, name), str) or not getattr(obj, name)
    ]


def _problems(inputs: ModelInputs) -> list[str]:
    """Every problem of the declaration, each naming its field."""
    problems = _names("examples", inputs.examples, ("table", "key", "day_column", "label"))
    categorical = {}
    for i, c in enumerate(inputs.categorical):
        path = f"categorical[{i}]"
        problems += _names(path, c, ("column",))
        problems += _categorical_problems(path, c)
        if c.column in categorical:
            problems.append(f"{path}.column {c.column!r} is declared twice")
        categorical[c.column] = c
    if not inputs.categorical:
        problems.append("categorical must name at least the factorised pair")
    for i, n in enumerate(inputs.numeric):
        path = f"numeric[{i}]"
        problems += _names(path, n, ("column",))
        if n.transform not in NUMERIC_TRANSFORMS:
            problems.append(
                f"{path}.transform {n.transform!r} is not one of {list(NUMERIC_TRANSFORMS)}"
            )
        if not isinstance(n.missing_indicator, bool):
            problems.append(f"{path}.missing_indicator must be true or false")
    problems += _factorized_problems(inputs, categorical)
    tables = [inputs.examples.table]
    for i, h in enumerate(inputs.history):
        path = f"history[{i}]"
        problems += _names(
            path,
            h,
            ("table", "example_key", "history_key", "day_column", "exposures", "positives"),
        )
        problems += _names(path, h, ("prefix",))
        if h.table in tables:
            problems.append(f"{path}.table {h.table!r} is already read as another role")
        tables.append(h.table)
        if not _is_int(h.lag_days) or h.lag_days < 1:
            problems.append(
                f"{path}.lag_days must be an integer >= 1 (got {h.lag_days!r}): a lag of 0 "
                "would let an example read its own day's positives"
            )
        if h.window_days is not None and (not _is_int(h.window_days) or h.window_days < 1):
            problems.append(f"{path}.window_days must be null or an integer >= 1")
        if not (
            _is_number(h.prior_positives)
            and _is_number(h.prior_exposures)
            and 0 < h.prior_positives < h.prior_exposures
        ):
            problems.append(
                f"{path}: the prior needs 0 < prior_positives < prior_exposures (got "
                f"{h.prior_positives!r}, {h.prior_exposures!r})"
            )
    prefixes = [h.prefix for h in inputs.history]
    if len(set(prefixes)) != len(prefixes):
        problems.append(f"history prefixes must differ (got {prefixes})")
    for i, segment in enumerate(inputs.segments):
        if not isinstance(segment, str) or not segment:
            problems.append(f"segments[{i}] must be a non-empty string (got {segment!r})")
    if not problems:
        features = inputs.numeric_features(history=True)
        repeated = sorted({f for f in features if features.count(f) > 1})
        if repeated:
            problems.append(f"numeric inputs give the same feature names twice: {repeated}")
    return problems


def _categorical_problems(path: str, c: CategoricalInput) -> list[str]:
    problems = []
    if c.kind not in CATEGORICAL_KINDS:
        return [f"{path}.kind {c.kind!r} is not one of {list(CATEGORICAL_KINDS)}"]
    if c.kind == STRING_HASH and (not _is_int(c.buckets) or c.buckets < 2):
        problems.append(f"{path}.buckets: string_hash needs buckets >= 2 (got {c.buckets!r})")
    if c.kind == ID_HASH:
        if not _is_int(c.salt):
            problems.append(f"{path}.salt: id_hash needs an integer salt (got {c.salt!r})")
        if c.buckets is not None and (not _is_int(c.buckets) or c.buckets < 1):
            problems.append(f"{path}.buckets must be null or >= 1 (got {c.buckets!r})")
    if c.kind == INTEGER_RANGE and not (
        _is_int(c.minimum) and _is_int(c.maximum) and c.minimum <= c.maximum
    ):
        problems.append(
            f"{path}: integer_range needs integers minimum <= maximum (got {c.minimum!r}, "
            f"{c.maximum!r})"
        )
    if c.kind != ID_HASH and c.salt is not None:
        problems.append(f"{path}.salt applies to id_hash only")
    if c.kind != INTEGER_RANGE and (c.minimum is not None or c.maximum is not None):
        problems.append(f"{path}.minimum/maximum apply to integer_range only")
    if c.kind == INTEGER_RANGE and c.buckets is not None:
        problems.append(f"{path}.buckets does not apply to integer_range (its range sizes it)")
    return problems


def _factorized_problems(inputs: ModelInputs, categorical: dict) -> list[str]:
    problems = []
    pair = inputs.factorized
    if pair.user == pair.item:
        problems.append(f"factorized.user and factorized.item are the same column {pair.user!r}")
    for side in FACTOR_BUCKET_FIELDS:
        column = getattr(pair, side)
        declared = categorical.get(column)
        if declared is None:
            problems.append(
                f"factorized.{side} {column!r} is not a declared categorical input "
                f"(declared: {sorted(categorical)})"
            )
        elif declared.kind != ID_HASH:
            problems.append(f"factorized.{side} {column!r} must be an id_hash input")
        elif declared.buckets is not None:
            problems.append(
                f"factorized.{side} {column!r}: leave buckets unset, TrainConfig."
                f"{FACTOR_BUCKET_FIELDS[side]} sizes it"
            )
    return problems
