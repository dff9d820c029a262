"""A table encoded into a file is byte for byte what `to_parquet_bytes` gives (the published
keys are its hash), and publishing encodes into a temp directory that is gone afterwards."""

import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.partitions import daily_partitions
from assets.publishing.gate_reports import read_published
from assets.publishing.parquet import WRITER_SETTINGS, to_parquet_bytes, write_parquet_file
from assets.publishing.write_audit_publish import Evaluation, publish_if_passed
from resources.storage.object_store import LocalObjectStore

SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("spend", pa.float64()),
        ("name", pa.string()),
        ("clicked", pa.bool_()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("items", pa.list_(pa.int32())),
    ]
)

TABLES = {
    "empty": SCHEMA.empty_table(),
    "nulls": pa.table(
        {
            "user_id": [1, None, 3],
            "spend": [0.5, None, float("nan")],
            "name": ["a", None, ""],
            "clicked": [True, None, False],
            "at": [dt.datetime(2026, 11, 1, tzinfo=dt.UTC), None, None],
            "items": [[1, 2], None, []],
        },
        schema=SCHEMA,
    ),
    "from_pandas": pa.Table.from_pandas(pd.DataFrame({"user_id": [3, 1], "spend": [1.0, 2.5]})),
    "chunked": pa.concat_tables([pa.table({"user_id": list(range(n, n + 5))}) for n in (0, 5)]),
    # More rows than pyarrow's default row group (1 Mi rows): two row groups.
    "two_row_groups": pa.table({"user_id": pa.array(range(1_500_000), pa.int64())}),
}


@pytest.mark.parametrize("name", TABLES)
def test_a_table_encoded_to_a_file_is_byte_identical_to_its_bytes(name, tmp_path):
    table = TABLES[name]
    encoded = write_parquet_file(table, tmp_path / "t.parquet")
    expected = to_parquet_bytes(table)
    assert encoded.path.read_bytes() == expected.data
    assert encoded.sha256 == expected.sha256 and encoded.size == len(expected.data)


def _plain_pyarrow_bytes(table: pa.Table) -> bytes:
    """What pyarrow's own writer makes of the table as one contiguous array per column, with
    the published settings: the bytes published objects have always had."""
    sink = pa.BufferOutputStream()
    pq.write_table(table.combine_chunks().replace_schema_metadata(None), sink, **WRITER_SETTINGS)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("name", TABLES)
def test_the_encoding_is_pyarrows_own_for_the_contiguous_table(name):
    assert to_parquet_bytes(TABLES[name]).data == _plain_pyarrow_bytes(TABLES[name])


# Batch sizes an engine might stream in: odd, DuckDB's vector multiple, a row group's size.
@pytest.mark.parametrize("batch_rows", [1000, 77_777, 122_880, 400_000, 1 << 20])
def test_streamed_batches_of_any_size_give_the_tables_bytes(batch_rows, tmp_path):
    """However an engine cuts the rows, the file is the table's: pyarrow's writer alone would
    place pages by the arrays it is handed (1,000-row chunks gave other bytes)."""
    table = pa.table(
        {
            "event_id": pa.array([f"e{i:09d}" for i in range(1_200_000)]),
            "label": pa.array([i % 7 == 0 for i in range(1_200_000)]),
        }
    )
    batches = iter(table.to_batches(max_chunksize=batch_rows))
    encoded = write_parquet_file(batches, tmp_path / "b.parquet", schema=table.schema)
    assert encoded.path.read_bytes() == _plain_pyarrow_bytes(table)
    assert encoded.num_rows == table.num_rows
    assert pq.ParquetFile(encoded.path).num_row_groups == 2
    stream = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(batch_rows))
    assert to_parquet_bytes(stream).data == encoded.path.read_bytes()


def test_batches_without_their_schema_are_refused(tmp_path):
    with pytest.raises(ValueError, match="schema"):
        write_parquet_file(TABLES["nulls"].to_batches(), tmp_path / "x.parquet")


class FailingUploadStore(LocalObjectStore):
    """The local store whose file uploads fail after seeing the file they were given."""

    def __init__(self, root):
        super().__init__(root)
        self.uploaded: list[Path] = []

    def put_file(self, key, path):
        self.uploaded.append(Path(path))
        assert Path(path).is_file()
        raise OSError("disk full")


def test_publishing_encodes_into_a_temp_directory_removed_afterwards(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    store = LocalObjectStore(tmp_path / "store")
    table = TABLES["nulls"]

    assert publish_if_passed(
        store, "user_daily_features", "features", "2026-11-05", Evaluation(table, [])
    )
    data, _ = read_published(store, "user_daily_features", "2026-11-05", daily_partitions)
    assert data == to_parquet_bytes(table).data
    assert list(scratch.iterdir()) == []

    failing = FailingUploadStore(tmp_path / "store")
    with pytest.raises(OSError, match="disk full"):
        publish_if_passed(
            failing,
            "user_daily_features",
            "features",
            "2026-11-05",
            Evaluation(TABLES["chunked"], []),
        )
    assert failing.uploaded and failing.uploaded[0].is_relative_to(scratch)
    assert list(scratch.iterdir()) == []
    # The approved version is untouched by the failed publish.
    assert read_published(store, "user_daily_features", "2026-11-05", daily_partitions)[0] == data
