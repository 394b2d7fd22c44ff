"""Replay recorded NDJSON files through the feature pipeline into a feature table.

Files are read in blocks; each block's lines go through ``FeaturePipeline.process_buffer`` as
one batch, rows get their label as soon as their next minute is known (``FutureSigma``), and
labeled rows leave in stream order, in Parquet row groups of ``ROW_GROUP_ROWS``, so memory
stays flat in the number and size of the input files. With ``jobs`` > 1, files that share no
segment are replayed by separate processes (``features.parallel``); the output is the same.
"""

from __future__ import annotations

import glob
import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.labels import sigma_column
from features.streamed_labels import FutureSigma
from features.online import FeatureSpec
from features.pipeline import FeatureBatch, FeaturePipeline, Summary, feature_schema
from features.scan import split_lines
from features.ticks import Rejection

if TYPE_CHECKING:  # pandas only in annotations: processes that replay need not import it
    import pandas as pd

READ_BLOCK = 4 << 20  # bytes of decompressed text per batch
ROW_GROUP_ROWS = 131_072

OnRejection = Callable[[bytes, Rejection], None]
OnProgress = Callable[[int], None]


class InputFileError(Exception):
    """An input file that is missing or cannot be read; the message names it."""


def expand_inputs(patterns: Iterable[str]) -> list[Path]:
    """Paths in the order given; a pattern with glob characters expands sorted."""
    paths: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern) and not Path(pattern).exists():
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise InputFileError(f"{pattern}: no file matches this pattern")
            paths.extend(Path(m) for m in matches)
        else:
            paths.append(Path(pattern))
    for path in paths:
        if not path.is_file():
            raise InputFileError(f"{path}: no such file")
        if not os.access(path, os.R_OK):
            raise InputFileError(f"{path}: not readable (check its permissions)")
    return paths


def read_blocks(path: Path, on_progress: OnProgress | None = None,
                block: int = READ_BLOCK) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Blocks of whole lines of a plain or gzip NDJSON file: (bytes, line starts, line ends), blank lines left out.

    ``on_progress`` receives the file bytes consumed since its last call. An unreadable file
    raises InputFileError.
    """
    try:
        with open(path, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
            tail = b""
            reported = 0
            while chunk := stream.read(block):
                data = tail + chunk if tail else chunk
                buf = np.frombuffer(data, dtype=np.uint8)
                starts, ends, cut = split_lines(buf)
                tail = data[cut:]
                if len(starts):
                    yield buf, starts, ends
                if on_progress is not None:
                    position = raw.tell()
                    on_progress(position - reported)
                    reported = position
            if tail:
                buf = np.frombuffer(tail + b"\n", dtype=np.uint8)
                starts, ends, _ = split_lines(buf)
                if len(starts):
                    yield buf, starts, ends
    except (OSError, EOFError, zlib.error) as exc:
        raise InputFileError(f"{path}: cannot be read ({exc})") from exc


def read_lines(path: Path, on_progress: OnProgress | None = None) -> Iterator[bytes]:
    """Lines of a plain or gzip NDJSON file, blank ones left out (one bytes object a line)."""
    for buf, starts, ends in read_blocks(path, on_progress):
        data = buf.tobytes()
        for s, e in zip(starts.tolist(), ends.tolist()):
            yield data[s:e]


def output_schema(spec: FeatureSpec, horizon_s: float) -> pa.Schema:
    return feature_schema(spec).append(pa.field(sigma_column(horizon_s), pa.float64()))


class LabeledRows:
    """Feature batches in; the same rows with their label out, in order, once their labels are final.

    Rows wait here only until their next ``horizon_s`` of market time has passed (or their segment
    ended), so what is held is about a minute of rows, however long the input.
    """

    def __init__(self, spec: FeatureSpec, horizon_s: float) -> None:
        self.schema = output_schema(spec, horizon_s)
        self._labels = FutureSigma(horizon_s)
        self._return_column = spec.columns.index("log_return") - 3
        self._waiting: list[pa.RecordBatch] = []
        self._sigma = np.empty(0)
        self._final = np.empty(0, dtype=np.bool_)
        self._first_row = 0  # stream number of the first waiting row

    def push(self, batch: FeatureBatch) -> list[pa.RecordBatch]:
        if len(batch) == 0:
            return []
        log_return = np.ascontiguousarray(batch.values[:, self._return_column])
        rows, sigma = self._labels.push(batch.products, batch.product, batch.ts, log_return)
        self._waiting.append(batch.to_arrow())
        self._sigma = np.concatenate([self._sigma, np.full(len(batch), np.nan)])
        self._final = np.concatenate([self._final, np.zeros(len(batch), dtype=np.bool_)])
        return self._take(rows, sigma)

    def finish(self) -> list[pa.RecordBatch]:
        rows, sigma = self._labels.finish()
        return self._take(rows, sigma)

    def _take(self, rows: np.ndarray, sigma: np.ndarray) -> list[pa.RecordBatch]:
        at = rows - self._first_row
        self._sigma[at] = sigma
        self._final[at] = True
        ready = len(self._final) if self._final.all() else int(np.argmin(self._final))
        if ready == 0:
            return []
        waiting = pa.Table.from_batches(self._waiting)
        done = waiting.slice(0, ready).append_column(self.schema.field(-1), pa.array(self._sigma[:ready]))
        self._waiting = waiting.slice(ready).to_batches()
        self._sigma = self._sigma[ready:]
        self._final = self._final[ready:]
        self._first_row += ready
        return done.to_batches()


def replay_batches(paths: Iterable[Path], spec: FeatureSpec, horizon_s: float = 60.0,
                   on_rejection: OnRejection | None = None, on_progress: OnProgress | None = None,
                   pipeline: FeaturePipeline | None = None) -> Iterator[pa.RecordBatch]:
    """Labeled feature rows of the files, in order, as Arrow batches.

    ``pipeline`` carries state in (a fresh one by default); its ``summary`` counts everything.
    """
    pipeline = pipeline if pipeline is not None else FeaturePipeline(spec)
    labeled = LabeledRows(spec, horizon_s)
    for path in paths:
        for buf, starts, ends in read_blocks(path, on_progress):
            batch, rejections = pipeline.process_buffer(buf, starts, ends)
            if rejections and on_rejection is not None:
                for i in sorted(rejections):
                    line = buf[starts[i]:ends[i]].tobytes()
                    for rejection in rejections[i]:
                        on_rejection(line, rejection)
            yield from labeled.push(batch)
    yield from labeled.finish()


def replay(paths: Iterable[Path], spec: FeatureSpec, horizon_s: float = 60.0,
           on_rejection: OnRejection | None = None,
           on_progress: OnProgress | None = None) -> tuple[pd.DataFrame, Summary]:
    """Feature table (with the future-volatility label) and counters for the files, in order, in memory."""
    pipeline = FeaturePipeline(spec)
    batches = list(replay_batches(paths, spec, horizon_s, on_rejection, on_progress, pipeline))
    table = pa.Table.from_batches(batches, schema=output_schema(spec, horizon_s))
    return table.to_pandas(), pipeline.summary


@dataclass
class ReplayResult:
    summary: Summary
    rows: int
    rows_with_label: int


class ParquetRows:
    """Appends Arrow batches to a Parquet file in row groups; the file appears whole at ``close``.

    With ``labeled``, the last column is the label and ``rows_with_label`` counts its defined values.
    """

    def __init__(self, out: Path, schema: pa.Schema, labeled: bool = False) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.tmp = out.with_name(f".{out.name}.tmp")
        self.schema = schema
        self.labeled = labeled
        # Dictionary pages only where values repeat: trying them on the float columns took most of the time.
        self._writer = pq.ParquetWriter(self.tmp, schema, use_dictionary=["product_id", "segment"])
        self._held: list[pa.RecordBatch] = []
        self._held_rows = 0
        self.rows = 0
        self.rows_with_label = 0

    def write(self, batches: Iterable[pa.RecordBatch]) -> None:
        for batch in batches:
            self._held.append(batch)
            self._held_rows += batch.num_rows
            self.rows += batch.num_rows
            if self.labeled:
                sigma = batch.column(batch.num_columns - 1).to_numpy()
                self.rows_with_label += int(np.count_nonzero(sigma == sigma))
            if self._held_rows >= ROW_GROUP_ROWS:
                self.flush()

    def flush(self) -> None:
        """Write what is held as a row group (a shorter one when less than ``ROW_GROUP_ROWS`` is held)."""
        if self._held:
            self._writer.write_table(pa.Table.from_batches(self._held, schema=self.schema),
                                     row_group_size=ROW_GROUP_ROWS)
            self._held, self._held_rows = [], 0

    def close(self) -> None:
        self.flush()
        self._writer.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        self._writer.close()
        self.tmp.unlink(missing_ok=True)


def replay_to_parquet(paths: list[Path], out: Path, spec: FeatureSpec, horizon_s: float = 60.0,
                      on_rejection: OnRejection | None = None, on_progress: OnProgress | None = None,
                      jobs: int = 1) -> ReplayResult:
    """Replay into a Parquet file written as it goes (atomically: a reader never sees half of it)."""
    if jobs > 1 and len(paths) > 1:
        from features.parallel import replay_parallel
        return replay_parallel(paths, out, spec, horizon_s, on_rejection, on_progress, jobs)
    pipeline = FeaturePipeline(spec)
    writer = ParquetRows(out, output_schema(spec, horizon_s), labeled=True)
    try:
        writer.write(replay_batches(paths, spec, horizon_s, on_rejection, on_progress, pipeline))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return ReplayResult(pipeline.summary, writer.rows, writer.rows_with_label)


def write_parquet(table: pd.DataFrame, out: Path) -> None:
    """Write atomically: a reader never sees a half-written file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, out)


def warm_up() -> None:
    """Compile the kernels now (numba caches them beside the sources): later runs start in about a second."""
    frame = (b'{"received_at":"2026-04-05T22:35:13Z","frame":{"channel":"ticker","timestamp":"2026-04-05T22:35:13Z",'
             b'"events":[{"type":"update","tickers":[{"product_id":"BTC-USD","price":"1","best_bid":"1",'
             b'"best_ask":"2"}]}]}}')
    flat = b'{"time":"2026-04-05T22:35:14Z","product_id":"BTC-USD","price":"1","best_bid":"1","best_ask":"2"}'
    spec = FeatureSpec()
    pipeline = FeaturePipeline(spec)
    labeled = LabeledRows(spec, 60.0)
    buf = np.frombuffer(frame + b"\n" + flat + b"\n", dtype=np.uint8)
    starts, ends, _ = split_lines(buf)
    labeled.push(pipeline.process_buffer(buf, starts, ends)[0])
    labeled.push(pipeline.process_batch([flat])[0])
    labeled.finish()
