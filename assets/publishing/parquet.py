"""Arrow <-> Parquet bytes or files with fixed writer settings, so equal tables give equal bytes."""

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from resources.storage.object_store import digest_file

# Every published object is written with these: the bytes, hence the content-addressed keys,
# depend on them. Row groups keep pyarrow's default size, as the published objects always had.
WRITER_SETTINGS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}


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


def to_parquet_bytes(table: pa.Table) -> ParquetObject:
    # Drop pandas' schema metadata: it embeds the pandas version, which is not content.
    table = table.replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **WRITER_SETTINGS)
    data = sink.getvalue().to_pybytes()
    return ParquetObject(data=data, sha256=hashlib.sha256(data).hexdigest())


def write_parquet_file(
    data: pa.Table | Iterable[pa.RecordBatch],
    path: str | os.PathLike[str],
    schema: pa.Schema | None = None,
) -> ParquetFile:
    """Encode `data` into a file at `path` with the settings of `to_parquet_bytes`: a table gives
    the same bytes as `to_parquet_bytes(table)`. Record batches (with their `schema`) are
    encoded as they come, each batch its own row group(s), so only one batch is in memory; their
    bytes equal a table's only when the table's row groups are those batches."""
    if isinstance(data, pa.Table):
        schema = data.schema
    elif schema is None:
        raise ValueError("write_parquet_file needs the schema of the record batches it encodes")
    # The file's schema carries no metadata, as in to_parquet_bytes (pandas' is not content).
    with pq.ParquetWriter(str(path), schema.remove_metadata(), **WRITER_SETTINGS) as writer:
        if isinstance(data, pa.Table):
            writer.write_table(data)
        else:
            for batch in data:
                writer.write_batch(batch)
    size, sha256 = digest_file(path)
    return ParquetFile(path=Path(path), size=size, sha256=sha256)


def from_parquet_bytes(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))
