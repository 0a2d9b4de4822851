"""The run's metrics over OTLP/HTTP (``--otlp URL``), from the driver: every second, the
merged aggregate of every actor on every host (``run.log.total()``) becomes one
``MetricsData`` that the OpenTelemetry SDK's ``OTLPMetricExporter`` sends; the run's end
sends it once more, synchronously, and says whether it arrived.

The data points are built from the aggregate, cumulative since the run's start, not
recorded request by request through SDK instruments (too costly at 10k req/s). Histogram
buckets are the HdrHistograms' exact counts at ``BUCKETS_US`` (analysis/prometheus.py):
a bucket's count is exact at its edge, not an estimate.

``http.client.request.duration`` (s, from the intended send time) follows the HTTP client
semantic conventions with what the run knows of every request: ``http.request.method``,
``server.address``, ``server.port`` and ``url.scheme`` when all its requests share one,
``network.protocol.version`` when ``http`` fixes one version. Windows count the status,
the HTTP version, the server address and the error each apart, not jointly, so the
duration histogram carries no ``http.response.status_code`` nor ``error.type``: each
dimension is a counter of its own (``rafale.responses`` by status code,
``rafale.failures`` by error type, ``rafale.responses.by_version``,
``rafale.responses.by_address`` by the peer's IP, ``network.peer.address``). rafale's own
metrics are under ``rafale.*``; the resource says ``service.name`` "rafale",
``rafale.run_id`` and ``rafale.run`` (the label, else the id).

An export that fails never stops the run: failures are counted and the first is warned
about once (the SDK's own log lines are kept off the terminal).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import pyarrow.compute as pc
from hdrh.histogram import HdrHistogram
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from rafale.actors.contract import CONNECT, LATENCY_CORRECTED, LATENCY_RAW, SEND_LAG, TTFB
from rafale.analysis.aggregate import Aggregate
from rafale.analysis.prometheus import BUCKETS_US, buckets
from rafale.analysis.redact import redact_url
from rafale.cluster.spec import RunSpec

__all__ = ["EXPORT_EVERY_S", "EXPORT_TIMEOUT_S", "OtlpExporter", "metrics_data",
           "request_attributes"]

EXPORT_EVERY_S = 1.0
EXPORT_TIMEOUT_S = 2.0  # each export, the last one too (the SDK retries within it)
BOUNDS_S: tuple[float, ...] = tuple(edge / 1e6 for edge in BUCKETS_US)
_SCOPE = InstrumentationScope("rafale")
_CUMULATIVE = AggregationTemporality.CUMULATIVE
# The HTTP version --http fixes (auto lets the server choose: not one version).
_FIXED_VERSION = {"1.1": "1.1", "2": "2", "2c": "2", "3": "3"}
# Live views: the merged aggregate and the driver's gauges (target_rate_per_s, in_flight,
# actors), as Run._live_totals gives them.
Build = Callable[[], tuple[Aggregate, Mapping[str, Any]]]


def request_attributes(spec: RunSpec) -> dict[str, str | int]:
    """The semantic-convention attributes every request of the run shares."""
    out: dict[str, str | int] = {}
    methods = {spec.method}
    if spec.feed is not None:  # a feed's rows may each have their own method
        column = pc.fill_null(spec.feed.table.column("method"), spec.method)
        methods = {str(m) for m in pc.unique(column).to_pylist()}
    if len(methods) == 1:
        out["http.request.method"] = methods.pop()
    host_ports = spec.host_ports()
    if len(host_ports) == 1:
        out["server.address"], out["server.port"] = host_ports[0]
    schemes = {urlsplit(url).scheme.lower() for url in spec.urls}
    if len(schemes) == 1:
        out["url.scheme"] = schemes.pop()
    if spec.http in _FIXED_VERSION:
        out["network.protocol.version"] = _FIXED_VERSION[spec.http]
    return out


def metrics_data(total: Aggregate, resource: Mapping[str, str],
                 request: Mapping[str, str | int], *, start_ns: int, now_ns: int,
                 target_rate_per_s: float | None, in_flight: int,
                 actors: Mapping[str, int]) -> MetricsData:
    """Every metric of the run so far from its merged aggregate, cumulative since
    ``start_ns``; ``request``: the attributes of the duration histogram."""
    c = total.counters

    def point(value: float, attributes: Mapping[str, Any] | None = None) -> NumberDataPoint:
        return NumberDataPoint(dict(attributes or {}), start_ns, now_ns, value)

    def counter(name: str, doc: str, points: list[NumberDataPoint],
                unit: str = "{request}") -> Metric:
        return Metric(name, doc, unit, Sum(points, _CUMULATIVE, is_monotonic=True))

    def gauge(name: str, doc: str, points: list[NumberDataPoint], unit: str) -> Metric:
        return Metric(name, doc, unit, Gauge(points))

    def histogram(name: str, doc: str, field: str,
                  attributes: Mapping[str, Any] | None = None) -> Metric:
        data = _histogram_point(total.hists[field], dict(attributes or {}), start_ns, now_ns)
        return Metric(name, doc, "s", Histogram([data], _CUMULATIVE))

    def by(dimension: str, attribute: str, number: bool = False) -> list[NumberDataPoint]:
        return [point(int(count), {attribute: int(key) if number and key.isdigit() else key})
                for key, count in sorted(total.maps.get(dimension, {}).items())]

    stall = c.get("late_stall", 0)
    other = max(c["late"] - stall - c["late_cap"] - c["late_connect"] - c["late_loop"], 0)
    metrics = [
        histogram("http.client.request.duration", "Duration of HTTP client requests, from "
                  "their intended send time (coordinated omission corrected).",
                  LATENCY_CORRECTED, request),
        histogram("rafale.request.duration.raw", "Request duration from the actual send time.",
                  LATENCY_RAW),
        histogram("rafale.send_lag", "Actual send time minus intended send time.", SEND_LAG),
        histogram("rafale.connect.duration", "Time to open a new connection (TCP "
                  "connect plus the TLS or QUIC handshake).", CONNECT),
        histogram("rafale.time_to_first_byte", "Time from the actual send to the response's "
                  "first byte.", TTFB),
        counter("rafale.requests", "Requests that ended, by outcome.",
                [point(int(c["completed"]), {"outcome": "completed"}),
                 point(int(c["failed"]), {"outcome": "failed"})]),
        counter("rafale.intended", "Requests the schedule made due.",
                [point(int(c["intended"]))]),
        counter("rafale.sent", "Requests sent.", [point(int(c["sent"]))]),
        counter("rafale.late", "Requests sent later than late_after, by cause.",
                [point(int(stall), {"cause": "stall"}),
                 point(int(c["late_cap"]), {"cause": "cap"}),
                 point(int(c["late_connect"]), {"cause": "connect"}),
                 point(int(c["late_loop"]), {"cause": "loop"}),
                 point(int(other), {"cause": "other"})]),
        counter("rafale.dropped", "Requests due and never sent (the schedule ended first).",
                [point(int(c["dropped"]))]),
        counter("rafale.retries", "Feed rows sent again.", [point(int(c["retries"]))]),
        counter("rafale.responses", "Answered requests, by HTTP status.",
                by("status", "http.response.status_code", number=True)),
        counter("rafale.failures", "Failed requests, by kind and curl code.",
                by("error", "error.type")),
        counter("rafale.responses.by_version", "Answered requests, by HTTP version.",
                by("version", "network.protocol.version")),
        counter("rafale.responses.by_address", "Answered requests, by server IP address.",
                by("address", "network.peer.address")),
        gauge("rafale.in_flight", "Requests open at the end of each actor's latest window.",
              [point(int(in_flight))], "{request}"),
        gauge("rafale.actors", "Sender actors, by state.",
              [point(int(n), {"state": state}) for state, n in sorted(actors.items())],
              "{actor}"),
    ]
    if target_rate_per_s is not None:
        metrics.append(gauge("rafale.target_rate", "The schedule's rate now.",
                             [point(float(target_rate_per_s))], "{request}/s"))
    scope = ScopeMetrics(_SCOPE, metrics, schema_url="")
    return MetricsData([ResourceMetrics(Resource(dict(resource)), [scope], schema_url="")])


def _histogram_point(hist: HdrHistogram, attributes: dict[str, Any], start_ns: int,
                     now_ns: int) -> HistogramDataPoint:
    """Per-bucket counts (the last: above the last bound) from the cumulative buckets."""
    pairs, sum_s = buckets(hist)
    cumulative = [int(count) for _, count in pairs]
    counts = [now - before for before, now in zip([0, *cumulative], cumulative, strict=False)]
    count = cumulative[-1]
    low_s = hist.get_min_value() / 1e6 if count else 0.0
    high_s = hist.get_max_value() / 1e6 if count else 0.0
    return HistogramDataPoint(attributes, start_ns, now_ns, count=count, sum=sum_s,
                              bucket_counts=counts, explicit_bounds=BOUNDS_S, min=low_s,
                              max=high_s)


class _Quiet(logging.Filter):
    """Keeps the SDK exporter's log lines off the terminal (the run warns once itself) and
    the first of the current export as its failure's reason."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = ""

    def filter(self, record: logging.LogRecord) -> bool:
        errors = [a for a in record.args or () if isinstance(a, BaseException)]
        self.reason = self.reason or (str(_innermost(errors[0])) if errors
                                      else record.getMessage())[:300]
        return False


def _innermost(error: BaseException) -> BaseException:
    """The error under the wrappers (requests' ConnectionError, urllib3's MaxRetryError),
    which names the cause (e.g. "[Errno 111] Connection refused")."""
    while True:
        inner = getattr(error, "reason", None)
        if not isinstance(inner, BaseException) and error.args:
            inner = error.args[0]
        if not isinstance(inner, BaseException) or inner is error:
            return error
        error = inner


class OtlpExporter:
    """Exports the run's metrics to ``spec.otlp`` every ``EXPORT_EVERY_S`` in a daemon
    thread (:meth:`start`), and once more at the end (:meth:`final`)."""

    def __init__(self, spec: RunSpec, run_id: str, start_at_s: float,
                 interval_s: float = EXPORT_EVERY_S) -> None:
        assert spec.otlp is not None
        self.url = spec.otlp
        self.interval_s = interval_s
        self.resource = {"service.name": "rafale", "rafale.run_id": run_id,
                         "rafale.run": spec.label or run_id}
        self.request = request_attributes(spec)
        self.start_ns = int(start_at_s * 1e9)
        self.exports = 0
        self.failures = 0
        self.final_ok: bool | None = None  # once final: whether the final values arrived
        self.outcome = ""  # and said in words
        self._exporter = OTLPMetricExporter(endpoint=self.url, timeout=EXPORT_TIMEOUT_S)
        self._quiet = _Quiet()
        self._logger = logging.getLogger(OTLPMetricExporter.__module__)
        self._logger.addFilter(self._quiet)
        self._lock = threading.Lock()  # one export at a time, the final one last
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._build: Build = lambda: (Aggregate(), {})

    def __repr__(self) -> str:
        return (f"OtlpExporter({redact_url(self.url)!r}, {self.exports} exports, "
                f"{self.failures} failed)")

    def start(self, build: Build, done: Callable[[], bool]) -> OtlpExporter:
        """Export ``build()`` every ``interval_s`` until :meth:`final` (or ``done()``)."""
        self._build = build

        def loop() -> None:
            while not self._stop.wait(self.interval_s) and not done():
                self.export()

        self._thread = threading.Thread(target=loop, daemon=True, name="rafale-otlp")
        self._thread.start()
        return self

    def export(self) -> bool:
        """One export of the values now; False (counted, warned about once) if it failed."""
        with self._lock:
            self._quiet.reason = ""
            try:
                total, gauges = self._build()
                data = metrics_data(total, self.resource, self.request,
                                    start_ns=self.start_ns, now_ns=time.time_ns(), **gauges)
                ok = self._exporter.export(data) == MetricExportResult.SUCCESS
            except Exception as exc:  # noqa: BLE001 - an export never breaks the run
                self._quiet.reason, ok = repr(exc), False
            if ok:
                self.exports += 1
                return True
            self.failures += 1
            if self.failures == 1 and not self._stop.is_set():
                warnings.warn(f"otlp: export to {redact_url(self.url)} failed "
                              f"({self.reason}); the run goes on, failures are counted",
                              RuntimeWarning, stacklevel=2)
            return False

    @property
    def reason(self) -> str:
        """Why the latest export failed, as the SDK said it."""
        return self._quiet.reason or "no reason given"

    def final(self) -> tuple[str, ...]:
        """Stop the thread, export the final values once, synchronously; a warning to show
        if they did not arrive (else none). Once only."""
        if self.final_ok is not None:
            return ()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(EXPORT_TIMEOUT_S + 1.0)
        self.final_ok = ok = self.export()
        url = redact_url(self.url)
        self.outcome = (f"final values exported to {url} ({self.exports} exports, "
                        f"{self.failures} failed)" if ok else
                        f"otlp: final export to {url} failed: {self.reason}")
        self._exporter.shutdown()
        self._logger.removeFilter(self._quiet)
        return () if ok else (self.outcome,)

    def status(self) -> dict[str, Any]:
        """For the summary: where, how many exports went and failed, how the last one did."""
        return {"url": redact_url(self.url), "exports": self.exports,
                "failures": self.failures, "final": self.outcome or None}
