"""The driver's Prometheus endpoint: the address guard, exact buckets from the
HdrHistograms, the families (per-tag ones too), and the endpoint's life after the run. A
real run scraped by a real Prometheus is in test_prometheus.py."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from prometheus_client.parser import text_string_to_metric_families

from rafale.actors.contract import new_histogram
from rafale.analysis.aggregate import Aggregate
from rafale.analysis.prometheus import BUCKETS_US, buckets, families
from rafale.cluster.metrics import MetricsEndpoint, parse_metrics_address
from rafale.cluster.spec import RunSpec
from tests.analysis.windows_factory import RunShape, make_run

URL = "https://rafale.test/"


def scrape(url: str) -> dict[str, Any]:
    """{(sample name, frozen labels): value} of one scrape of ``url``."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and set(labels.items()) <= set(ls))


@pytest.mark.parametrize(("given", "allow", "expected"), [
    ("9464", False, "127.0.0.1:9464"), (":0", False, "127.0.0.1:0"),
    ("127.0.0.2:9464", False, "127.0.0.2:9464"), ("[::1]:9464", False, "[::1]:9464"),
    ("0.0.0.0:9464", True, "0.0.0.0:9464"),
])
def test_metrics_addresses(given: str, allow: bool, expected: str) -> None:
    assert parse_metrics_address(given, allow) == expected
    assert RunSpec.parse(URL, metrics=given, metrics_allow_remote=allow).metrics == expected


@pytest.mark.parametrize(("given", "fragment"), [
    ("0.0.0.0:9464", "not a loopback address; serving run metrics beyond this machine needs "
                     "metrics_allow_remote"),
    ("localhost:9464", "is not ADDR:PORT"), ("127.0.0.1:99999", "port 99999 is not 0..65535"),
    ("127.0.0.1:http", "is not ADDR:PORT"),
])
def test_bad_metrics_addresses_are_refused_before_anything_starts(given: str,
                                                                  fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        RunSpec.parse(URL, metrics=given)


def test_bucket_counts_are_exact_at_their_edges() -> None:
    """A value at an edge counts in it; the next representable value does not."""
    hist: HdrHistogram = new_histogram()
    for edge in BUCKETS_US[:4]:
        hist.record_value(edge)
        hist.record_value(hist.get_highest_equivalent_value(edge) + 1)
    pairs, sum_s = buckets(hist)
    cumulative = dict(pairs)
    for i, edge in enumerate(BUCKETS_US[:4]):
        assert cumulative[f"{edge / 1e6:g}"] == 2 * i + 1, (edge, pairs)
    assert cumulative["+Inf"] == 8 and sum_s > 0
    assert [count for _, count in pairs] == sorted(count for _, count in pairs)


def test_families_from_an_aggregate_count_what_its_windows_hold() -> None:
    windows, _ = make_run(RunShape(actors=3, seconds=4))
    total = Aggregate()
    for window in windows:
        total.add_window(window)
    # Tagged failures too (the factory's tags only complete): 3 refused connections of t1.
    total.add_window({"actor": 0, "second": 4, "failed": 3, "error": {"connect:7": 3},
                      "tag": {"t1|connect:7": 3}})
    from prometheus_client import CollectorRegistry, generate_latest

    class Fixed:
        def collect(self) -> list[Any]:
            return families(total, {"run_id": "r1", "run": "demo"}, target_rate_per_s=300.0,
                            in_flight=7, actors={"alive": 3, "lost": 0},
                            info={"http": "auto", "dns": "system", "ended": "running"})

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())  # type: ignore[arg-type]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    counters = total.counters
    assert value(samples, "rafale_requests_total", outcome="completed") == counters["completed"]
    assert value(samples, "rafale_requests_total", outcome="failed") == counters["failed"]
    assert value(samples, "rafale_sent_total") == counters["sent"]
    assert value(samples, "rafale_late_total") == counters["late"]
    for cause in ("stall", "cap", "loop"):
        assert value(samples, "rafale_late_total", cause=cause) == counters[f"late_{cause}"]
    assert value(samples, "rafale_responses_total") == sum(total.maps["status"].values())
    assert value(samples, "rafale_request_duration_seconds_count") == \
        total.hists["latency_corrected_us"].get_total_count()
    assert value(samples, "rafale_connect_seconds_count") == counters["new_connections"] > 0
    assert value(samples, "rafale_time_to_first_byte_seconds_count") == counters["completed"]
    assert value(samples, "rafale_target_rate", run_id="r1", run="demo") == 300.0
    # Feed tags: every "tag|status" and "tag|kind:code" count, and each tag's histogram.
    by_tag = {(ls["tag"], ls["outcome"], ls["result"]): v for (n, frozen), v in samples.items()
              if n == "rafale_requests_by_tag_total" for ls in [dict(frozen)]}
    assert by_tag == {(tag, "completed" if result.isdigit() else "failed", result): count
                      for key, count in total.maps["tag"].items()
                      for tag, _, result in [key.partition("|")]}
    assert {k[0] for k in by_tag} == {"t0", "t1"} and by_tag["t1", "failed", "connect:7"] == 3
    assert sum(v for (_, outcome, _), v in by_tag.items() if outcome == "completed") == \
        sum(total.maps["status"].values())
    for tag, hist in total.tag_hists.items():
        assert value(samples, "rafale_request_duration_by_tag_seconds_count", tag=tag) == \
            hist.get_total_count() > 0
        pairs, _ = buckets(hist)
        for le, count in pairs:
            assert value(samples, "rafale_request_duration_by_tag_seconds_bucket", tag=tag,
                         le=le) == count
    assert value(samples, "rafale_actors", state="alive") == 3


def test_the_endpoint_waits_for_one_scrape_of_the_final_values() -> None:
    endpoint = MetricsEndpoint("127.0.0.1:0")
    assert scrape(endpoint.url) == {}  # nothing to say before the run exists
    endpoint.final()
    scrape(endpoint.url)
    assert endpoint.close().startswith("final values scraped from http://127.0.0.1:")
    with pytest.raises(OSError):
        scrape(endpoint.url)
    unread = MetricsEndpoint("127.0.0.1:0")
    began = time.monotonic()
    assert unread.close(wait_s=0.3) == f"final values not scraped from {unread.url} within 0.3 s"
    assert 0.3 <= time.monotonic() - began < 2.0
    # A scrape that began building before the run ended holds values of before its end.
    racing = MetricsEndpoint("127.0.0.1:0")
    racing.attach(lambda: (racing.final(wait_s=0.3), [])[1])
    assert scrape(racing.url) == {}
    assert racing.close() == f"final values not scraped from {racing.url} within 0.3 s"


def test_a_shared_endpoint_serves_every_run_attached_and_outlives_them() -> None:
    """Two runs on one endpoint: one family per name holding both runs' series; a run's
    final() or stop() leaves a shared endpoint up, its owner's close() ends it."""
    windows, _ = make_run(RunShape(actors=2, seconds=2))
    total = Aggregate()
    for window in windows:
        total.add_window(window)

    def run_families(run: str) -> Any:
        return lambda: families(total, {"run_id": run, "run": run}, target_rate_per_s=None,
                                in_flight=0, actors={"alive": 2}, info={"ended": "completed"})

    endpoint = MetricsEndpoint("127.0.0.1:0", shared=True)
    endpoint.attach(run_families("a"))
    endpoint.attach(run_families("b"))
    endpoint.final()
    endpoint.stop()
    page = scrape(endpoint.url)  # still up
    completed = total.counters["completed"]
    for run in ("a", "b"):
        assert value(page, "rafale_requests_total", run=run, outcome="completed") == completed
    closed: list[str] = []
    closer = threading.Thread(target=lambda: closed.append(endpoint.close(wait_s=10)))
    closer.start()
    while closer.is_alive():  # the owner's close() waits for one scrape more
        with contextlib.suppress(OSError):
            scrape(endpoint.url)
        time.sleep(0.05)
    closer.join()
    assert closed[0].startswith("final values scraped"), closed
    with pytest.raises(OSError):
        scrape(endpoint.url)


def test_a_busy_port_is_refused_naming_it() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=f"metrics '127.0.0.1:{port}' cannot be served"):
            MetricsEndpoint(f"127.0.0.1:{port}")
