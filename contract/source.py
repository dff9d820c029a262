"""The source contract: what the machinery needs to know about the upstream table.

The warehouse backends build every statement from it (select, replace, DDL, ingest, schema
read) and every gate takes the columns it judges from it, so a team with another upstream
table declares its own contract and points `SOURCE` at it, editing no machinery. The example's
click stream (`CLICK_STREAM`) is declared at the bottom and `SOURCE` names it; a second schema
lives under `tests/adapt/` and proves the machinery follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(frozen=True)
class SourceColumn:
    """One upstream column: its Arrow type, whether nulls are allowed, and its meaning."""

    name: str
    type: pa.DataType
    nullable: bool
    description: str
    # The share of nulls a day may hold before null_rate blocks it (nullable columns only).
    max_null_fraction: float | None = None
    # The values the column may hold: a closed numeric range, or an enumerated domain.
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DaySelection:
    """How one UTC day of the table is selected.

    With `date_column`, the warehouse files rows under a date and a day is `date_column = day`;
    without it, a day is the half-open range `[day, day + 1)` on `SourceContract.time_column`.
    """

    date_column: str | None = None


@dataclass(frozen=True)
class LabelDefinition:
    """The label as the source delivers it: positives over exposures (the source asset records
    the rate per day as its `label_rate` metadata).

    `positive_kind` and `exposure_kind` are values of `SourceContract.kind_column` (a click
    over an impression in the example).
    """

    exposure_kind: str
    positive_kind: str


@dataclass(frozen=True)
class SourceContract:
    """Everything the machinery assumes about the upstream table, declared once."""

    table: str
    columns: tuple[SourceColumn, ...]
    # The event timestamp (UTC): the within-day gate, hourly completeness and day selection
    # when there is no date column.
    time_column: str
    day: DaySelection
    # The identity key: unique per row, the snapshot's sort order.
    key: tuple[str, ...]
    # Two rows equal on these columns under different keys are one event delivered twice.
    content_key: tuple[str, ...]
    # The column naming each row's event kind, and the kinds the event-mix gate compares.
    kind_column: str
    kinds: tuple[str, ...]
    label: LabelDefinition
    # Columns whose distribution is judged against the asset's own history.
    watched_categorical: tuple[str, ...] = ()
    watched_numeric: tuple[str, ...] = ()
    # The table the loader records how far the upstream has landed (the completeness sensor).
    watermarks_table: str = "load_watermarks"
    # One line of business meaning for the table (the source asset's description begins so).
    description: str = "The day's upstream rows"
    _by_name: dict[str, SourceColumn] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.columns}
        object.__setattr__(self, "_by_name", by_name)
        named = [
            self.time_column,
            *self.key,
            *self.content_key,
            self.kind_column,
            *self.watched_categorical,
            *self.watched_numeric,
        ]
        if self.day.date_column is not None:
            named.append(self.day.date_column)
        unknown = sorted({name for name in named if name not in by_name})
        if unknown:
            raise ValueError(
                f"source contract for table {self.table!r} names columns it does not declare: "
                f"{unknown}; declared: {sorted(by_name)}. Add them to `columns` or fix the name."
            )
        kinds = set(self.kinds)
        for kind in (self.label.exposure_kind, self.label.positive_kind):
            if kind not in kinds:
                raise ValueError(
                    f"source contract for table {self.table!r}: label kind {kind!r} is not one "
                    f"of the declared kinds {sorted(kinds)}."
                )

    def column(self, name: str) -> SourceColumn:
        return self._by_name[name]

    @property
    def schema(self) -> pa.Schema:
        """The canonical Arrow schema every backend answers with."""
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    @property
    def descriptions(self) -> dict[str, str]:
        return {c.name: c.description for c in self.columns}

    @property
    def date_column(self) -> str | None:
        return self.day.date_column

    @property
    def null_tolerances(self) -> dict[str, float]:
        return {
            c.name: c.max_null_fraction for c in self.columns if c.max_null_fraction is not None
        }

    @property
    def ranged_columns(self) -> tuple[SourceColumn, ...]:
        return tuple(
            c
            for c in self.columns
            if c.minimum is not None or c.maximum is not None or c.allowed is not None
        )

    @property
    def replay_content(self) -> tuple[str, ...]:
        """What a replayed delivery repeats: every column but the key and the day's date
        (the timestamp is compared by its time of day)."""
        skipped = {*self.key, self.time_column, self.day.date_column}
        return tuple(c.name for c in self.columns if c.name not in skipped)


CLICK_STREAM = SourceContract(
    table="events",
    columns=(
        SourceColumn("event_id", pa.string(), False, "Upstream id of the event, unique per event."),
        SourceColumn(
            "event_date",
            pa.date32(),
            False,
            "UTC day the warehouse files the event under (the partition).",
        ),
        SourceColumn(
            "event_time",
            pa.timestamp("us", tz="UTC"),
            False,
            "When the event happened (UTC, microseconds).",
        ),
        SourceColumn(
            "user_id", pa.int64(), False, "The user who saw or acted on the item.", minimum=0
        ),
        SourceColumn(
            "item_id", pa.int64(), False, "The catalogue item shown or acted on.", minimum=0
        ),
        SourceColumn(
            "event_type",
            pa.string(),
            False,
            "impression, click, add_to_cart or purchase.",
            allowed=("impression", "click", "add_to_cart", "purchase"),
        ),
        SourceColumn(
            "price",
            pa.float64(),
            True,
            "Item price at the time of the event, in the shop's currency.",
            max_null_fraction=0.01,
            minimum=0,
            maximum=100_000,
        ),
        # dwell_seconds exists only for clicks, so most rows legitimately have none.
        SourceColumn(
            "dwell_seconds",
            pa.float64(),
            True,
            "Seconds spent on the item page after a click (clicks only).",
            max_null_fraction=1.0,
            minimum=0,
            maximum=86_400,
        ),
        SourceColumn(
            "device",
            pa.string(),
            True,
            "Device family of the session: ios, android or web.",
            max_null_fraction=0.05,
        ),
        SourceColumn(
            "country",
            pa.string(),
            True,
            "User's country (ISO 3166 alpha-2).",
            max_null_fraction=0.05,
        ),
        SourceColumn(
            "item_category",
            pa.string(),
            True,
            "Catalogue category of the item.",
            max_null_fraction=0.05,
        ),
    ),
    time_column="event_time",
    day=DaySelection(date_column="event_date"),
    key=("event_id",),
    content_key=("user_id", "item_id", "event_type", "event_time"),
    kind_column="event_type",
    kinds=("impression", "click", "add_to_cart", "purchase"),
    label=LabelDefinition(exposure_kind="impression", positive_kind="click"),
    watched_categorical=("device", "country", "item_category"),
    watched_numeric=("price", "dwell_seconds"),
    description="The day's upstream click-stream events",
)

# The project's upstream: point it at your own declaration; the example stays beside it as the
# machinery's test fixture (tests/support/example.py) until you delete it.
SOURCE = CLICK_STREAM
