"""Small pure pieces of the serving code: the token bucket, the variant file, error field names."""

from __future__ import annotations

import pytest

from api.app import _field
from api.ratelimit import RateLimiter, retry_after_header
from api.serving import VariantError, read_variant_file, write_variant_file


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_one_request_per_refill_interval():
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)  # one token a second
    assert all(limiter.take("a") == 0.0 for _ in range(60))
    wait = limiter.take("a")
    assert wait == pytest.approx(1.0)
    assert retry_after_header(wait) == "1"
    assert limiter.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    clock.now += 3600
    assert all(limiter.take("a") == 0.0 for _ in range(60))  # refilled, never above capacity
    assert limiter.take("a") > 0


def test_a_zero_limit_turns_limiting_off():
    limiter = RateLimiter(0)
    assert not limiter.enabled and all(limiter.take("a") == 0.0 for _ in range(1000))


def test_variant_file_round_trip_and_refusals(tmp_path):
    path = tmp_path / "serving" / "model_variant"
    assert read_variant_file(path) is None
    write_variant_file(path, "baseline")
    assert read_variant_file(path) == "baseline" and path.read_text() == "baseline\n"
    path.write_text("  ML  # rolled forward after the fix\n")
    assert read_variant_file(path) == "ml"
    path.write_text("")
    with pytest.raises(VariantError, match="not one of ml, baseline"):
        read_variant_file(path)
    with pytest.raises(VariantError):
        write_variant_file(path, "champion")


@pytest.mark.parametrize("loc, field", [
    (("body", "rows", 0, "rv_60s"), "rows[0].rv_60s"),
    (("body", "rows"), "rows"),
    (("body",), "body"),
    ((), "body"),
])
def test_error_locations_become_field_names(loc, field):
    assert _field(loc) == field
