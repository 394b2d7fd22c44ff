"""scripts/replay.py as a user runs it: a subprocess, its exit code, its one-line errors, its outputs."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from common.config import load_config
from features.labels import sigma_column

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "replay.py"


def run_replay(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--no-progress", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def summary_of(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flat(stamp: str, bid: str = "100.0", ask: str = "100.5") -> str:
    return (f'{{"timestamp": "2025-12-06T{stamp}", "product_id": "BTC-USD", "price": "{bid}", '
            f'"best_bid": "{bid}", "best_ask": "{ask}"}}')


def good_gz(path: Path, n: int = 300) -> Path:
    text = "".join(flat(f"01:{i // 60:02d}:{i % 60:02d}.25", f"{100 + i % 7}", f"{100.5 + i % 7}") + "\n"
                   for i in range(n))
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    return path


def assert_one_line_error(proc: subprocess.CompletedProcess, name: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert name in lines[0]


def test_missing_file_exits_2_with_one_line_naming_it(tmp_path):
    good = good_gz(tmp_path / "good.ndjson.gz")
    proc = run_replay("--raw", str(good), str(tmp_path / "nothere.ndjson"), "--out", str(tmp_path / "o.parquet"),
                      cwd=tmp_path)
    assert_one_line_error(proc, "nothere.ndjson")
    assert not (tmp_path / "o.parquet").exists()


def test_glob_matching_nothing_exits_2_naming_the_pattern(tmp_path):
    proc = run_replay("--raw", str(tmp_path / "none*.ndjson"), "--out", str(tmp_path / "o.parquet"), cwd=tmp_path)
    assert_one_line_error(proc, "none*.ndjson")


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _not_gzip(data: bytes) -> bytes:
    return b"this was never gzip\n" * 10


def _corrupt_stream(data: bytes) -> bytes:
    damaged = bytearray(data)
    for k in range(200, 260):  # inside the deflate stream, past the 10-byte header
        damaged[k] ^= 0xFF
    return bytes(damaged)


def _bad_checksum(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[-6] ^= 0xFF  # CRC32 trailer
    return bytes(damaged)


@pytest.mark.parametrize("damage", [_truncated, _not_gzip, _corrupt_stream, _bad_checksum],
                         ids=["truncated", "not_gzip", "corrupt_stream", "bad_checksum"])
def test_corrupt_gz_exits_2_with_one_line_naming_it(tmp_path, damage):
    good = good_gz(tmp_path / "good.ndjson.gz", 3000)
    bad = tmp_path / "bad.ndjson.gz"
    bad.write_bytes(damage(good.read_bytes()))
    proc = run_replay("--raw", str(good), str(bad), "--out", str(tmp_path / "o.parquet"), cwd=tmp_path)
    assert_one_line_error(proc, "bad.ndjson.gz")
    assert not (tmp_path / "o.parquet").exists()


def test_quoted_glob_replays_matching_files_in_sorted_order(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "b.ndjson").write_text(flat("01:00:10", "101", "101.5") + "\n")
    (tmp_path / "in" / "a.ndjson").write_text(flat("01:00:00") + "\n")
    (tmp_path / "in" / "skip.txt").write_text("not matched\n")
    out = tmp_path / "o.parquet"
    proc = run_replay("--raw", "in/*.ndjson", "--out", str(out), cwd=tmp_path)  # the shell did not expand it
    assert proc.returncode == 0, proc.stderr
    summary = summary_of(proc)
    assert summary["files"] == 2
    assert summary["accepted"] == 2 and summary["late"] == 0  # a before b: in time order
    table = pd.read_parquet(out)
    assert list(table["ts"]) == [pd.Timestamp("2025-12-06T01:00:00Z"), pd.Timestamp("2025-12-06T01:00:10Z")]


MALFORMED = [
    ("{broken json", "invalid_json"),
    ("[1, 2]", "invalid_json"),
    ('{"what": "is this"}', "unknown_shape"),
    ('{"timestamp": "2025-12-06T01:00:03", "price": "1", "best_bid": "1", "best_ask": "2"}', "missing_product"),
    ('{"product_id": "BTC-USD", "price": "1", "best_bid": "1", "best_ask": "2"}', "missing_time"),
    ('{"timestamp": "2025-12-06T01:00:03", "product_id": "BTC-USD", "price": "1", "best_ask": "2"}',
     "missing_field"),
    (flat("01:00:03", "abc", "2"), "bad_number"),
    (flat("01:00:03", "NaN", "2"), "bad_quote"),
    (flat("01:00:03", "1", "inf"), "bad_quote"),
    (flat("01:00:03", "0", "2"), "bad_quote"),
    (flat("01:00:03", "-1", "2"), "bad_quote"),
    (flat("01:00:03", "3", "2"), "crossed_book"),
    (flat("01:00:01.5"), "late"),
]


def test_malformed_lines_are_counted_written_to_rejects_and_never_stop_it(tmp_path):
    good = [flat("01:00:00"), flat("01:00:02", "101", "101.5"), flat("01:00:04", "102", "102.5")]
    lines = [good[0], good[1], *(text for text, _ in MALFORMED), good[1], "", "   ", good[2]]
    raw = tmp_path / "mixed.ndjson"
    raw.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe not utf-8\n")
    out, rejects = tmp_path / "o.parquet", tmp_path / "rejects.ndjson"
    proc = run_replay("--raw", str(raw), "--out", str(out), "--rejects", str(rejects), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = summary_of(proc)

    expected: dict[str, int] = {}
    for _, reason in [*MALFORMED, ("", "invalid_json")]:
        expected[reason] = expected.get(reason, 0) + 1
    assert summary["rejected"] == expected
    assert summary["accepted"] == 3
    assert summary["duplicates"] == 1  # good[1] repeated right after the rejected lines
    assert summary["late"] == 1
    assert summary["rows"] == 3
    assert len(pd.read_parquet(out)) == 3

    written = [json.loads(text) for text in rejects.read_text().splitlines()]
    assert [w["reason"] for w in written] == [reason for _, reason in MALFORMED] + ["invalid_json"]
    assert [w["line"] for w in written[: len(MALFORMED)]] == [text for text, _ in MALFORMED]
    assert all(w["detail"] for w in written)


def test_empty_inputs_give_a_valid_empty_table(tmp_path):
    (tmp_path / "empty.ndjson").write_bytes(b"")
    (tmp_path / "blank.ndjson").write_bytes(b"\n \n")
    (tmp_path / "empty.ndjson.gz").write_bytes(gzip.compress(b""))
    out = tmp_path / "sub" / "o.parquet"
    proc = run_replay("--raw", "empty.ndjson", "blank.ndjson", "empty.ndjson.gz", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = summary_of(proc)
    assert summary["rows"] == 0 and summary["rows_with_label"] == 0 and summary["files"] == 3
    cfg = load_config(environ={})
    table = pd.read_parquet(out)
    assert len(table) == 0
    assert list(table.columns) == [*cfg.features.columns, sigma_column(cfg.label.horizon_s)]
    assert str(table["ts"].dtype) == "datetime64[ns, UTC]"


def test_invalid_config_value_exits_2_with_one_line(tmp_path):
    (tmp_path / "in.ndjson").write_text(flat("01:00:00") + "\n")
    (tmp_path / "bad.yaml").write_text("features:\n  segment_gap_s: 0\n")
    proc = run_replay("--raw", "in.ndjson", "--out", "o.parquet", "--config", "bad.yaml", cwd=tmp_path)
    assert_one_line_error(proc, "segment_gap_s")


def test_unknown_config_key_exits_2_naming_it(tmp_path):
    (tmp_path / "in.ndjson").write_text(flat("01:00:00") + "\n")
    (tmp_path / "bad.yaml").write_text("features:\n  segment_gaps: 10\n")
    proc = run_replay("--raw", "in.ndjson", "--out", "o.parquet", "--config", "bad.yaml", cwd=tmp_path)
    assert_one_line_error(proc, "features.segment_gaps")


def test_help_exits_0():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "--raw" in proc.stdout and "--out" in proc.stdout
