"""Every option the commands share: its annotation (flag, metavar, help, --help panel),
and which RunSpec field each `rafale run` option sets (``RUN_FIELDS``: one definition of
every option, held against RunSpec by tests/cluster/test_options.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core


def _show_types_plainly() -> None:
    """In --help, flags show as flags and arguments by their metavar: typer 0.29 prints
    ``<bool>`` beside every flag (``--help`` included) and ``<list[str]>`` beside URL."""
    for cls in (typer.core.TyperOption, typer.core.TyperArgument):
        shown = cls.display_type_rich

        def display(self: Any, ctx: Any, shown: Any = shown) -> str | None:
            if getattr(self, "is_flag", False) or isinstance(self, typer.core.TyperArgument):
                return None
            return self.metavar if self.metavar is not None else shown(self, ctx)

        cls.display_type_rich = display  # type: ignore[method-assign]


_show_types_plainly()


# ----- shared options --------------------------------------------------------------------

# The --help panels, in the order `rafale run --help` shows them (every RunSpec field's
# option is in exactly one: tests/cluster/test_options.py).
TARGET, RATE, PROTOCOL, CONNECTIONS = ("Target and request", "Rate and schedule",
                                       "Protocol and DNS", "Connections")
FEED, VERDICTS, CLUSTER, OUTPUT = "Feed", "Verdicts", "Cluster", "Output"
PANELS = (TARGET, RATE, PROTOCOL, CONNECTIONS, FEED, VERDICTS, CLUSTER, OUTPUT)

Urls = Annotated[list[str], typer.Argument(
    help="Target URL(s), http:// or https://. Several URLs are used round-robin.",
    show_default=False, metavar="URL")]
FeedUrls = Annotated[list[str] | None, typer.Argument(
    help="Target URL(s), http:// or https://. Several URLs are used round-robin. Leave out "
         "with --feed.", show_default=False, metavar="URL")]
FeedOption = Annotated[str | None, typer.Option(
    "--feed", metavar="FILE", show_default=False,
    help="A table of requests, one per row (JSON Lines, CSV or Parquet): url (required), "
         "method, headers (list of 'Name: value' or a JSON object), body, body_b64 or "
         "body_file, tag. Request k of the schedule sends row k. Missing columns take "
         "--method, -H and --data.", rich_help_panel=FEED)]
FeedFormat = Annotated[str | None, typer.Option(
    "--feed-format", metavar="jsonl|csv|parquet", show_default=False,
    help="The feed's format, when its extension does not say.", rich_help_panel=FEED)]
FeedMode = Annotated[str, typer.Option(
    "--feed-mode", metavar="cycle|once",
    help="cycle: request k sends row k mod rows, for --duration; once: every row is sent "
         "exactly once at --rate (or --stages) and the run ends when the feed is done "
         "(no --duration needed); each row's outcome goes to outcomes.parquet in --out.",
    rich_help_panel=FEED)]
Only = Annotated[str | None, typer.Option(
    "--only", metavar="OUTCOMES", show_default=False,
    help="With --feed RUN/outcomes.parquet: re-send only the rows of the original feed with "
         "these outcomes, e.g. failed,unknown (of ok, failed, unknown, unsent).",
    rich_help_panel=FEED)]
Retry = Annotated[int, typer.Option(
    "--retry", metavar="N",
    help="Retry a feed row up to N times after a connect/timeout/recv error or a 429/503 "
         "answer, after its Retry-After (else a capped exponential backoff from 0.5 s). A "
         "retry takes a slot of the schedule: the rate holds.", rich_help_panel=FEED)]
Thresholds = Annotated[list[str] | None, typer.Option(
    "--threshold", metavar="EXPR", show_default=False,
    help="A pass/fail check over the merged results of every actor and host, e.g. "
         "'p99<250ms', 'error_rate<1%', 'p99\\[tag=api]\\[10s]<400ms' (every rolling 10 s "
         "window), 'rate>=99%', 'share\\[address=IP]>=40%', 'send_lag.p99<5ms'; ':abort' "
         "stops the run when it fails (':abort-after=5s' waits that long). Repeatable. Exit "
         "99 when any fails.", rich_help_panel=VERDICTS)]
AbortOnFail = Annotated[bool, typer.Option(
    "--abort-on-fail", help="Every --threshold stops the run when it fails.",
    rich_help_panel=VERDICTS)]
ResendUnknown = Annotated[bool, typer.Option(
    "--resend-unknown",
    help="Rows that a lost actor may have sent (outcome unknown) are sent again by the "
         "survivors: at-least-once instead of at-most-once.", rich_help_panel=FEED)]
Lease = Annotated[str, typer.Option(
    "--lease", metavar="DURATION",
    help="An actor not drained by the driver for this long stops sending (its host lost "
         "the driver), and the driver, not hearing from it as long, gives its stripe to "
         "the others: never both send it. At least 2s.", rich_help_panel=CLUSTER)]
Gap = Annotated[str, typer.Option(
    "--gap", metavar="catch-up|skip",
    help="When an actor is lost, the requests of its stripe due since its last drained "
         "second: sent late by the others (catch-up: the run's total follows the schedule) "
         "or not sent (skip: no burst; the summary counts them).", rich_help_panel=CLUSTER)]
Aggregation = Annotated[str, typer.Option(
    "--aggregation", metavar="auto|flat|tree",
    help="Who polls the senders each second: the driver (flat), or an aggregator per node "
         "that merges its node's windows for the driver (tree: the driver's work grows with "
         "nodes, not actors). auto: tree from 2 nodes with 8 actors on one.",
    rich_help_panel=CLUSTER)]
Rate = Annotated[str | None, typer.Option(
    "--rate", metavar="REQ/S", show_default=False,
    help="Target rate in requests per second, over all actors together. Leave out for the "
         "closed model: as fast as --max-in-flight allows.", rich_help_panel=RATE)]
Ramp = Annotated[str | None, typer.Option(
    "--ramp", metavar="DURATION", show_default=False,
    help="Ramp the rate linearly from 0 to --rate over this time (e.g. 5s). Default: none.",
    rich_help_panel=RATE)]
Stages = Annotated[str | None, typer.Option(
    "--stages", metavar="D:R,...", show_default=False,
    help="k6-like stages instead of --rate: DURATION:RATE pairs, each a linear ramp from the "
         "previous rate (from 0), e.g. 10s:100,20s:500.", rich_help_panel=RATE)]
Duration = Annotated[str | None, typer.Option(
    "--duration", metavar="DURATION", show_default=False,
    help="Run length: 10, 10s, 500ms, 2m or 1h. Default: 10s, or the total of --stages.",
    rich_help_panel=RATE)]
Http = Annotated[str, typer.Option(
    "--http", metavar="VERSION",
    help="HTTP version: auto (https://: HTTP/2 by ALPN, HTTP/1.1 if the server chooses it; "
         "http://: HTTP/1.1); 1.1; 2 (h2 over TLS only, https://: a server without h2 is an "
         "error); 2c (cleartext h2 with prior knowledge, http:// only); 3 (QUIC, https:// "
         "only).", rich_help_panel=PROTOCOL)]
Dns = Annotated[str, typer.Option(
    "--dns", metavar="MODE",
    help="system: libcurl resolves and keeps one address; pinned: rafale resolves every "
         "A/AAAA address and pins connections round-robin over all of them.",
    rich_help_panel=PROTOCOL)]
Resolve = Annotated[list[str] | None, typer.Option(
    "--resolve", metavar="HOST:PORT:ADDR[,ADDR]", show_default=False,
    help="Static name mapping like curl's --resolve; wins over DNS. Repeatable.",
    rich_help_panel=PROTOCOL)]
Nameserver = Annotated[str | None, typer.Option(
    "--nameserver", metavar="IP[:PORT]", show_default=False,
    help="Resolve target names through this DNS server instead of the system resolver.",
    rich_help_panel=PROTOCOL)]
MaxInFlight = Annotated[int, typer.Option(
    "--max-in-flight", metavar="N", help="Most requests open at once, per actor.",
    rich_help_panel=CONNECTIONS)]
InFlightStep = Annotated[int, typer.Option(
    "--in-flight-step", metavar="N",
    help="The in-flight cap ramps up by this many per event-loop turn (a ramp per turn, "
         "not per second: --connect-rate sets how many connections open a second).",
    rich_help_panel=CONNECTIONS)]
ConnectRate = Annotated[str | None, typer.Option(
    "--connect-rate", metavar="CONN/S", show_default=False,
    help="Open at most this many new connections a second, over all actors (striped: each "
         "opens its share), starting with one each. A request that needs a connection the "
         "budget does not allow yet waits, and is counted late with its own cause ('connect "
         "budget'); once the connections are open, reuse is not limited. Thousands of "
         "connects at once overflow a server's SYN and accept queues and wait for SYN "
         "retransmits (1 s, then 3 s): e.g. --connect-rate 400. Default: no budget (the "
         "in-flight cap still ramps by --in-flight-step per event-loop turn).",
    rich_help_panel=CONNECTIONS)]
MaxConnections = Annotated[int | None, typer.Option(
    "--max-connections", metavar="N", show_default=False,
    help="Most connections per actor (libcurl MAX_TOTAL_CONNECTIONS). Default: no limit.",
    rich_help_panel=CONNECTIONS)]
Streams = Annotated[int, typer.Option(
    "--streams", metavar="N", help="Most concurrent HTTP/2 or HTTP/3 streams per connection.",
    rich_help_panel=CONNECTIONS)]
Cacert = Annotated[str | None, typer.Option(
    "--cacert", metavar="FILE", show_default=False,
    help="PEM CA certificate(s) to verify the target's TLS certificate with.",
    rich_help_panel=PROTOCOL)]
Insecure = Annotated[bool, typer.Option(
    "--insecure", help="Do not verify TLS certificates (recorded in meta.json).",
    rich_help_panel=PROTOCOL)]
Timeout = Annotated[str, typer.Option(
    "--timeout", metavar="DURATION", help="Per-request timeout (e.g. 10s).",
    rich_help_panel=CONNECTIONS)]
LateAfter = Annotated[str, typer.Option(
    "--late-after", metavar="DURATION",
    help="A request sent more than this after its intended time counts as late (e.g. 1ms, "
         "5ms); recorded in meta.json.", rich_help_panel=CONNECTIONS)]
StallAfter = Annotated[str, typer.Option(
    "--stall-after", metavar="DURATION",
    help="A second in which the sender's loop did not turn for longer than this (or its "
         "thread waited for a CPU for over 20 % of it) is flagged sender-stalled: its "
         "results measure rafale, not the target (e.g. 50ms).", rich_help_panel=CONNECTIONS)]
Header = Annotated[list[str] | None, typer.Option(
    "--header", "-H", metavar="'NAME: VALUE'", show_default=False,
    help="Request header; repeatable. Values are never printed or saved.", rich_help_panel=TARGET)]
Method = Annotated[str, typer.Option("--method", "-X", metavar="METHOD", help="HTTP method.",
                                     rich_help_panel=TARGET)]
Data = Annotated[str | None, typer.Option(
    "--data", "-d", metavar="TEXT|@FILE", show_default=False,
    help="Request body, or @FILE to read it from a file.", rich_help_panel=TARGET)]
Address = Annotated[str | None, typer.Option(
    "--address", metavar="HOST:PORT", show_default=False,
    help="Ray cluster to run on (HOST:PORT or ray://HOST:PORT; 'local' starts one). Default: "
         "$RAY_ADDRESS when set (as ray.init reads it), else start a local Ray on loopback.",
    rich_help_panel=CLUSTER)]
Html = Annotated[bool, typer.Option(
    "--html", help="Also write report.html: one self-contained page (summary, thresholds, "
                   "every chart inline, the spec) to share or attach to a CI job.",
    rich_help_panel=OUTPUT)]
ReserveCpu = Annotated[bool, typer.Option(
    "--reserve-driver-cpu", help="Keep one CPU of the head node free for the driver.",
    rich_help_panel=CLUSTER)]


def _body(data: str | None) -> bytes:
    if data is None:
        return b""
    if data.startswith("@"):
        try:
            return Path(data[1:]).expanduser().read_bytes()
        except OSError as exc:
            raise ValueError(f"data file {data[1:]!r} cannot be read: {exc.strerror}") from None
    return data.encode()


KeepAnswer = Annotated[list[int] | None, typer.Option(
    "--keep-answer", metavar="STATUS", show_default=False,
    help="Keep the first answer body of this HTTP status (e.g. 503) and show it in the "
         "summary (redacted); repeatable.", rich_help_panel=OUTPUT)]

Actors = Annotated[str, typer.Option(
    "--actors", metavar="auto|N", rich_help_panel=CLUSTER,
    help="Number of sender actors: auto = one per CPU on every node.")]
Out = Annotated[str | None, typer.Option(
    "--out", metavar="DIR", show_default=False, rich_help_panel=OUTPUT,
    help="Save results here (windows.parquet, counts.parquet, meta.json, summary.json, "
         "charts); checkpointed every few seconds.")]
Repeat = Annotated[int | None, typer.Option(
    "--repeat", metavar="N", show_default=False, rich_help_panel=OUTPUT,
    help="Run the same spec N times, one after another, into --out DIR/1 .. DIR/N, listed "
         "in DIR/repeat.json (rewritten after each run); rafale compare reads such a DIR "
         "as its runs. Ctrl-C stops the series; the exit code is the last non-zero one of "
         "the runs. Default: one run, saved in --out itself.")]
Label = Annotated[str | None, typer.Option(
    "--label", metavar="TEXT", show_default=False, rich_help_panel=OUTPUT,
    help="A name for this run in comparisons.")]
ShowQuery = Annotated[bool, typer.Option(
    "--show-query", rich_help_panel=OUTPUT,
    help="Keep URL query values in meta.json and output (by default ?token=abc is shown and "
         "saved as ?token=<redacted>).")]
Charts = Annotated[bool, typer.Option(
    "--charts/--no-charts", rich_help_panel=OUTPUT,
    help="Write the charts into --out at the end.")]
Progress = Annotated[bool, typer.Option(
    "--progress/--quiet", rich_help_panel=OUTPUT,
    help="Print a progress line every second (stderr).")]
Metrics = Annotated[str | None, typer.Option(
    "--metrics", metavar="ADDR:PORT", show_default=False, rich_help_panel=OUTPUT,
    help="Serve the run's merged metrics (every actor, every host) at "
         "http://ADDR:PORT/metrics in the Prometheus format while it runs, and after it "
         "until one scrape has read the final values (15 s at most). Loopback unless "
         "--metrics-allow-remote; port 0: any free one.")]
MetricsAllowRemote = Annotated[bool, typer.Option(
    "--metrics-allow-remote", rich_help_panel=OUTPUT,
    help="Let --metrics bind an address other than loopback.")]
Otlp = Annotated[str | None, typer.Option(
    "--otlp", metavar="URL", show_default=False, rich_help_panel=OUTPUT,
    help="Export the run's merged metrics every second over OTLP/HTTP (protobuf) to an "
         "OpenTelemetry collector, and once more at the end: http.client.request.duration "
         "and rafale.* counters. A URL without a path gets /v1/metrics: "
         "http://127.0.0.1:4318 sends to http://127.0.0.1:4318/v1/metrics. Headers (e.g. "
         "auth) and a CA file: the standard OTEL_EXPORTER_OTLP_HEADERS and "
         "OTEL_EXPORTER_OTLP_CERTIFICATE variables.")]

# Every `rafale run` option and the RunSpec field it sets (its value goes to RunSpec.parse
# as given). tests/cluster/test_options.py proves that every field has exactly one, that
# their defaults agree and that durations and rates carry their unit in the metavar.
RUN_FIELDS: dict[str, str] = {
    "urls": "urls", "feed": "feed", "feed_format": "feed_format", "feed_mode": "feed_mode",
    "only": "only", "retry": "retry", "resend_unknown": "resend_unknown",
    "threshold": "thresholds", "abort_on_fail": "abort_on_fail", "rate": "rate_per_s",
    "ramp": "ramp_s", "stages": "stages", "lease": "lease_s", "gap": "gap",
    "aggregation": "aggregation",
    "duration": "duration_s", "http": "http", "dns": "dns", "resolve": "resolve",
    "nameserver": "nameserver", "actors": "actors", "reserve_driver_cpu": "reserve_driver_cpu",
    "max_in_flight": "max_in_flight", "in_flight_step": "in_flight_step",
    "max_connections": "max_connections", "streams": "streams_per_connection",
    "connect_rate": "connect_rate_per_s",
    "cacert": "cacert", "insecure": "insecure", "timeout": "timeout_s",
    "late_after": "late_after_s", "stall_after": "stall_after_s", "header": "headers",
    "method": "method", "data": "body",
    "address": "address", "out": "out", "label": "label", "show_query": "show_query",
    "keep_answer": "keep_answers", "metrics": "metrics",
    "metrics_allow_remote": "metrics_allow_remote", "otlp": "otlp",
}
RUN_ONLY = ("repeat", "charts", "progress", "html")  # how often, what to do with the result


def repeat_outs(repeat: int, out: str | None) -> list[str]:
    """Where each run of ``rafale run --repeat N --out DIR`` saves: DIR/1 .. DIR/N;
    ValueError naming a bad --repeat (before Ray starts)."""
    from rafale.cluster.series import repeat_outs as outs

    return outs(repeat, out, name="--repeat", out_name="--out DIR")


def spec_options(params: dict[str, Any]) -> dict[str, Any]:
    """RunSpec.parse options from a command's parameters: those named in RUN_FIELDS and
    given (None and empty lists take the field's default); ``--data @FILE`` read."""
    options = {RUN_FIELDS[name]: value for name, value in params.items()
               if name in RUN_FIELDS and value not in (None, [])}
    if "body" in options:
        options["body"] = _body(options["body"])
    return options
