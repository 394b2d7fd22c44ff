"""Replay files in several processes where that cannot change a row: files that share no segment.

A product's state crosses from one file into the next only when its first tick there comes
within ``segment_gap_s`` of its last tick before (or earlier: a late tick or a duplicate).
When the first tick of every product in the files after a cut lies more than the gap after
that product's last tick before the cut, the files after it start every segment afresh, so a
fresh pipeline gives the very rows (and labels) the sequential run gives. Replay therefore
first reads every file once for each product's first and last tick time (in parallel),
cuts the file list into chains at every such point, replays the chains in parallel into
temporary Arrow files, and appends those to the Parquet output in order.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa

from features.online import FeatureSpec, ProductState
from features.pipeline import FeaturePipeline, Summary, parse_columns
from features.replay import OnProgress, OnRejection, ParquetRows, ReplayResult, output_schema, read_blocks, \
    replay_batches
from features.ticks import Rejection

log = logging.getLogger(__name__)


def file_bounds(path: Path) -> dict[str, tuple[int, int]]:
    """Per product: the time of its first valid tick in the file and the latest time of any (ns)."""
    bounds: dict[str, tuple[int, int]] = {}
    scratch = Summary()
    for buf, starts, ends in read_blocks(path):
        ticks, _ = parse_columns(buf, starts, ends, lambda i: buf[starts[i]:ends[i]].tobytes(), scratch)
        for code, name in enumerate(ticks.products):
            times = ticks.ts[ticks.product == code]
            if len(times) == 0:
                continue
            first, latest = int(times[0]), int(times.max())
            if name in bounds:
                first, latest = bounds[name][0], max(bounds[name][1], latest)
            bounds[name] = (first, latest)
    return bounds


def chains(bounds: list[dict[str, tuple[int, int]]], gap_ns: int) -> list[list[int]]:
    """Split file indices into runs that share no segment with each other."""
    n = len(bounds)
    cut_ok = [True] * n  # cut_ok[b]: files b.. share no segment with files ..b-1
    latest: dict[str, int] = {}  # per product, the latest tick time in files before b
    for b in range(1, n):
        for name, (_, last) in bounds[b - 1].items():
            latest[name] = max(latest.get(name, last), last)
        seen: set[str] = set()
        for later in bounds[b:]:  # the first appearance of each product from file b on
            for name, (first, _) in later.items():
                if name in seen:
                    continue
                seen.add(name)
                if name in latest and first - latest[name] <= gap_ns:
                    cut_ok[b] = False
            if not cut_ok[b] or latest.keys() <= seen:
                break
    runs: list[list[int]] = [[0]] if n else []
    for b in range(1, n):
        if cut_ok[b]:
            runs.append([b])
        else:
            runs[-1].append(b)
    return runs


def tasks(runs: list[list[int]], sizes: list[int], jobs: int) -> list[list[int]]:
    """Consecutive runs joined into about ``4 * jobs`` tasks of similar size (a task costs a few ms to set up)."""
    target = sum(sizes) / (4 * jobs)
    out: list[list[int]] = []
    size = 0.0
    for run in runs:
        if not out or size >= target:
            out.append([])
            size = 0.0
        out[-1].extend(run)
        size += sum(sizes[i] for i in run)
    return out


def _replay_chain(paths: list[Path], spec: FeatureSpec, horizon_s: float, out: Path,
                  keep_rejections: bool) -> tuple[Summary, list[tuple[bytes, Rejection]]]:
    """One chain, sequentially, into an Arrow file (a worker process)."""
    rejected: list[tuple[bytes, Rejection]] = []
    pipeline = FeaturePipeline(spec)
    on_rejection = (lambda line, rejection: rejected.append((line, rejection))) if keep_rejections else None
    schema = output_schema(spec, horizon_s)
    with pa.OSFile(str(out), "wb") as sink, \
            pa.ipc.new_file(sink, schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
        for batch in replay_batches(paths, spec, horizon_s, on_rejection, None, pipeline):
            writer.write_batch(batch)
    return pipeline.summary, rejected


def replay_parallel(paths: list[Path], out: Path, spec: FeatureSpec, horizon_s: float,
                    on_rejection: OnRejection | None, on_progress: OnProgress | None, jobs: int) -> ReplayResult:
    """``replay_to_parquet`` with ``jobs`` processes; the same file, row for row."""
    gap_ns = ProductState(spec)._gap_ns
    # spawn, not fork: a forked child of a process with Arrow's threads can hang
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=context) as pool:
        bounds = list(pool.map(file_bounds, paths, chunksize=max(1, len(paths) // (8 * jobs))))
        runs = chains(bounds, gap_ns)
        log.info("%d files in %d runs that share no segment", len(paths), len(runs))
        runs = tasks(runs, [path.stat().st_size for path in paths], jobs)
        writer = ParquetRows(out, output_schema(spec, horizon_s), labeled=True)
        summary = Summary()
        try:
            with tempfile.TemporaryDirectory(dir=out.parent, prefix=".replay-") as tmp:
                parts = [Path(tmp) / f"run-{k:05d}.arrow" for k in range(len(runs))]
                futures = [pool.submit(_replay_chain, [paths[i] for i in run], spec, horizon_s, part,
                                       on_rejection is not None) for run, part in zip(runs, parts)]
                for run, part, future in zip(runs, parts, futures):
                    run_summary, rejected = future.result()
                    for line, rejection in rejected:
                        on_rejection(line, rejection)
                    with pa.memory_map(str(part)) as source:
                        reader = pa.ipc.open_file(source)
                        writer.write(reader.get_batch(i) for i in range(reader.num_record_batches))
                        writer.flush()  # nothing may point into the mapped file once it is closed
                    os.unlink(part)
                    summary.add(run_summary)
                    if on_progress is not None:
                        on_progress(sum(paths[i].stat().st_size for i in run))
        except BaseException:
            writer.abort()
            raise
        writer.close()
    return ReplayResult(summary, writer.rows, writer.rows_with_label)
