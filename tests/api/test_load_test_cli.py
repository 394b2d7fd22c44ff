"""scripts/load_test.py runs end to end (a short, bounded run; speed figures belong to `make bench`)."""

from __future__ import annotations

from serving_helpers import run_script


def test_a_short_load_test_writes_its_section(trained, tmp_path, capsys):
    report = tmp_path / "benchmarks.md"
    code = run_script("load_test", [
        "--rates", "20", "--duration", "1", "--features", str(trained.features_path),
        "--artifacts-dir", str(trained.artifacts), "--model-uri", str(trained.artifacts / trained.selected),
        "--report", str(report)])
    assert code == 0, capsys.readouterr().err
    text = report.read_text()
    assert "<!-- bench:api -->" in text and "| 20 | 20 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 20 |")).split("|")
    assert row[9].strip() == "0" and row[10].strip() == "0"  # no 4xx, no 5xx
    assert f"model `{trained.selected}`" in text


def test_only_loopback_servers_are_load_tested(trained, capsys):
    code = run_script("load_test", ["--url", "http://192.0.2.1:8000", "--features", str(trained.features_path)])
    assert code == 1
    assert "only loopback addresses" in capsys.readouterr().err
