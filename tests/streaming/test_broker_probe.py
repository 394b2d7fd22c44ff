"""The broker probes tell the two brokers apart: the quick ones, on Tansu and on Apache Kafka.

The figures themselves (including the slow tail-reader and group-join probes) belong to
`make bench` (scripts/probe_brokers.py); these tests only show that each probe measures what it
says, by getting the documented answer from each broker.
"""

from __future__ import annotations

import pytest

from streaming.broker_probe import auto_create, create_after_write, reported_end, write_to_missing_topic

pytestmark = pytest.mark.integration


def test_tansu_acknowledges_a_missing_topic_then_reuses_its_offsets_and_auto_creates(tansu_broker):
    bootstrap = tansu_broker.bootstrap
    missing = write_to_missing_topic(bootstrap, "probe-missing", records=10)
    assert missing.numbers["error_code"] == 0 and not missing.numbers["listed"]
    created = create_after_write(bootstrap, "probe-missing", earlier=10, writes=5)
    assert created.numbers["old_readable"] == 10  # the batch acknowledged before the topic existed
    assert created.numbers["end_offset_after_create"] < 10
    assert created.numbers["distinct_offsets"] < created.numbers["readable"]  # offsets used twice
    assert auto_create(bootstrap, "probe-auto").numbers["partitions"] == 4
    end = reported_end(bootstrap).numbers
    assert end["stored"] == end["written"] and end["end"] < end["written"]


def test_apache_kafka_refuses_a_missing_topic_and_creates_nothing_on_its_own(broker):
    bootstrap = broker.bootstrap
    missing = write_to_missing_topic(bootstrap, "probe-missing", records=10)
    assert missing.numbers["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    created = create_after_write(bootstrap, "probe-missing", earlier=10, writes=5)
    assert created.numbers["old_readable"] == 0 and created.numbers["accepted_offsets"] == [0, 1, 2, 3, 4]
    assert auto_create(bootstrap, "probe-auto", wait_s=1.0).numbers["partitions"] == 0
    end = reported_end(bootstrap).numbers
    assert end["end"] == end["stored"] == end["written"]
