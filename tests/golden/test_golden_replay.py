"""Golden tests on the bundled real Coinbase data: deterministic, causal, and a label true to its definition."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.labels import add_future_sigma, sigma_column
from features.online import ProductState, update
from features.replay import read_lines, replay, replay_to_parquet
from features.ticks import parse_line

REPO = Path(__file__).resolve().parents[2]
U = 2.0**-53


def independent_segments(table: pd.DataFrame, gap_s: float) -> np.ndarray:
    """Segment start time (ns) of every row, from the rows' own times: a gap > gap_s starts one."""
    ts = table["ts"].to_numpy("datetime64[ns]").view("int64")
    out = np.empty(len(table), dtype=np.int64)
    gap_ns = round(gap_s * 1e9)
    for positions in table.groupby("product_id", sort=False).indices.values():
        start = None
        previous = None
        for i in positions:  # rows of a product are in time order (no late ticks were accepted)
            if previous is None or ts[i] - previous > gap_ns:
                start = ts[i]
            out[i] = start
            previous = ts[i]
    return out


# --- deterministic -------------------------------------------------------------------------


def test_replay_twice_gives_equal_tables(cfg, flat_files, flat_replay):
    first, first_summary = flat_replay
    second, second_summary = replay(flat_files, cfg.features, cfg.label.horizon_s)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert first_summary.as_dict() == second_summary.as_dict()
    assert len(first) > 50_000  # the whole sample, not an accident of an empty read


def test_script_output_equals_in_process_replay(tmp_path, cfg, flat_replay):
    """A fresh process, the quoted glob and the Parquet round trip change nothing."""
    out = tmp_path / "features.parquet"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "replay.py"), "--no-progress",
         "--raw", "data/sample/btcusd-2025-12/*.ndjson.gz", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    table, summary = flat_replay
    pd.testing.assert_frame_equal(pd.read_parquet(out), table, check_exact=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["rows"] == len(table)
    assert report["accepted"] == summary.accepted
    assert report["segments"] == summary.segments
    assert report["rows_with_label"] == int(table[sigma_column(cfg.label.horizon_s)].notna().sum())


# --- the compiled path against the specification ------------------------------------------


def reference_replay(files: list[Path], spec, horizon_s: float) -> pd.DataFrame:
    """The specification end to end: parse_line and features.online.update line by line, then the labels."""
    states: dict[str, ProductState] = {}
    rows = []
    for path in files:
        for line in read_lines(path):
            record = parse_line(line)
            for tick in record.ticks:
                state = states.get(tick.product_id)
                if state is None:
                    state = states[tick.product_id] = ProductState(spec)
                row = update(state, tick, record.new_segment)
                if isinstance(row, list):
                    rows.append(row)
    table = pd.DataFrame(rows, columns=list(spec.columns))
    for name in ("ts", "segment"):
        table[name] = pd.to_datetime(table[name].astype("int64"), unit="ns", utc=True)
    return add_future_sigma(table, horizon_s)


def assert_same_table_bit_for_bit(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    for name in expected.columns:
        if expected[name].dtype == "float64":  # the sign of zero and every last bit too
            np.testing.assert_array_equal(got[name].to_numpy().view("int64"), expected[name].to_numpy().view("int64"),
                                          err_msg=name)


@pytest.mark.parametrize("dataset", ["flat", "frames", "exchange"])
def test_compiled_replay_equals_the_specification_bit_for_bit(request, cfg, dataset):
    files = request.getfixturevalue("flat_files") if dataset == "flat" else [request.getfixturevalue(f"{dataset}_file")]
    table, _ = request.getfixturevalue(f"{dataset}_replay")
    assert_same_table_bit_for_bit(table, reference_replay(files, cfg.features, cfg.label.horizon_s))


def test_parallel_replay_writes_the_sequential_table(tmp_path, cfg, flat_files, flat_replay):
    """Files that share no segment go to two processes; the Parquet file holds the same rows in the same order."""
    table, summary = flat_replay
    result = replay_to_parquet(flat_files, tmp_path / "p.parquet", cfg.features, cfg.label.horizon_s, jobs=2)
    assert_same_table_bit_for_bit(pd.read_parquet(tmp_path / "p.parquet"), table)
    assert result.summary.as_dict() == summary.as_dict()
    assert result.rows == len(table)


def test_without_numba_the_kernels_run_as_python_and_give_the_same_rows(tmp_path, cfg):
    """Where numba does not install (Intel macOS), replay runs the same kernels as Python: same table."""
    files = [REPO / "tests" / "data" / "exchange-2025-11-27-head.ndjson.gz",
             REPO / "tests" / "data" / "btcusd-2026-04-05-frames.ndjson.gz"]
    out = tmp_path / "python.parquet"
    code = ("import runpy, sys\n"
            "sys.modules['numba'] = None  # as if it were not installed\n"
            "from features.jit import COMPILED\n"
            "assert not COMPILED\n"
            f"sys.argv = ['replay.py', '--no-progress', '--out', {str(out)!r}, '--raw', "
            f"{', '.join(repr(str(f)) for f in files)}]\n"
            "runpy.run_path('scripts/replay.py', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    compiled, _ = replay(files, cfg.features, cfg.label.horizon_s)
    assert_same_table_bit_for_bit(pd.read_parquet(out), compiled)


# --- causal --------------------------------------------------------------------------------


def lines_with_times(files: list[Path]) -> list[tuple[int, bytes]]:
    """Every input line with the latest tick time it holds (the parser's time, ns; -1 for none)."""
    out = []
    for path in files:
        for line in read_lines(path):
            ticks = parse_line(line).ticks
            out.append((max(t.ts_ns for t in ticks) if ticks else -1, line.rstrip(b"\r\n")))
    return out


def assert_cut_leaves_earlier_rows_unchanged(tmp_path, cfg, lines, full, cut_ns) -> None:
    """Replay only the lines before ``cut_ns``; every row before it must be exactly the full replay's."""
    kept = [line for t, line in lines if t < cut_ns]
    assert 0 < len(kept) < len(lines)
    path = tmp_path / "cut.ndjson"
    path.write_bytes(b"\n".join(kept) + b"\n")
    part, _ = replay([path], cfg.features, cfg.label.horizon_s)

    before = full[full["ts"] < pd.Timestamp(cut_ns, unit="ns", tz="UTC")].reset_index(drop=True)
    assert len(part) == len(before) > 0
    features = list(cfg.features.columns)
    pd.testing.assert_frame_equal(part[features], before[features], check_exact=True)
    # Where the cut table already knows the label, it is the full table's label.
    sigma = sigma_column(cfg.label.horizon_s)
    known = part[sigma].notna()
    np.testing.assert_array_equal(part.loc[known, sigma].to_numpy(), before.loc[known, sigma].to_numpy())
    assert (known <= before[sigma].notna()).all()


@pytest.fixture(scope="module")
def flat_lines(flat_files) -> list[tuple[int, bytes]]:
    return lines_with_times(flat_files)


def _segments_by_length(table: pd.DataFrame) -> list[tuple[int, int, int]]:
    """(start ns, end ns, rows) of every segment, longest first."""
    ts = table["ts"].to_numpy("datetime64[ns]").view("int64")
    seg = table["segment"].to_numpy("datetime64[ns]").view("int64")
    frame = pd.DataFrame({"ts": ts, "seg": seg}).groupby("seg")["ts"].agg(["min", "max", "size"])
    frame = frame.sort_values("size", ascending=False)
    return [(int(a), int(b), int(n)) for a, b, n in zip(frame["min"], frame["max"], frame["size"])]


def _tick_times(table: pd.DataFrame, start: int, end: int) -> np.ndarray:
    ts = table["ts"].to_numpy("datetime64[ns]").view("int64")
    return ts[(ts >= start) & (ts <= end)]


CUTS = {
    # exactly at a tick in the middle of the longest segment: that tick and all later ones are cut
    "at_a_tick_mid_segment": lambda t, s: int(_tick_times(t, s[0][0], s[0][1])[s[0][2] // 2]),
    # one ns after a tick in the middle of the second longest segment
    "just_after_a_tick_mid_segment": lambda t, s: int(_tick_times(t, s[1][0], s[1][1])[s[1][2] // 3]) + 1,
    # 10 s into a segment: inside every trailing window
    "ten_seconds_into_a_segment": lambda t, s: s[2][0] + 10_000_000_000,
    # one ns after a segment's first tick: only that tick of it survives
    "one_tick_into_a_segment": lambda t, s: s[3][0] + 1,
    # 70 s before the end of the longest segment: the cut hides future the label needs
    "seventy_seconds_before_a_segment_end": lambda t, s: s[0][1] - 70_000_000_000,
    # between two segments
    "in_a_gap": lambda t, s: s[4][0] - 1_000_000_000,
}


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_cutting_the_input_at_t_leaves_earlier_rows_unchanged(tmp_path, cfg, flat_lines, flat_replay, cut):
    full, _ = flat_replay
    assert_cut_leaves_earlier_rows_unchanged(tmp_path, cfg, flat_lines, full,
                                             CUTS[cut](full, _segments_by_length(full)))


@pytest.mark.parametrize("fraction", [0.37, 0.81])
@pytest.mark.parametrize("dataset", ["frames", "exchange"])
def test_cutting_a_capture_leaves_earlier_rows_unchanged(request, tmp_path, cfg, dataset, fraction):
    frames_file = request.getfixturevalue(f"{dataset}_file")
    full, _ = request.getfixturevalue(f"{dataset}_replay")
    ts = full["ts"].to_numpy("datetime64[ns]").view("int64")
    cut_ns = int(ts[int(len(ts) * fraction)])  # at a frame's own (nanosecond) time, mid-segment
    assert_cut_leaves_earlier_rows_unchanged(tmp_path, cfg, lines_with_times([frames_file]), full, cut_ns)


# --- the label against its definition -------------------------------------------------------


def _sampled_rows(segments: np.ndarray, ts: np.ndarray, horizon_ns: int, per_segment: int) -> list[int]:
    """From every segment: its first and last rows, the rows around the last fully observed one, and a
    random (seeded) spread of others."""
    rng = np.random.default_rng(7)
    chosen: set[int] = set()
    for start in np.unique(segments):
        rows = np.flatnonzero(segments == start)
        chosen.update((rows[0], rows[-1]))
        edge = np.searchsorted(ts[rows], ts[rows[-1]] - horizon_ns, side="right")
        chosen.update(rows[max(edge - 2, 0): edge + 2].tolist())
        chosen.update(rng.choice(rows, size=min(per_segment, len(rows)), replace=False).tolist())
    return sorted(chosen)


# The Exchange day is many short runs: fewer sampled rows have a fully observed next minute.
@pytest.mark.parametrize("dataset, per_segment, min_defined", [("flat_replay", 120, 0.5), ("frames_replay", 6000, 0.5),
                                                               ("exchange_replay", 200, 0.2)])
def test_future_sigma_matches_a_direct_computation(request, cfg, dataset, per_segment, min_defined):
    table, summary = request.getfixturevalue(dataset)
    horizon_ns = round(cfg.label.horizon_s * 1e9)
    got_all = table[sigma_column(cfg.label.horizon_s)].to_numpy()
    ts = table["ts"].to_numpy("datetime64[ns]").view("int64")
    mid = (table["best_bid"].to_numpy() + table["best_ask"].to_numpy()) / 2
    product = pd.factorize(table["product_id"])[0]  # integer codes: fast to compare

    segments = independent_segments(table, cfg.features.segment_gap_s)
    np.testing.assert_array_equal(segments, table["segment"].to_numpy("datetime64[ns]").view("int64"))
    assert len(np.unique(segments)) == summary.segments

    rows = _sampled_rows(segments, ts, horizon_ns, per_segment)
    by_segment: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    defined = 0
    for i in rows:
        key = (product[i], segments[i])
        if key not in by_segment:
            members = np.flatnonzero((segments == segments[i]) & (product == product[i]))  # in time order
            by_segment[key] = (ts[members], np.log(mid[members][1:] / mid[members][:-1]))
        seg_ts, returns = by_segment[key]  # returns[j] belongs to the tick at seg_ts[j + 1]
        future = (seg_ts[1:] > ts[i]) & (seg_ts[1:] <= ts[i] + horizon_ns)
        r = returns[future]
        observed = seg_ts[-1] >= ts[i] + horizon_ns
        where = f"row {i} at {ts[i]} ns ({r.size} future returns, observed={observed})"
        if r.size < 2 or not observed:
            assert np.isnan(got_all[i]), f"{where}: expected NaN, got {got_all[i]!r}"
            continue
        defined += 1
        expected = np.std(r, ddof=0)
        # Running-sum error bound over the segment (derivation in tests/unit/test_properties.py).
        n_seg = seg_ts.size
        err_s = (3 * n_seg + 3) * U * np.abs(returns).sum()
        err_q = (3 * n_seg + 3) * U * (returns**2).sum()
        n, s, q = r.size, abs(r.sum()), (r**2).sum()
        tol = err_q / n + 2 * s / n * err_s / n + (err_s / n) ** 2 + (n + 8) * U * (q / n + (s / n) ** 2)
        assert abs(got_all[i] ** 2 - expected**2) <= tol, f"{where}: expected {expected!r}, got {got_all[i]!r}"
    assert defined > min_defined * len(rows)  # many sampled rows carry a label: the comparison is not vacuous


# --- the wrapped frames capture ------------------------------------------------------------


def test_wrapped_frames_capture_replays_with_one_skipped_subscriptions_frame(frames_file, frames_replay):
    table, summary = frames_replay
    payloads = []
    for line in read_lines(frames_file):
        payloads.append(json.loads(line)["payload"])
    tickers = [p for p in payloads if p["channel"] == "ticker"]
    assert dict(summary.skipped_frames) == {"subscriptions": 1}
    assert summary.lines == len(payloads)
    assert summary.accepted == len(table) == len(tickers) == len(payloads) - 1
    assert sum(summary.rejected.values()) == 0
    assert summary.segments == 1
    # Each row carries its frame's exchange time, to the nanosecond, not the recorder's time.
    expected = pd.to_datetime([p["timestamp"] for p in tickers], utc=True, format="ISO8601")
    np.testing.assert_array_equal(table["ts"].to_numpy("datetime64[ns]"), expected.to_numpy("datetime64[ns]"))
    assert (table["ts"].dt.nanosecond != 0).any()
    best_bid = [float(p["events"][0]["tickers"][0]["best_bid"]) for p in tickers]
    np.testing.assert_array_equal(table["best_bid"].to_numpy(), np.array(best_bid))
    assert table["book_imbalance"].notna().all()  # the frames carry book quantities


# --- the Exchange feed day -------------------------------------------------------------------


def test_exchange_feed_day_replays_every_message_per_product(exchange_file, exchange_replay):
    table, summary = exchange_replay
    messages = [json.loads(line) for line in read_lines(exchange_file)]
    assert summary.lines == len(messages) == summary.accepted == len(table)
    assert sum(summary.rejected.values()) == 0 and not summary.skipped_frames
    assert sorted(table["product_id"].unique()) == ["BTC-USD", "ETH-USD", "SOL-USD"]
    # Rows keep the file's order; each carries its message's own exchange time and book sizes.
    expected = pd.to_datetime([m["time"] for m in messages], utc=True, format="ISO8601")
    np.testing.assert_array_equal(table["ts"].to_numpy("datetime64[ns]"), expected.to_numpy("datetime64[ns]"))
    bid, ask = (np.array([float(m[k]) for m in messages]) for k in ("best_bid_size", "best_ask_size"))
    np.testing.assert_allclose(table["book_imbalance"].to_numpy(), (bid - ask) / (bid + ask), rtol=1e-12)
    # Segments are per product: each product's own gaps, whatever the other products did meanwhile.
    for product, rows in table.groupby("product_id"):
        gaps = rows["ts"].diff().dt.total_seconds().to_numpy()[1:]
        assert rows["segment"].nunique() == 1 + int((gaps > 30).sum()), product
