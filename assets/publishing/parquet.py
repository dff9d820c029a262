"""Arrow <-> Parquet bytes or files with fixed writer settings, so equal tables give equal bytes.

Equal rows give equal bytes however they arrive: a whole table, or record batches of any sizes
streamed from an engine. The writer's page boundaries follow the arrays it is handed, so every
row group is handed over as one contiguous array per column (`ROW_GROUP_ROWS` rows, pyarrow's
default size, the last one shorter).
"""

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Every published object is written with these: the bytes, hence the content-addressed keys,
# depend on them. Row groups keep pyarrow's default size, as the published objects always had.
WRITER_SETTINGS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}
ROW_GROUP_ROWS = 1024 * 1024


@dataclass(frozen=True)
class ParquetObject:
    data: bytes
    sha256: str


@dataclass(frozen=True)
class ParquetFile:
    """An encoded table on local disk, to be stored without reading it into memory."""

    path: Path
    size: int
    sha256: str
    num_rows: int
    schema: pa.Schema


def _row_groups(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.Table]:
    """The rows regrouped into tables of ROW_GROUP_ROWS rows (the last shorter), each column
    one contiguous array: what the writer is handed, whatever the batches' sizes."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch.num_rows, ROW_GROUP_ROWS - rows)
            pending.append(batch.slice(0, take))
            rows += take
            batch = batch.slice(take)
            if rows == ROW_GROUP_ROWS:
                yield pa.Table.from_batches(pending, schema).combine_chunks()
                pending, rows = [], 0
    if rows:
        yield pa.Table.from_batches(pending, schema).combine_chunks()


def _write(batches: Iterable[pa.RecordBatch], schema: pa.Schema, sink) -> int:
    """Encode the batches into `sink`; returns the rows written. The file's schema carries no
    metadata (pandas' embeds its version, which is not content)."""
    schema = schema.remove_metadata()
    rows = 0
    with pq.ParquetWriter(sink, schema, **WRITER_SETTINGS) as writer:
        for group in _row_groups(batches, schema):
            writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
            rows += group.num_rows
        if not rows:
            # No rows at all: one empty row group, as pyarrow writes an empty table.
            writer.write_table(schema.empty_table())
    return rows


class _HashingSink:
    """A file the writer streams into, hashed on the way: the encoded file is never read
    back to learn its digest."""

    def __init__(self, file):
        self._file, self._sha256, self.size = file, hashlib.sha256(), 0

    def write(self, data) -> int:
        self._sha256.update(data)
        self.size += len(data)
        return self._file.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._file.flush()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        """The writer closes its sink when done; the file stays ours to close."""

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


def to_parquet_bytes(table: pa.Table | pa.RecordBatchReader) -> ParquetObject:
    """The encoded rows of a table, or of a stream of batches, in memory."""
    sink = pa.BufferOutputStream()
    batches = table if isinstance(table, pa.RecordBatchReader) else table.to_batches()
    _write(batches, table.schema, sink)
    data = sink.getvalue().to_pybytes()
    return ParquetObject(data=data, sha256=hashlib.sha256(data).hexdigest())


def write_parquet_file(
    data: pa.Table | Iterable[pa.RecordBatch],
    path: str | os.PathLike[str],
    schema: pa.Schema | None = None,
) -> ParquetFile:
    """Encode `data` into a file at `path`: the bytes of `to_parquet_bytes` of the same rows.
    Record batches (with their `schema`) are encoded as they come, so only one row group's rows
    are in memory at a time."""
    if isinstance(data, pa.Table):
        schema, data = data.schema, data.to_batches()
    elif schema is None:
        raise ValueError("write_parquet_file needs the schema of the record batches it encodes")
    with open(path, "wb") as file:
        sink = _HashingSink(file)
        rows = _write(data, schema, pa.PythonFile(sink, mode="w"))
    return ParquetFile(
        path=Path(path),
        size=sink.size,
        sha256=sink.sha256,
        num_rows=rows,
        schema=schema.remove_metadata(),
    )


def from_parquet_bytes(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))
