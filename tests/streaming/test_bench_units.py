"""The benchmark harness's pure parts: the soak's shifted copies and its memory verdict."""

from __future__ import annotations

import orjson
import pytest

from common.config import load_config
from features.pipeline import FeaturePipeline
from streaming.bench import distinct, percentile
from streaming.market import frame_time_ns
from streaming.soak import MB_PER_10_MIN_TOLERANCE, ShiftedCopies, memory_trend


def test_shifted_copies_follow_each_other_and_every_frame_is_a_new_tick(frames):
    head = frames[:200]
    span_s = (frame_time_ns(head[-1]) - frame_time_ns(head[0])) / 1e9
    copies = ShiftedCopies(head, seconds=3 * span_s)  # a little under 3 periods: the last frame or so is cut
    assert 2 * len(head) < len(copies) <= 3 * len(head)
    assert [copies[i] for i in range(len(head))] == head
    times = [frame_time_ns(copies[i]) for i in range(len(copies))]
    assert all(a < b for a, b in zip(times, times[1:])), "time goes backwards at a copy boundary"
    assert times[len(head)] - times[0] == copies.period_ns
    assert copies[len(head) + 5]["events"] == head[5]["events"]
    pipeline = FeaturePipeline(load_config().features)
    rows = sum(len(pipeline.process(orjson.dumps(copies[i]))[0]) for i in range(len(copies)))
    assert rows == len(copies) and pipeline.summary.late == pipeline.summary.duplicates == 0
    assert pipeline.summary.segments == 1  # copies join without a gap that would start a segment
    with pytest.raises(IndexError):
        copies[len(copies)]


def test_shifted_copies_refuse_a_recording_out_of_time_order(frames):
    with pytest.raises(ValueError, match="time order"):
        ShiftedCopies([frames[1], frames[0]], seconds=60)


def test_memory_trend_judges_the_slope_after_the_warm_up():
    warmup = [(t, 50.0 + t) for t in range(0, 300, 10)]  # growing fast while warming up: ignored
    flat = memory_trend(warmup + [(t, 350.0) for t in range(300, 1800, 10)], warmup_s=300)
    assert flat.flat is True and flat.slope_mb_per_10min == 0 and flat.start_mb == flat.end_mb == 350
    leak = memory_trend([(t, 100 + t / 60) for t in range(0, 1800, 10)], warmup_s=300)  # 1 MB a minute
    assert leak.slope_mb_per_10min == pytest.approx(10.0) and leak.flat is False
    assert leak.max_mb == leak.end_mb
    edge = memory_trend([(t, 100 + t * 0.99 * MB_PER_10_MIN_TOLERANCE / 600) for t in range(0, 1800, 10)], warmup_s=300)
    assert edge.flat is True
    short = memory_trend([(t, 100.0) for t in range(0, 400, 10)], warmup_s=60)
    assert short.flat is None  # under 10 minutes after the warm-up: no verdict


def test_percentile_is_nearest_rank_and_distinct_keeps_first_occurrences():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values[::-1], 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert distinct([b"a", b"b", b"a", b"c", b"b"]) == [b"a", b"b", b"c"]
