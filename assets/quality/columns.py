"""A day's rows as the gates read them: a table, or a day read a column at a time that counts
each column's values once for every gate that asks (`CountedColumns`).

Every gate on a categorical column (its mix, its shares against history, its distinct count,
the rate of one value to another) needs only how many rows hold each value. Asked through
`value_counts`, a day that is read from its file decodes such a column once, not once per gate.
"""

from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc


class CountedColumns(Protocol):
    """A day's rows read by column, each column's value counts kept once made."""

    num_rows: int

    def column(self, name: str) -> pa.ChunkedArray: ...

    def value_counts(self, name: str) -> pa.StructArray: ...


Columns = pa.Table | CountedColumns


def value_counts(events: Columns, name: str) -> pa.StructArray:
    """The column's non-null values in order of first appearance, each with how many rows hold
    it (`values`, `counts`)."""
    if isinstance(events, pa.Table):
        return count_values(events.column(name))
    return events.value_counts(name)


def count_values(column: pa.ChunkedArray) -> pa.StructArray:
    """`value_counts` of a column in hand."""
    return pc.value_counts(column.drop_null())
