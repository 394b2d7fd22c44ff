"""Reading recorded files: plain and gzip, blank lines, empty files, order of files, globs."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from features.labels import sigma_column
from features.online import FeatureSpec
from features.parallel import chains, file_bounds
from features.replay import InputFileError, expand_inputs, read_lines, replay

SPEC = FeatureSpec()


def flat_line(stamp: str, bid: float = 100.0, ask: float = 100.5) -> bytes:
    return (f'{{"timestamp": "2025-12-06T{stamp}", "product_id": "BTC-USD", "price": "{bid}", '
            f'"best_bid": "{bid}", "best_ask": "{ask}"}}').encode()


def write(path: Path, lines: list[bytes], newline: bytes = b"\n") -> Path:
    data = b"".join(line + newline for line in lines)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def assert_empty_feature_table(table: pd.DataFrame) -> None:
    assert len(table) == 0
    assert list(table.columns) == [*SPEC.columns, sigma_column(60.0)]
    assert str(table["ts"].dtype) == "datetime64[ns, UTC]"
    assert str(table["segment"].dtype) == "datetime64[ns, UTC]"
    assert table["rv_60s"].dtype == "float64"


@pytest.mark.parametrize("suffix", [".ndjson", ".ndjson.gz"])
def test_read_lines_skips_blank_and_whitespace_lines(tmp_path, suffix):
    lines = [flat_line("01:00:00"), b"", b"   ", b"\t", flat_line("01:00:01")]
    path = write(tmp_path / f"a{suffix}", lines)
    assert [line.strip() for line in read_lines(path)] == [lines[0], lines[4]]


def test_read_lines_handles_crlf_and_a_missing_final_newline(tmp_path):
    path = tmp_path / "crlf.ndjson"
    path.write_bytes(flat_line("01:00:00") + b"\r\n\r\n" + flat_line("01:00:01"))
    table, summary = replay([path], SPEC)
    assert len(table) == 2
    assert summary.lines == 2
    assert sum(summary.rejected.values()) == 0


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"], ids=["zero_bytes", "blank_lines"])
@pytest.mark.parametrize("compressed", [False, True])
def test_empty_files_give_an_empty_table_with_all_columns(tmp_path, content, compressed):
    path = tmp_path / ("e.ndjson.gz" if compressed else "e.ndjson")
    path.write_bytes(gzip.compress(content) if compressed else content)
    table, summary = replay([path], SPEC)
    assert_empty_feature_table(table)
    assert summary.lines == 0 and summary.accepted == 0


def test_files_are_replayed_in_the_order_given_and_state_carries_over(tmp_path):
    first = write(tmp_path / "b_first.ndjson", [flat_line("01:00:00"), flat_line("01:00:10", 101, 101.5)])
    second = write(tmp_path / "a_second.ndjson.gz", [flat_line("01:00:20", 102, 102.5)])
    table, summary = replay(expand_inputs([str(first), str(second)]), SPEC)
    assert summary.segments == 1 and summary.accepted == 3
    assert table["segment"].nunique() == 1
    assert not pd.isna(table["log_return"].iloc[2])

    table, summary = replay(expand_inputs([str(second), str(first)]), SPEC)
    assert summary.accepted == 1 and summary.late == 2


def test_glob_expands_sorted_and_explicit_order_is_kept(tmp_path):
    for name in ["c.ndjson", "a.ndjson", "b.ndjson"]:
        write(tmp_path / name, [flat_line("01:00:00")])
    assert [p.name for p in expand_inputs([str(tmp_path / "*.ndjson")])] == ["a.ndjson", "b.ndjson", "c.ndjson"]
    explicit = [str(tmp_path / "c.ndjson"), str(tmp_path / "a.ndjson")]
    assert [p.name for p in expand_inputs(explicit)] == ["c.ndjson", "a.ndjson"]


def test_missing_file_and_empty_glob_name_what_is_missing(tmp_path):
    with pytest.raises(InputFileError, match="nothere.ndjson"):
        expand_inputs([str(tmp_path / "nothere.ndjson")])
    with pytest.raises(InputFileError, match=r"nomatch\*\.ndjson"):
        expand_inputs([str(tmp_path / "nomatch*.ndjson")])


def test_truncated_gzip_raises_input_file_error_naming_it(tmp_path):
    data = gzip.compress(b"".join(flat_line(f"01:00:{i:02d}") + b"\n" for i in range(50)))
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="cut.ndjson.gz"):
        replay([path], SPEC)


def test_rejections_are_passed_on_with_their_line(tmp_path):
    bad = b'{"timestamp": "2025-12-06T01:00:01", "product_id": "BTC-USD", "best_bid": "x", "best_ask": "1"}'
    path = write(tmp_path / "r.ndjson", [flat_line("01:00:00"), bad, b"{oops"])
    seen = []
    table, summary = replay([path], SPEC, on_rejection=lambda line, rej: seen.append((line.strip(), rej.reason)))
    assert seen == [(bad, "missing_field"), (b"{oops", "invalid_json")]
    assert len(table) == 1


def test_table_keeps_nanosecond_timestamps(tmp_path):
    line = (b'{"channel": "ticker", "timestamp": "2026-04-05T22:35:14.009945409Z", "sequence_num": 2, '
            b'"events": [{"type": "update", "tickers": [{"product_id": "BTC-USD", "price": "1", '
            b'"best_bid": "1", "best_ask": "2"}]}]}')
    table, _ = replay([write(tmp_path / "f.ndjson", [line])], SPEC)
    assert table["ts"].iloc[0] == pd.Timestamp("2026-04-05T22:35:14.009945409Z")
    assert table["ts"].iloc[0].value % 1_000_000_000 == 9_945_409


S = 1_000_000_000
SECONDS_0100 = 1_764_982_800 * S  # 2025-12-06T01:00:00Z


def product_line(product: str, stamp: str, bid: float = 100.0) -> bytes:
    return flat_line(stamp, bid, bid + 0.5).replace(b'"BTC-USD"', f'"{product}"'.encode())


def test_only_files_that_share_no_segment_are_replayed_apart(tmp_path):
    """A cut between files is safe only when every product's next tick there starts a new segment."""
    files = [
        write(tmp_path / "0.ndjson", [product_line("X", "01:00:00"), product_line("X", "01:00:10")]),
        write(tmp_path / "1.ndjson", [product_line("X", "01:00:35")]),  # 25 s after: the same segment
        write(tmp_path / "2.ndjson", [product_line("X", "01:02:00"), product_line("Y", "01:02:00")]),  # 85 s after
        write(tmp_path / "3.ndjson", [product_line("Y", "01:03:00")]),  # Y's gap is 60 s, but X ...
        write(tmp_path / "4.ndjson", [product_line("X", "01:02:20")]),  # ... goes on from file 2 here
        write(tmp_path / "5.ndjson", [product_line("Y", "01:05:00"), product_line("X", "01:01:00")]),  # a late X tick
        write(tmp_path / "6.ndjson", [product_line("Z", "00:00:00")]),  # a product never seen before
    ]
    bounds = [file_bounds(path) for path in files]
    assert bounds[0] == {"X": (SECONDS_0100, SECONDS_0100 + 10 * S)}
    assert chains(bounds, 30 * S) == [[0, 1], [2, 3, 4, 5], [6]]
