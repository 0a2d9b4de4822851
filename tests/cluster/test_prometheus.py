"""A real Prometheus scrapes a 2-actor run every second: after the run, PromQL over its TSDB
agrees with the run's summary and the target's access log, it holds the final values, and
every panel query of the committed Grafana dashboard returns data from it.

Prometheus is Debian's package, installed on demand (apt-get, as the benchmark clients
are); where it cannot be installed the test is skipped, except under CI=true where it
fails. The dashboard's shape (datasource variable, ``$run``, ``$__rate_interval``, metric
names the driver serves) is checked without it.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import rafale.cluster
from benchmarks.h2load import ensure_tool
from rafale.analysis.aggregate import Aggregate
from rafale.analysis.prometheus import BUCKETS_US, families
from rafale.cluster.run import start
from rafale.cluster.target import Target
from tests.analysis.windows_factory import RunShape, make_run
from tests.promserver import Prometheus
from tests.rayhead import free_port

DASHBOARD = Path(rafale.cluster.__file__).parent / "configs" / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# What Grafana puts in place of its variables (the rate window: 4 scrape intervals).
GRAFANA_VARIABLES = {"$__rate_interval": "4s", "${__rate_interval}": "4s",
                     "$__interval": "1s", "${__interval}": "1s"}
_SELECTOR = re.compile(r"\b(rafale_\w+)(\{[^}]*\})?")


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title + refId, expr) of every target of every panel."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(f"{panel['title']} [{t['refId']}]", t["expr"])
            for panel in panels for t in panel["targets"]]


def for_prometheus(expr: str, run_regex: str) -> str:
    """``expr`` with Grafana's variables replaced as Grafana does before it asks."""
    for variable, value in {**GRAFANA_VARIABLES, "${run}": run_regex,
                            "$run": run_regex}.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def served_names() -> set[str]:
    """Every sample name the driver's families give for a run with tags and failures."""
    windows, _ = make_run(RunShape(actors=2, seconds=3))
    total = Aggregate()
    for window in windows:
        total.add_window(window)
    out = families(total, {"run_id": "r", "run": "r"}, target_rate_per_s=1.0, in_flight=0,
                   actors={"alive": 2}, info={"ended": "running"})
    return {sample.name for family in out for sample in family.samples}


def test_the_dashboard_is_importable_as_it_is() -> None:
    """One datasource variable used by every panel and query, a run variable from
    rafale_run_info, every series selected by run, every rate over $__rate_interval, and
    only metric names the driver serves."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["run"]["query"] == "label_values(rafale_run_info, run)"
    assert variables["run"]["datasource"] == DATASOURCE
    assert dashboard["id"] is None and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["datasource"] == DATASOURCE for p in panels)
    assert all(t["datasource"] == DATASOURCE for p in panels for t in p["targets"])
    names = served_names()
    for where, expr in dashboard_queries():
        assert expr.count("rate(") == expr.count("[$__rate_interval])"), where
        for name, matchers in _SELECTOR.findall(expr):
            assert name in names, (where, name)
            assert 'run=~"$run"' in matchers, (where, expr)
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("target", "corrected", "raw", "send lag", "failures by kind", "status",
                  "address", "http version", "tag"):
        assert topic in titles, topic


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Debian's prometheus scraping 127.0.0.1:<a free port> every second, for a run to
    serve there. Session-scoped, so it starts before Ray does (it first scrapes ~6 s after
    it starts)."""
    try:
        binary = ensure_tool("prometheus", "prometheus")
    except (RuntimeError, OSError) as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and prometheus cannot be installed: {error}")
        pytest.skip(f"prometheus cannot be installed: {error}")
    workdir = tmp_path_factory.mktemp("prometheus")
    with Prometheus(binary, workdir, f"127.0.0.1:{free_port()}") as running:
        yield running


def one(prom: Prometheus, expr: str, at_s: float) -> float:
    """The one value of an instant query."""
    result = prom.query(expr, at_s)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def raw_samples(prom: Prometheus, selector: str, count: float) -> list[tuple[float, float]]:
    """(time, value) of every sample of ``selector`` (one series) once the last is
    ``count`` (the final scrape is stored a moment after it was read), else as they are."""
    deadline = time.monotonic() + 5
    while True:
        result = prom.query(f"{selector}[5m]", time.time())
        samples = [(float(t), float(v)) for t, v in result[0]["values"]] if result else []
        if (samples and samples[-1][1] == count) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


@pytest.mark.slow
def test_prometheus_scraping_a_run_agrees_with_its_files_and_serves_every_panel(
        prometheus: Prometheus, target: Target, local_ray: None) -> None:
    """A 2-actor run of 3 s at 200 req/s over a feed of two tags (one with 404s and
    refused connections), scraped every second: PromQL at the last scrape equals the
    summary and the access log, and every dashboard query has data over the run."""
    label = f"prom{secrets.token_hex(4)}"
    sel = f'run="{label}"'
    # Placing the actors takes over a second: start once the first scrape is near.
    prometheus.wait_scraping(within_s=2.5)
    with socket.socket() as refused:  # bound, never listening: connecting to it is refused
        refused.bind(("127.0.0.1", 0))
        feed = [{"url": target.https_url, "tag": "home"},
                {"url": target.url("/status/404"), "tag": "missing"},
                {"url": f"http://127.0.0.1:{refused.getsockname()[1]}/", "tag": "missing"}]
        before = target.count_access_log()
        run = start(feed=feed, resolve=target.resolve, cacert=str(target.ca_file),
                    rate_per_s=200, duration_s=3, actors=2, label=label,
                    metrics=prometheus.scrape_address)
        assert run.metrics is not None
        result = run.wait(timeout=60)
        outcome = run.metrics.close()
    assert outcome.startswith("final values scraped"), outcome
    summary = result.summary
    requests = summary["requests"]
    completed, failed = requests["completed"], requests["failed"]
    assert requests["sent"] == completed + failed == 600 and failed > 0
    assert target.wait_access_log(before + completed) - before == completed

    # The final values were scraped: Prometheus's last samples are the summary's counts.
    sent = raw_samples(prometheus, f"rafale_sent_total{{{sel}}}", requests["sent"])
    assert sent[-1][1] == requests["sent"], sent
    seen = [v for _, v in sent]  # it rose while the run went, and never went down
    assert seen == sorted(seen) and any(0 < v < requests["sent"] for v in seen), seen
    first_s, last_s = sent[0][0], sent[-1][0]
    assert one(prometheus, f'sum(rafale_requests_total{{{sel}, outcome="completed"}})',
               last_s) == completed
    assert one(prometheus, f'sum(rafale_requests_total{{{sel}, outcome="failed"}})',
               last_s) == failed
    assert one(prometheus, f"sum(rafale_request_duration_seconds_count{{{sel}}})",
               last_s) == completed
    assert one(prometheus, f'sum(rafale_actors{{{sel}, state="alive"}})', last_s) == 2
    info = prometheus.query(f"rafale_run_info{{{sel}}}", last_s)
    assert [i["metric"]["ended"] for i in info] == ["completed"], info
    by_tag = {(r["metric"]["tag"], r["metric"]["outcome"]): float(r["value"][1])
              for r in prometheus.query(
                  f"sum by (tag, outcome) (rafale_requests_by_tag_total{{{sel}}})", last_s)}
    tags = summary["tags"]
    assert by_tag == {(tag, outcome): count for tag, entry in tags.items()
                      for outcome, count in (("completed", entry["finished"] - entry["failed"]),
                                             ("failed", entry["failed"])) if count}
    durations = {r["metric"]["tag"]: float(r["value"][1]) for r in prometheus.query(
        f"sum by (tag) (rafale_request_duration_by_tag_seconds_count{{{sel}}})", last_s)}
    assert durations == {tag: entry["finished"] - entry["failed"]
                         for tag, entry in tags.items()}

    # The p99 from the buckets is the summary's p99 within one bucket.
    p99_s = one(prometheus, "histogram_quantile(0.99, sum by (le) "
                f"(rafale_request_duration_seconds_bucket{{{sel}}}))", last_s)
    p99_us = summary["latency_corrected_us"]["p99"]
    edges_s = [edge / 1e6 for edge in BUCKETS_US]
    upper = min(e for e in edges_s if e >= p99_s - 1e-9)
    lower = max((e for e in edges_s if e < upper), default=0.0)
    assert lower * 1e6 <= p99_us <= upper * 1e6 + 1, (p99_us, p99_s, upper)

    # The dashboard's run variable lists the run; every panel query returns data over it.
    runs = prometheus.api("label/run/values", **{"match[]": "rafale_run_info"})
    assert label in runs, runs
    # Evaluated a step past the last sample too: on a busy machine the run's first windows
    # reach the driver late, a series can have only the last two scrapes, and a 1 s grid
    # from the first sample to the last can miss the one instant that sees both (CI).
    empty = []
    for where, expr in dashboard_queries():
        series = prometheus.query_range(for_prometheus(expr, label), first_s, last_s + 1.0)
        if not any(not math.isnan(float(v)) for s in series for _, v in s["values"]):
            empty.append((where, expr))
    assert not empty, empty
