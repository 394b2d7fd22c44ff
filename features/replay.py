"""Replay recorded NDJSON files through the feature pipeline into a feature table."""

from __future__ import annotations

import glob
import gzip
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.labels import add_future_sigma
from features.online import TIME_COLUMNS, FeatureSpec
from features.pipeline import FeaturePipeline, Summary
from features.ticks import Rejection

CHUNK_ROWS = 65_536


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


def read_lines(path: Path, on_progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """Non-empty lines of a plain or gzip NDJSON file; unreadable files raise InputFileError.

    ``on_progress`` receives the file bytes consumed since its last call.
    """
    try:
        with open(path, "rb") as raw:
            handle = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
            reported = 0
            for count, line in enumerate(handle, 1):
                if line.strip():
                    yield line
                if on_progress is not None and count % 16_384 == 0:
                    position = raw.tell()
                    on_progress(position - reported)
                    reported = position
            if on_progress is not None:
                on_progress(raw.tell() - reported)
    except (OSError, EOFError) as exc:
        raise InputFileError(f"{path}: cannot be read ({exc})") from exc


class TableBuilder:
    """Collects row tuples and packs them into Arrow batches so memory stays near table size."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.columns = spec.columns
        self._pending: list[tuple] = []
        self._batches: list[pa.RecordBatch] = []
        self._schema = pa.schema(
            [
                pa.field(name, _column_type(name))
                for name in self.columns
            ]
        )

    def extend(self, rows: list[tuple]) -> None:
        self._pending.extend(rows)
        if len(self._pending) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            arrays = [
                pa.array(values, type=pa.int64()).cast(field.type) if field.name in TIME_COLUMNS
                else pa.array(values, type=field.type)
                for values, field in zip(zip(*self._pending), self._schema)
            ]
            self._batches.append(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
            self._pending.clear()

    def to_pandas(self) -> pd.DataFrame:
        self._flush()
        table = pa.Table.from_batches(self._batches, schema=self._schema)
        return table.to_pandas()


def _column_type(name: str) -> pa.DataType:
    if name in TIME_COLUMNS:
        return pa.timestamp("ns", tz="UTC")
    if name == "product_id":
        return pa.string()
    return pa.float64()


def replay(
    paths: Iterable[Path],
    spec: FeatureSpec,
    horizon_s: float = 60.0,
    on_rejection: Callable[[bytes, Rejection], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, Summary]:
    """Feature table (with the future-volatility label) and counters for the files, in order.

    ``on_progress`` receives file bytes read, for a progress bar.
    """
    pipeline = FeaturePipeline(spec)
    builder = TableBuilder(spec)
    process = pipeline.process
    for path in paths:
        for line in read_lines(path, on_progress):
            rows, rejections = process(line)
            if rows:
                builder.extend(rows)
            if rejections and on_rejection is not None:
                for rejection in rejections:
                    on_rejection(line, rejection)
    table = add_future_sigma(builder.to_pandas(), horizon_s)
    return table, pipeline.summary


def write_parquet(table: pd.DataFrame, out: Path) -> None:
    """Write atomically: a reader never sees a half-written file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, out)
