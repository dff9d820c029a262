"""Training examples streamed from the partitions' parquet row groups, so memory follows the
shuffle buffer, not the window.

Which table each partition is and which columns are read come from the caller and the
config's model-input declaration (training/model_inputs.py), as on the in-memory path. One
pass at start-up reads only the examples' declared key column, to apply the held-out split
(`eval_mask`, the same hash as the in-memory path) and count each row group's training rows;
the split is kept as one bit per row. The declared history tables are small per-key daily
tables and are held in memory; every row group's examples are joined to them
(`attach_history`) and encoded (`encode`) when the row group is read.

Each epoch deals the row groups, in an order drawn from (seed, epoch), to world_size x
max(1, loader_workers) streams (each row group to the stream with the fewest rows so far);
each stream groups its row groups into windows of at most shuffle_buffer_rows rows (at least
one row group), permutes each window's training rows with a generator seeded by (seed,
epoch, stream, window) and cuts the concatenation into batches. Every stream serves the same
number of batches per epoch (the fewest any stream can fill), so DDP ranks step together; the
few rows past that differ from epoch to epoch. A rank's DataLoader workers take its streams in
turn, so its k-th batch of an epoch is batch k // W of stream k % W: the position (epoch,
batch) therefore says which rows come next, and a resumed run reads only the window it
resumes in, skipping the rows before the position.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from resources.storage.object_store import ObjectStore
from training.config import TrainConfig
from training.data import (
    EncodedExamples,
    InputDataError,
    attach_history,
    declaration,
    encode,
    eval_mask,
)
from training.sampler import DataPosition

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowGroup:
    """One row group of an examples partition and which of its rows are held out."""

    key: str
    index: int
    rows: int
    held_out_bits: np.ndarray  # np.packbits of eval_mask over the row group's rows

    def held_out(self) -> np.ndarray:
        return np.unpackbits(self.held_out_bits, count=self.rows).astype(bool)

    @property
    def train_rows(self) -> int:
        return self.rows - int(self.held_out().sum())


def _open(store: ObjectStore, key: str) -> pq.ParquetFile:
    filesystem, path = store.arrow_location(key)
    return pq.ParquetFile(filesystem.open_input_file(path))


class ExampleSource:
    """The window's examples as row groups, plus the history tables, for any stream to read.
    Which table each key is a partition of comes from the caller ({object key: table}), which
    columns are read and how they are joined and encoded from the config's declaration."""

    def __init__(self, store: ObjectStore, input_tables: Mapping[str, str], config: TrainConfig):
        self.store = store
        self.config = config
        self.inputs = inputs = declaration(config)
        ordered = sorted(input_tables)
        if not ordered:
            raise InputDataError("No input keys given: pass at least one --input-key TABLE=KEY")
        columns_of = {inputs.examples.table: inputs.example_columns}
        columns_of |= {h.table: h.columns for h in inputs.history}
        example_keys: list[str] = []
        history: dict[str, list[pa.Table]] = {}
        for key in ordered:
            table_name = input_tables[key]
            if table_name not in columns_of:
                raise InputDataError(
                    f"{key} is given as a partition of {table_name!r}, which the model-input "
                    f"declaration does not read (it reads {list(inputs.tables)})"
                )
            if not store.exists(key):
                raise InputDataError(
                    f"Input object {store.uri(key)} does not exist; materialize that partition "
                    f"of {table_name} first"
                )
            file = _open(store, key)
            names = file.schema_arrow.names
            columns = columns_of[table_name]
            missing = [c for c in columns if c not in names]
            if missing:
                raise InputDataError(
                    f"{store.uri(key)} ({table_name}) lacks columns {missing} that the "
                    f"model-input declaration reads (it has {names})"
                )
            if table_name == inputs.examples.table:
                example_keys.append(key)
            else:
                history.setdefault(table_name, []).append(file.read(columns=list(columns)))
        if not example_keys:
            raise InputDataError(
                f"Input partitions {ordered} hold no {inputs.examples.table} partition"
            )
        self.history = {h.table: _concat(history, h.table) for h in inputs.history}
        if config.history_features:
            absent = [name for name, rows in self.history.items() if rows is None]
            if absent:
                raise InputDataError(
                    f"history_features is on but no partition of {absent} is among the input "
                    "keys: pass the history partitions of the window's days before the trained "
                    "day, or set history_features false"
                )
        self.row_groups = tuple(self._index(example_keys))
        self.input_rows = sum(group.rows for group in self.row_groups)
        if self.input_rows == 0:
            raise InputDataError(f"Input partitions {ordered} hold no rows")
        self.train_rows = np.array([group.train_rows for group in self.row_groups])

    def _index(self, keys: list[str]) -> Iterator[RowGroup]:
        split = self.inputs.examples.key  # the in-memory path splits on the same key's hash
        for key in keys:
            file = _open(self.store, key)
            for index in range(file.num_row_groups):
                ids = file.read_row_group(index, columns=[split])[split]
                held_out = eval_mask(ids, self.config.eval_fraction)
                yield RowGroup(key, index, len(held_out), np.packbits(held_out))

    def read(self, position: int, held_out: bool) -> EncodedExamples:
        """The training (or held-out) rows of row group `position`, joined and encoded."""
        group = self.row_groups[position]
        file = _open(self.store, group.key)
        table = file.read_row_group(group.index, columns=list(self.inputs.example_columns))
        keep = group.held_out() if held_out else ~group.held_out()
        table = table.filter(pa.array(keep))
        if self.config.history_features:
            table = attach_history(table, self.history, self.inputs)
        return encode(table, self.config)

    def held_out(self) -> Iterator[EncodedExamples]:
        """The held-out rows, one row group at a time."""
        for position, group in enumerate(self.row_groups):
            if group.held_out().any():
                yield self.read(position, held_out=True)


def _concat(history: dict[str, list[pa.Table]], kind: str) -> pa.Table | None:
    if kind not in history:
        return None
    try:
        return pa.concat_tables(history[kind], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InputDataError(f"{kind} partitions have incompatible schemas: {err}") from err


def _cat(parts: list[EncodedExamples]) -> EncodedExamples:
    return EncodedExamples(
        torch.cat([p.categorical for p in parts]),
        torch.cat([p.numeric for p in parts]),
        torch.cat([p.label for p in parts]),
    )


class EpochPlan:
    """Which row groups each stream reads in one epoch, grouped into shuffle windows."""

    def __init__(self, train_rows: np.ndarray, config: TrainConfig, epoch: int, streams: int):
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train_rows))
        loads = np.zeros(streams, dtype=np.int64)
        dealt: list[list[int]] = [[] for _ in range(streams)]
        for position in order:
            stream = int(np.argmin(loads))  # the first of the least loaded: deterministic
            dealt[stream].append(int(position))
            loads[stream] += train_rows[position]
        self.windows: list[list[list[int]]] = []
        for groups in dealt:
            windows: list[list[int]] = []
            rows = 0
            for position in groups:
                if windows and rows + train_rows[position] <= config.shuffle_buffer_rows:
                    windows[-1].append(position)
                    rows += train_rows[position]
                else:
                    windows.append([position])
                    rows = int(train_rows[position])
            self.windows.append(windows)
        self.batches_per_stream = int(loads.min()) // config.batch_size


def _reads(
    plan: EpochPlan, train_rows: np.ndarray, stream: int, skip: int, wanted: int
) -> Iterator[tuple[int, list[int], int, int]]:
    """(window index, row groups, rows to skip, rows to take) of each window to be read."""
    for window_index, window in enumerate(plan.windows[stream]):
        if wanted <= 0:
            return
        rows = int(train_rows[window].sum())
        if skip >= rows:
            skip -= rows
            continue
        take = min(rows - skip, wanted)
        yield window_index, window, skip, take
        skip, wanted = 0, wanted - take


def stream_batches(
    source: ExampleSource, epoch: int, stream: int, streams: int, start: int
) -> Iterator[EncodedExamples]:
    """Batches `start`.. of `stream` in `epoch`; rows before batch `start` are never read.
    The next window is read in a thread while this one's batches are served (arrow and numpy
    release the GIL), so a stream waits on storage only for its first window."""
    config = source.config
    plan = EpochPlan(source.train_rows, config, epoch, streams)
    size = config.batch_size
    wanted = (plan.batches_per_stream - start) * size
    reads = list(_reads(plan, source.train_rows, stream, start * size, wanted))

    def load(read: tuple[int, list[int], int, int]) -> EncodedExamples:
        window_index, window, skip, take = read
        generator = np.random.default_rng([config.seed, epoch, stream, window_index])
        order = generator.permutation(int(source.train_rows[window].sum()))[skip : skip + take]
        examples = _cat([source.read(position, held_out=False) for position in window])
        return examples.take(torch.from_numpy(order))

    carry: list[EncodedExamples] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = [pool.submit(load, read) for read in reads[:1]]
        for index in range(len(reads)):
            taken = upcoming.pop().result()
            upcoming += [pool.submit(load, read) for read in reads[index + 1 : index + 2]]
            pending = _cat([*carry, taken])
            full = len(pending) // size
            for batch in range(full):
                # take() copies: a worker must not ship the whole window's storage with a batch.
                yield pending.take(torch.arange(batch * size, (batch + 1) * size))
            rest = torch.arange(full * size, len(pending))
            carry = [pending.take(rest)] if len(rest) else []


class _Streams(IterableDataset):
    """A rank's streams; DataLoader worker w serves stream (w + first batch) mod W of it."""

    def __init__(self, source: ExampleSource, rank: int, workers: int, world_size: int):
        self.source, self.rank, self.workers = source, rank, workers
        self.streams = world_size * workers
        self.epoch = self.batch_index = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None:
            torch.set_num_threads(1)  # the trainer keeps the cores for its own ops
        turn = (worker + self.batch_index) % self.workers
        # Batches of this stream the rank has already consumed in the epoch.
        start = (self.batch_index - turn + self.workers - 1) // self.workers
        stream = self.rank * self.workers + turn
        for batch in stream_batches(self.source, self.epoch, stream, self.streams, start):
            yield batch.categorical, batch.numeric, batch.label


class StreamingBatches:
    """next_batch(), position() and restore() over a rank's streams: the streaming
    counterpart of BatchSampler plus the in-memory training tensors."""

    def __init__(self, source: ExampleSource, config: TrainConfig, rank: int, world_size: int):
        self.source, self.config = source, config
        self.workers = config.loader_workers
        self.dataset = _Streams(source, rank, max(1, self.workers), world_size)
        self.global_batch = config.batch_size * world_size
        self.train_examples = int(source.train_rows.sum())
        if self.batches_in_epoch(0) == 0:
            raise InputDataError(
                f"{self.train_examples} training examples in {len(source.row_groups)} row "
                f"groups cannot give each of {self.dataset.streams} streams (world size x "
                f"loader workers) one batch of {config.batch_size}; lower batch_size or "
                "loader_workers, or widen the input window"
            )
        self.epoch = self.batch_index = 0
        self._iterator: Iterator | None = None
        # Global batches in one pass, as `epochs` counts them: epoch 0's deal (later epochs
        # skip a different remainder, within one row group per stream).
        self.batches_per_epoch = self.batches_in_epoch(0)

    def batches_in_epoch(self, epoch: int) -> int:
        """Batches this rank serves in `epoch` (each epoch's deal decides its own count)."""
        plan = EpochPlan(self.source.train_rows, self.config, epoch, self.dataset.streams)
        return plan.batches_per_stream * self.dataset.workers

    def next_batch(self) -> EncodedExamples:
        if self._iterator is None:
            self.dataset.epoch, self.dataset.batch_index = self.epoch, self.batch_index
            self._batches = self.batches_in_epoch(self.epoch)
            loader = DataLoader(
                self.dataset,
                batch_size=None,
                num_workers=self.workers,
                prefetch_factor=2 if self.workers else None,
                # Its own generator: the loader's base seed must not draw from the global RNG
                # (dropout's), which a resumed run would reach at another point.
                generator=torch.Generator().manual_seed(self.config.seed),
            )
            self._iterator = iter(loader)
        categorical, numeric, label = next(self._iterator)
        self.batch_index += 1
        if self.batch_index == self._batches:
            self.epoch, self.batch_index = self.epoch + 1, 0
            self.close()
        return EncodedExamples(categorical, numeric, label)

    def held_out(self) -> Iterator[EncodedExamples]:
        return self.source.held_out()

    def close(self) -> None:
        """Stop the loader's workers (a new iterator starts at the current position)."""
        self._iterator = None

    def position(self) -> DataPosition:
        return DataPosition(self.epoch, self.batch_index, self.config.seed, self.global_batch)

    def restore(self, position: DataPosition) -> None:
        if position.seed != self.config.seed:
            raise ValueError(f"Saved data seed {position.seed} != configured {self.config.seed}")
        batch_index = position.batch_index
        if position.global_batch != self.global_batch:
            # Another process count deals the row groups to other streams: keep the number of
            # rows consumed in the epoch, as the in-memory sampler does, and say so.
            batch_index = position.batch_index * position.global_batch // self.global_batch
            logger.warning(
                "Global batch changed from %d to %d since the checkpoint; resuming at batch %d "
                "of epoch %d (the run is no longer bit-identical to an uninterrupted one)",
                position.global_batch,
                self.global_batch,
                batch_index,
                position.epoch,
            )
        self.epoch, self.batch_index = position.epoch, batch_index
        if batch_index >= self.batches_in_epoch(position.epoch):
            self.epoch, self.batch_index = position.epoch + 1, 0
        self.close()
