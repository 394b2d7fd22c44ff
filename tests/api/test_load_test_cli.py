"""scripts/load_test.py runs end to end (a short, bounded run; speed figures belong to `make bench`)."""

from __future__ import annotations

import re

from serving_helpers import run_script


def test_a_short_load_test_writes_its_section(trained, tmp_path, capsys):
    report = tmp_path / "benchmarks.md"
    code = run_script("load_test", [
        "--target-rate", "20", "--duration", "1", "--capacity", "20", "--capacity-seconds", "1",
        "--multiples", "1", "4", "--fuzz-examples", "3", "--features", str(trained.features_path),
        "--artifacts-dir", str(trained.artifacts), "--model-uri", str(trained.artifacts / trained.selected),
        "--report", str(report)])
    assert code == 0, capsys.readouterr().err
    text = report.read_text()
    assert "<!-- bench:api -->" in text and f"model `{trained.selected}`" in text
    rows = {line.split("|")[1].strip(): line.split("|") for line in text.splitlines() if line.startswith("| ")}
    target = rows["target 20/s"]
    assert target[3].strip() == "20" and target[7].strip() == "0" and target[8].strip() == "0"  # sent, 5xx, lost
    assert "overload 4x" in rows
    # The hostile cases ran against an API with the configured limit (100 a minute).
    spoof = re.search(r"spoofed X-Forwarded-For.*?\| (\d+) served, (\d+) refused 429, 0 5xx in ([\d.]+) s", text)
    assert spoof, text
    served, refused, seconds = int(spoof.group(1)), int(spoof.group(2)), float(spoof.group(3))
    assert served + refused == 150 and 100 <= served <= 100 + seconds * 100 / 60 + 1  # one bucket, not 150
    assert re.search(r"100 MB chunked body \| 413 after", text)
    assert re.search(r"100k-row chunked batch \(\d+ MB\) \| 413 after", text)
    assert "zero 5xx in the hostile cases (a flood's own 503s aside): met" in text
    assert "zero 5xx in a schemathesis run over HTTP" in text


def test_only_loopback_servers_are_load_tested(trained, capsys):
    code = run_script("load_test", ["--url", "http://192.0.2.1:8000", "--features", str(trained.features_path)])
    assert code == 1
    assert "only loopback addresses" in capsys.readouterr().err
