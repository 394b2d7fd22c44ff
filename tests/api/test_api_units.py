"""Small pure pieces of the serving code: the token bucket and its shared table, client identity behind
proxies, the admission gate, the variant file, error field names."""

from __future__ import annotations

import asyncio

import pytest

from api.admission import Admission, Overloaded
from api.app import _field
from api.clients import ClientResolver, ProxyConfigError
from api.ratelimit import RateLimiter, create_table, retry_after_header
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


@pytest.mark.parametrize("peer, header, expected", [
    ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),                   # not a proxy: the header is ignored
    ("10.0.0.5", [], "10.0.0.5"),                                        # a proxy that forwarded nothing
    ("10.0.0.5", ["192.0.2.1, 198.51.100.1"], "198.51.100.1"),           # the proxy's entry, not the client's
    ("10.0.0.5", ["198.51.100.1, 10.0.0.9"], "198.51.100.1"),            # through two proxies of ours
    ("10.0.0.5", ["198.51.100.1", "10.0.0.9"], "198.51.100.1"),          # the same, as two headers
    ("10.0.0.5", ["198.51.100.1:4711"], "198.51.100.1"),                 # with a port
    ("10.0.0.5", ["[2001:db8::1]:443"], "2001:db8::1"),
    ("10.0.0.5", ["garbage, 10.0.0.9"], "10.0.0.9"),                     # stop at the last address we vouch for
    ("10.0.0.5", ["10.0.0.7"], "10.0.0.7"),                              # only proxies: the first one
])
def test_the_client_is_the_rightmost_address_not_a_trusted_proxy(peer, header, expected):
    resolver = ClientResolver(["10.0.0.0/8"])
    assert resolver.client(peer, [h.encode() for h in header]) == expected


def test_no_trusted_proxies_means_the_peer_whatever_the_header():
    assert ClientResolver([]).client("127.0.0.1", [b"198.51.100.1"]) == "127.0.0.1"
    with pytest.raises(ProxyConfigError, match="TRUSTED_PROXIES"):
        ClientResolver(["not-an-address"])


def test_limiters_sharing_a_table_share_each_clients_budget(tmp_path):
    clock = Clock()
    table = create_table(tmp_path / "table", slots=64)
    first, second = RateLimiter(4, clock=clock, table=table), RateLimiter(4, clock=clock, table=table)
    taken = [(first if i % 2 else second).take("a") == 0.0 for i in range(6)]
    assert taken == [True] * 4 + [False] * 2  # four in all, not four per worker
    assert first.take("b") == 0.0 and second.take("c") == 0.0
    (tmp_path / "empty").touch()
    with pytest.raises(ValueError, match="create_table"):
        RateLimiter(4, table=tmp_path / "empty")


def test_a_full_table_hands_the_longest_idle_slot_to_a_new_client():
    clock = Clock()
    limiter = RateLimiter(1, clock=clock, slots=16)  # every client's probes cover the whole table
    for i in range(16):
        assert limiter.take(f"client-{i}") == 0.0
        clock.now += 0.1
    assert limiter.take("client-15") > 0  # still remembered
    assert limiter.take("newcomer") == 0.0  # took client-0's slot, the longest idle
    assert limiter.take("client-0") == 0.0  # forgotten: a full bucket again
    assert limiter.take("client-15") > 0


def _run(coro):
    return asyncio.run(coro)


def test_admission_refuses_past_the_queue_depth_at_once():
    async def scenario():
        gate = Admission(max_queue=2, max_wait_s=10)
        release = asyncio.Event()
        outcomes: list[str] = []

        async def request(hold: bool) -> None:
            try:
                async with gate.turn():
                    if hold:
                        await release.wait()
                    outcomes.append("served")
            except Overloaded as exc:
                outcomes.append(exc.reason)

        holder = asyncio.create_task(request(True))
        await asyncio.sleep(0.01)
        waiters = [asyncio.create_task(request(False)) for _ in range(2)]
        await asyncio.sleep(0.01)
        assert gate.waiting == 2
        await request(False)  # a third waiter: refused without waiting
        assert outcomes == ["queue_full"]
        release.set()
        await asyncio.gather(holder, *waiters)
        return outcomes

    assert _run(scenario()) == ["queue_full", "served", "served", "served"]


def test_admission_keeps_one_client_to_its_share_of_the_queue():
    async def scenario():
        gate = Admission(max_queue=4, max_wait_s=10, max_per_client=1)
        async with gate.turn("a"):
            first = asyncio.create_task(_enter(gate, "a"))
            await asyncio.sleep(0.01)
            with pytest.raises(Overloaded) as refused:
                await _enter(gate, "a")
            other = asyncio.create_task(_enter(gate, "b"))  # another client still has room
            await asyncio.sleep(0.01)
            assert gate.waiting == 2
        await asyncio.gather(first, other)
        return refused.value.reason

    assert _run(scenario()) == "client_queue_full"
    with pytest.raises(ValueError, match="max_queue_per_client"):
        Admission(max_queue=2, max_wait_s=1, max_per_client=3)


async def _enter(gate: Admission, client: str) -> None:
    async with gate.turn(client):
        pass


def test_refusal_lines_are_capped_per_second_and_the_next_line_counts_the_rest():
    from api.app import RefusalLog

    refusals = RefusalLog(per_second=2)
    assert [refusals.admit(100.1), refusals.admit(100.2), refusals.admit(100.3), refusals.admit(100.9)] == \
        [0, 0, None, None]
    assert refusals.admit(101.0) == 2


def test_admission_refuses_a_request_that_waited_too_long():
    async def scenario():
        gate = Admission(max_queue=10, max_wait_s=0.05)
        async with gate.turn():
            with pytest.raises(Overloaded) as refused:
                async with gate.turn():
                    pass
        assert refused.value.reason == "queue_wait" and gate.waiting == 0
        async with gate.turn():  # the gate is free again
            return True

    assert _run(scenario())
