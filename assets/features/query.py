"""A feature table as a query every engine runs alike, and its run on the local engine.

The SQL is written in the dialect DuckDB and Spark SQL share (`count(*) FILTER (WHERE ...)`,
window functions, no QUALIFY), over a view `events`: the day's snapshot with `snapshot_row`,
each row's position in it. What SQL engines add up in an order of their own, floating-point
sums, is declared apart (`sums`) and added per key in snapshot order by `compensated.group_sums`
on every engine; what follows row by row (ratios, means, rounding, the schema) is `finish`,
plain Python that runs wherever the rows arrive. So DuckDB here and Spark on a cluster
(`assets/features/spark/`) give the same bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from assets.features.compensated import keyed_sums
from assets.features.day_events import SNAPSHOT_ROW, Events, open_day

__all__ = ["SNAPSHOT_ROW", "FeatureQuery", "finished_batches", "run_on_duckdb"]


@dataclass(frozen=True)
class FeatureQuery:
    """One feature table: the rows of `sql` in `order_by` order, with per-key `sums`, finished."""

    # Over `events`; any order: the engine sorts by `order_by`, names of the result's columns
    # (ascending, nulls last on both engines; put a tie-breaker such as SNAPSHOT_ROW last).
    sql: str
    order_by: tuple[str, ...]
    # The result's rows as the table's schema: row by row, so it runs on any batch of them.
    finish: Callable[[pa.Table, dt.date], pa.Table]
    # Per value of `sums_key` (a column of `events` and of `sql`'s result, one row per value),
    # each named SQL value of `sums` summed in snapshot order; added to the result under its
    # name (not one of the result's own), NaN for a null key.
    sums_key: str | None = None
    sums: dict[str, str] = field(default_factory=dict)


def finished_batches(
    query: FeatureQuery, batches: Iterable[pa.RecordBatch], day: dt.date
) -> Iterator[pa.RecordBatch]:
    """The query's `finish` applied to each batch of its ordered rows, as either engine streams
    them."""
    for batch in batches:
        yield from query.finish(pa.Table.from_batches([batch]), day).to_batches()


def run_on_duckdb(
    query: FeatureQuery, schema: pa.Schema, events: Events, day: dt.date
) -> pa.Table | pa.RecordBatchReader:
    """The query's table of one day on the local engine: whole where it has a row per key (its
    sums need the keys), else streamed in batches of `schema` as the engine returns them in
    order (a table the size of the day's events is never whole in memory)."""
    order = ", ".join(f"{column} ASC NULLS LAST" for column in query.order_by)
    ordered = f"SELECT * FROM ({query.sql}) ORDER BY {order}"
    if query.sums_key is None:

        def batches() -> Iterator[pa.RecordBatch]:
            with open_day(events) as day_events:
                yield from finished_batches(query, day_events.batches(ordered), day)

        return pa.RecordBatchReader.from_batches(schema, batches())
    with (
        open_day(events) as day_events,
        day_events.another_cursor() as summing,
        ThreadPoolExecutor(1) as beside,
    ):
        # The sums scan and add on a thread beside the query: through the query's phases
        # that run on one core (its joins, windows and sort) the other core would idle. At 5M
        # impressions a day the user table took 3.5 s so, 5.0 s one after the other.
        summed = beside.submit(keyed_sums, summing, query.sums_key, list(query.sums.values()))
        rows = day_events.arrow(ordered)
        sums = summed.result().at(rows[query.sums_key])
    for name, column in zip(query.sums, sums, strict=True):
        rows = rows.append_column(name, pa.array(column, pa.float64()))
    return query.finish(rows, day)
