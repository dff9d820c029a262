"""Arrow <-> Parquet bytes with fixed writer settings, so equal tables give equal bytes."""

import hashlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class ParquetObject:
    data: bytes
    sha256: str


def to_parquet_bytes(table: pa.Table) -> ParquetObject:
    # Drop pandas' schema metadata: it embeds the pandas version, which is not content.
    table = table.replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=3, write_statistics=True)
    data = sink.getvalue().to_pybytes()
    return ParquetObject(data=data, sha256=hashlib.sha256(data).hexdigest())


def from_parquet_bytes(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))
