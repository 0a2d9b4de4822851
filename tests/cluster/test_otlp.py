"""OTLP/HTTP export (--otlp URL): the URL check, the metrics built from an aggregate
(counts and exact buckets), an export that fails, and a real 2-actor run exported to a
receiver in the test whose last export agrees with its summary and the access log."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics.export import MetricsData
from typer.testing import CliRunner

from rafale.actors.contract import LATENCY_CORRECTED
from rafale.analysis.aggregate import Aggregate
from rafale.analysis.prometheus import BUCKETS_US
from rafale.cluster import cli, placement
from rafale.cluster.otlp import OtlpExporter, metrics_data, request_attributes
from rafale.cluster.run import start
from rafale.cluster.spec import RunSpec
from rafale.cluster.target import Target
from tests.analysis.windows_factory import RunShape, make_run

URL = "https://rafale.test/"
GAUGES: dict[str, Any] = {"target_rate_per_s": 300.0, "in_flight": 7,
                          "actors": {"alive": 3, "lost": 0}}


class Receiver:
    """An OTLP/HTTP metrics receiver on loopback: every POST to /v1/metrics decoded, in
    order; answers ``status`` (200: an empty ExportMetricsServiceResponse)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[ExportMetricsServiceRequest] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/metrics":
                    receiver.requests.append(ExportMetricsServiceRequest.FromString(body))
                answer = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(receiver.status if self.path == "/v1/metrics" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def metric(request: ExportMetricsServiceRequest | MetricsData, name: str) -> Any:
    """The metric ``name`` of an export (decoded protobuf or SDK data)."""
    found = [m for rm in request.resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics if m.name == name]
    assert len(found) == 1, name
    return found[0]


def points(data: Any) -> dict[Any, float]:
    """{the point's single attribute value (None without): value} of an SDK metric."""
    out = {}
    for p in data.data.data_points:
        values = list(p.attributes.values())
        out[values[0] if values else None] = p.value
    return out


# ----- the URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/metrics"),
    ("https://collector.example/", "https://collector.example/v1/metrics"),
    ("http://[::1]:4318/custom/metrics", "http://[::1]:4318/custom/metrics"),
])
def test_otlp_urls_get_the_metrics_path_when_they_have_none(given: str, expected: str) -> None:
    assert RunSpec.parse(URL, otlp=given).otlp == expected


@pytest.mark.parametrize("given", ["ftp://x", "not a url", "http://:4318", "http://h:99999",
                                   "127.0.0.1:4318"])
def test_bad_otlp_urls_are_refused_naming_them(given: str) -> None:
    with pytest.raises(ValueError, match=f"otlp '{given}' is not an http\\(s\\) URL; expected "
                                         "e.g. http://127.0.0.1:4318"):
        RunSpec.parse(URL, otlp=given)


def test_the_cli_refuses_a_bad_otlp_url_before_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ray(*_: Any, **__: Any) -> None:
        raise AssertionError("Ray must not start for bad input")

    monkeypatch.setattr(placement, "connect", no_ray)
    result = CliRunner().invoke(cli.app, ["run", URL, "--otlp", "ftp://x"])
    assert result.exit_code == cli.EXIT_BAD_INPUT, result.output
    assert "otlp 'ftp://x' is not an http(s) URL" in result.output


# ----- what is sent ----------------------------------------------------------------------


@pytest.mark.parametrize(("options", "expected"), [
    ({"urls": "https://a.test:8443/x", "http": "2", "method": "post"},
     {"http.request.method": "POST", "server.address": "a.test", "server.port": 8443,
      "url.scheme": "https", "network.protocol.version": "2"}),
    ({"urls": ["http://a.test/", "http://b.test/"], "http": "auto"},  # two hosts, no version
     {"http.request.method": "GET", "url.scheme": "http"}),
    ({"urls": ["http://a.test/", "https://a.test/"], "http": "1.1"},  # two schemes, ports
     {"http.request.method": "GET", "network.protocol.version": "1.1"}),
    ({"feed": [{"url": "https://a.test/", "method": "PUT"}, {"url": "https://a.test/"}],
      "http": "3"},  # the feed's rows: PUT and GET (the default)
     {"server.address": "a.test", "server.port": 443, "url.scheme": "https",
      "network.protocol.version": "3"}),
])
def test_the_duration_carries_only_what_every_request_shares(options: dict[str, Any],
                                                             expected: dict[str, Any]) -> None:
    assert request_attributes(RunSpec.parse(**options)) == expected


def test_the_metrics_count_what_the_aggregate_holds_with_exact_buckets() -> None:
    windows, samples = make_run(RunShape(actors=3, seconds=4))
    total = Aggregate()
    for window in windows:
        total.add_window(window)
    request = {"http.request.method": "GET", "server.address": "rafale.test"}
    data = metrics_data(total, {"service.name": "rafale", "rafale.run_id": "r1"}, request,
                        start_ns=1, now_ns=2, **GAUGES)
    c = total.counters
    assert points(metric(data, "rafale.requests")) == {"completed": c["completed"],
                                                       "failed": c["failed"]}
    assert c["completed"] > 0 and c["failed"] > 0
    for name in ("intended", "sent", "dropped", "retries"):
        assert points(metric(data, f"rafale.{name}")) == {None: c[name]}, name
    late = points(metric(data, "rafale.late"))
    assert sum(late.values()) == c["late"] > 0
    assert late["stall"] == c["late_stall"] and late["cap"] == c["late_cap"]
    assert points(metric(data, "rafale.responses")) == {200: c["completed"]}
    assert points(metric(data, "rafale.failures")) == total.maps["error"]
    assert points(metric(data, "rafale.responses.by_address")) == total.maps["address"]
    assert points(metric(data, "rafale.responses.by_version")) == total.maps["version"]
    assert points(metric(data, "rafale.target_rate")) == {None: 300.0}
    assert points(metric(data, "rafale.actors")) == {"alive": 3, "lost": 0}
    for name, count in (("rafale.connect.duration", c["new_connections"]),
                        ("rafale.time_to_first_byte", c["completed"])):
        (timed,) = metric(data, name).data.data_points
        assert timed.count == count > 0, name
    duration = metric(data, "http.client.request.duration")
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert point.attributes == request and point.start_time_unix_nano == 1
    assert point.count == c["completed"] == len(samples.corrected_us)
    # Each bucket holds exactly the samples in (previous edge, edge]; the last, the rest.
    edges = [0, *BUCKETS_US, float("inf")]
    assert list(point.bucket_counts) == [
        sum(low < v <= high for v in samples.corrected_us)
        for low, high in zip(edges, edges[1:], strict=False)]
    assert list(point.explicit_bounds) == [edge / 1e6 for edge in BUCKETS_US]
    assert data.resource_metrics[0].resource.attributes["rafale.run_id"] == "r1"


def test_a_value_at_a_bucket_edge_counts_in_it_and_the_next_one_does_not() -> None:
    total = Aggregate()
    hist = total.hists[LATENCY_CORRECTED]
    for edge in BUCKETS_US[:4]:
        hist.record_value(edge)
        hist.record_value(hist.get_highest_equivalent_value(edge) + 1)
    data = metrics_data(total, {}, {}, start_ns=0, now_ns=1, **GAUGES)
    (point,) = metric(data, "http.client.request.duration").data.data_points
    assert list(point.bucket_counts[:5]) == [1, 2, 2, 2, 1] and point.count == 8
    assert point.min == BUCKETS_US[0] / 1e6 and point.max > BUCKETS_US[3] / 1e6


def test_a_collector_that_refuses_is_warned_about_once_and_said_at_the_end() -> None:
    refusing = Receiver(status=400)
    spec = RunSpec.parse(URL, otlp=refusing.url)
    total = Aggregate()
    exporter = OtlpExporter(spec, "r1", time.time(), interval_s=0.1)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exporter.start(lambda: (total, GAUGES), lambda: False)
            deadline = time.monotonic() + 10
            while exporter.failures < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            said = exporter.final()
    finally:
        refusing.close()
    assert exporter.failures >= 3 and exporter.exports == 0
    assert len(refusing.requests) == exporter.failures  # each tried, none retried (400)
    shown = [str(w.message) for w in caught]
    assert len(shown) == 1 and shown[0].startswith(f"otlp: export to {spec.otlp} failed ("), shown
    assert said == (f"otlp: final export to {spec.otlp} failed: {exporter.reason}",)
    assert "400" in said[0] and exporter.status()["final"] == said[0]
    assert exporter.final() == ()  # once only


@pytest.mark.slow
def test_a_run_exported_over_otlp_agrees_with_its_summary_and_the_access_log(
        target: Target, local_ray: None, receiver: Receiver) -> None:
    """A 2-actor run exported every second: an export arrived while it went, the last one
    (at the end) equals the summary and what the server logged. Four seconds, so that the
    exports at 2 s and 3 s fall after the first sealed window and before the last even when
    the machine is loaded (a 2 s run could see only 0 and then everything)."""
    before = target.count_access_log()
    run = start(urls=target.https_url, resolve=target.resolve, cacert=str(target.ca_file),
                rate_per_s=100, duration_s=4, actors=2, otlp=receiver.url, label="otlp-test")
    result = run.wait(timeout=60)
    summary = result.summary
    completed = summary["requests"]["completed"]
    assert completed == 400 == target.count_access_log() - before
    assert summary["otlp"]["final"].startswith(f"final values exported to {receiver.url}")
    assert summary["otlp"]["exports"] == len(receiver.requests) >= 3
    last = receiver.requests[-1]
    (point,) = metric(last, "http.client.request.duration").histogram.data_points
    attributes = {a.key: a.value for a in point.attributes}
    assert attributes["http.request.method"].string_value == "GET"
    assert attributes["server.address"].string_value == target.host
    assert attributes["server.port"].int_value == target.https_port
    assert attributes["url.scheme"].string_value == "https"
    assert "network.protocol.version" not in attributes  # --http auto: not one version
    assert point.count == completed and sum(point.bucket_counts) == completed
    requests = {p.attributes[0].value.string_value: p.as_int
                for p in metric(last, "rafale.requests").sum.data_points}
    assert requests["completed"] == completed
    resource = {a.key: a.value.string_value for a in last.resource_metrics[0].resource.attributes}
    assert resource == {"service.name": "rafale", "rafale.run_id": run.run_id,
                        "rafale.run": "otlp-test"}
    # At least one export arrived before the end, with part of the run.
    seen = [metric(r, "http.client.request.duration").histogram.data_points[0].count
            for r in receiver.requests]
    assert seen == sorted(seen) and any(0 < count < completed for count in seen), seen
