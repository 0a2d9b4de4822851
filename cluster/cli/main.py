"""The ``rafale`` command line: parse options into a RunSpec and call the library.

Ray, pycurl and the driver are imported inside the commands that need them, so
``rafale report`` and ``rafale --help`` load neither ray nor pycurl.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from rafale.cluster.cli.common import (  # noqa: F401 - EXIT_* re-exported for callers
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    exit_code,
    fail,
    show_warnings,
    sigterm_as_interrupt,
)
from rafale.cluster.spec import RunSpec
from rafale.cluster.webpush.cli import app as webpush_app


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

app = typer.Typer(
    name="rafale", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Send HTTP requests at a controlled, near-constant rate from one libcurl sender per "
         "CPU, placed by Ray on one or many machines.",
    epilog="From Python or Jupyter: `import rafale`; `rafale.start(urls=..., rate_per_s=...)` "
           "takes the same options as `rafale run` (RunSpec field names, units in the names) "
           "and `rafale.load(DIR)` reads saved results.",
)

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
    help="The in-flight cap ramps up by this many per event-loop turn, so that connections "
         "open gradually.", rich_help_panel=CONNECTIONS)]
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
    help="Ray cluster to run on (HOST:PORT or ray://HOST:PORT). Default: start a local Ray "
         "on loopback.", rich_help_panel=CLUSTER)]
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

# Every `rafale run` option and the RunSpec field it sets (its value goes to RunSpec.parse
# as given). tests/cluster/test_options.py proves that every field has exactly one, that
# their defaults agree and that durations and rates carry their unit in the metavar.
RUN_FIELDS: dict[str, str] = {
    "urls": "urls", "feed": "feed", "feed_format": "feed_format", "feed_mode": "feed_mode",
    "only": "only", "retry": "retry", "resend_unknown": "resend_unknown",
    "threshold": "thresholds", "abort_on_fail": "abort_on_fail", "rate": "rate_per_s",
    "ramp": "ramp_s", "stages": "stages", "lease": "lease_s", "gap": "gap",
    "duration": "duration_s", "http": "http", "dns": "dns", "resolve": "resolve",
    "nameserver": "nameserver", "actors": "actors", "reserve_driver_cpu": "reserve_driver_cpu",
    "max_in_flight": "max_in_flight", "in_flight_step": "in_flight_step",
    "max_connections": "max_connections", "streams": "streams_per_connection",
    "cacert": "cacert", "insecure": "insecure", "timeout": "timeout_s",
    "late_after": "late_after_s", "header": "headers", "method": "method", "data": "body",
    "address": "address", "out": "out", "label": "label", "show_query": "show_query",
    "keep_answer": "keep_answers",
}
RUN_ONLY = ("charts", "progress", "html")  # what `rafale run` does with the result


def spec_options(params: dict[str, Any]) -> dict[str, Any]:
    """RunSpec.parse options from a command's parameters: those named in RUN_FIELDS and
    given (None and empty lists take the field's default); ``--data @FILE`` read."""
    options = {RUN_FIELDS[name]: value for name, value in params.items()
               if name in RUN_FIELDS and value not in (None, [])}
    if "body" in options:
        options["body"] = _body(options["body"])
    return options


# ----- commands ----------------------------------------------------------------------------


@app.command()
def run(
    ctx: typer.Context,
    urls: FeedUrls = None, method: Method = "GET", header: Header = None, data: Data = None,
    rate: Rate = None, ramp: Ramp = None, stages: Stages = None, duration: Duration = None,
    http: Http = "auto", dns: Dns = "system", resolve: Resolve = None,
    nameserver: Nameserver = None, cacert: Cacert = None, insecure: Insecure = False,
    max_in_flight: MaxInFlight = 100, in_flight_step: InFlightStep = 50,
    max_connections: MaxConnections = None, streams: Streams = 100, timeout: Timeout = "10s",
    late_after: LateAfter = "1ms",
    feed: FeedOption = None, feed_format: FeedFormat = None, feed_mode: FeedMode = "cycle",
    only: Only = None, retry: Retry = 0, resend_unknown: ResendUnknown = False,
    threshold: Thresholds = None, abort_on_fail: AbortOnFail = False,
    actors: Annotated[str, typer.Option(
        "--actors", metavar="auto|N", rich_help_panel=CLUSTER,
        help="Number of sender actors: auto = one per CPU on every node.")] = "auto",
    address: Address = None, reserve_driver_cpu: ReserveCpu = False, lease: Lease = "3s",
    gap: Gap = "catch-up",
    out: Annotated[str | None, typer.Option(
        "--out", metavar="DIR", show_default=False, rich_help_panel=OUTPUT,
        help="Save results here (windows.parquet, counts.parquet, meta.json, summary.json, "
             "charts); checkpointed every few seconds.")] = None,
    label: Annotated[str | None, typer.Option(
        "--label", metavar="TEXT", show_default=False, rich_help_panel=OUTPUT,
        help="A name for this run in comparisons.")] = None,
    show_query: Annotated[bool, typer.Option(
        "--show-query", rich_help_panel=OUTPUT,
        help="Keep URL query values in meta.json and output (by default ?token=abc is "
             "shown and saved as ?token=<redacted>).")] = False,
    keep_answer: KeepAnswer = None,
    charts: Annotated[bool, typer.Option(
        "--charts/--no-charts", rich_help_panel=OUTPUT,
        help="Write the charts into --out at the end.")] = True,
    progress: Annotated[bool, typer.Option(
        "--progress/--quiet", rich_help_panel=OUTPUT,
        help="Print a progress line every second (stderr).")] = True,
    html: Html = False,
) -> None:
    """Send requests at --rate for --duration (or a feed's rows) and print a summary."""
    show_warnings()
    try:
        spec = RunSpec.parse(**spec_options(ctx.params))
    except ValueError as exc:
        fail(str(exc))
    sigterm_as_interrupt()
    from rafale.cluster.progress import ProgressPrinter
    from rafale.cluster.run import start

    printer = ProgressPrinter() if progress else None
    try:
        running = start(spec=spec, on_progress=printer)
    except ValueError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted while starting; no request was sent", EXIT_INTERRUPTED)
    except RuntimeError as exc:
        fail(str(exc), EXIT_FAILED)
    sigterm_as_interrupt()  # again: ray.init installs its own SIGTERM handler
    from rafale.analysis.report import render, summary_text  # matplotlib: after the start

    result = running.wait()
    if printer is not None:
        printer.close()
    typer.echo(summary_text(result), nl=False)
    if running.save_error is not None:
        fail(running.save_error, EXIT_FAILED)
    if spec.out:
        typer.echo(f"saved to {spec.out}")
        if charts:
            for path in render(spec.out):
                typer.echo(f"wrote {path}")
        if html:
            from rafale.analysis.html import write_html

            typer.echo(f"wrote {write_html(spec.out)}")
    elif html:
        typer.echo("rafale: warning: --html needs --out (the report is written there)",
                   err=True)
    raise typer.Exit(exit_code(str(result.meta.get("ended", "")),
                               bool(result.summary.get("thresholds_passed", True))))


@app.command()
def matrix(
    ctx: typer.Context,
    urls: Urls,
    out: Annotated[str, typer.Option(
        "--out", metavar="DIR", help="One subdirectory per run, and the comparison.")],
    http: Annotated[str, typer.Option(
        "--http", metavar="LIST", help="HTTP versions to compare, e.g. 1.1,2,3 (2c for "
        "http:// URLs). Combinations that do not fit a URL's scheme are skipped.")] = "1.1,2,3",
    dns: Annotated[str, typer.Option(
        "--dns", metavar="LIST", help="DNS modes to compare: system,pinned.")] = "system,pinned",
    actors: Annotated[str, typer.Option(
        "--actors", metavar="LIST", help="Actor counts to compare, e.g. 1,auto.")] = "auto",
    rate: Rate = None, ramp: Ramp = None, duration: Duration = None, resolve: Resolve = None,
    nameserver: Nameserver = None, max_in_flight: MaxInFlight = 100,
    in_flight_step: InFlightStep = 50, max_connections: MaxConnections = None,
    streams: Streams = 100, cacert: Cacert = None, insecure: Insecure = False,
    timeout: Timeout = "10s", late_after: LateAfter = "1ms", header: Header = None,
    method: Method = "GET", data: Data = None,
    address: Address = None, reserve_driver_cpu: ReserveCpu = False, html: Html = False,
) -> None:
    """Run every HTTP version × DNS mode (× actor count) back to back and compare them."""
    from rafale.cluster.matrix import plan, run_matrix, split_list

    show_warnings()
    try:
        # Every RunSpec option but those the matrix varies (given as lists here).
        base = spec_options({name: value for name, value in ctx.params.items()
                             if name not in ("urls", "http", "dns", "actors", "out")})
        cases, notes = plan(base, urls, split_list(http, "http"), split_list(dns, "dns"),
                            split_list(actors, "actors"), out)
    except ValueError as exc:
        fail(str(exc))
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    from rafale.analysis import compare
    from rafale.cluster import placement

    try:
        placement.connect(address)
    except ValueError as exc:
        fail(str(exc))
    sigterm_as_interrupt()  # after ray.init, which installs its own SIGTERM handler

    def started(case: Any) -> None:
        typer.echo(f"run {case.label} ...", err=True)

    try:
        results, written = run_matrix(cases, out, on_start=started)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(compare.to_terminal(compare.compare(results)), nl=False)
    typer.echo(f"full table: {Path(out) / compare.COMPARISON_MD}")
    if html:
        from rafale.analysis.html import write_html

        written.append(write_html(out))
    for path in written:
        typer.echo(f"wrote {path}")
    ended = [str(r.meta.get("ended", "")) for r in results]
    raise typer.Exit(max((exit_code(e) for e in ended), default=0))


@app.command()
def report(directory: Annotated[str, typer.Argument(
        help="A result directory (from --out) or a matrix directory.")],
        html: Html = False) -> None:
    """Re-render the charts and print the summary of saved results (no Ray needed)."""
    from rafale.analysis.report import render, text

    try:
        written = render(directory)
        if html:
            from rafale.analysis.html import write_html

            written.append(write_html(directory))
    except FileNotFoundError as exc:
        fail(str(exc), EXIT_FAILED)
    typer.echo(text(directory), nl=False)
    for path in written:
        typer.echo(f"wrote {path}")


@app.command()
def target(
    access_log: Annotated[bool, typer.Option(
        "--access-log", help="Write a JSON access log line per request.")] = False,
    push: Annotated[bool, typer.Option(
        "--push", help="Also act as a push service on /push/<id>: 201, 410 for --gone ids, "
                       "429 once for a share of ids, 413 above 4,096 bytes, 400 without "
                       "aes128gcm, TTL or a vapid Authorization.")] = False,
    gone: Annotated[str | None, typer.Option(
        "--gone", metavar="FILE", show_default=False,
        help="With --push: ids answered 410 Gone (one per line).")] = None,
    throttle_share: Annotated[float, typer.Option(
        "--throttle-share", metavar="0..1",
        help="With --push: share of ids answered 429 (Retry-After) the first time.")] = 0.0,
    port: Annotated[int, typer.Option(
        "--port", metavar="PORT", help="The https port (h1, h2, h3), kept across starts; 0: "
                                       "a free one.")] = 0,
    http_port: Annotated[int, typer.Option(
        "--http-port", metavar="PORT", help="The http port (h1, h2c); 0: a free one.")] = 0,
) -> None:
    """Run the embedded target (Caddy on loopback: h1, h2, h3 over TLS; h1, h2c) until Ctrl-C."""
    from rafale.cluster.target import PushOptions, main_foreground

    try:
        ids = (tuple(line.strip() for line in Path(gone).read_text().splitlines()
                     if line.strip()) if gone else ())
        options = PushOptions(ids, throttle_share=throttle_share) if push else None
    except (OSError, ValueError) as exc:
        fail(str(exc))
    try:
        code = main_foreground(access_log=access_log, push=options, https_port=port,
                               http_port=http_port)
    except (ValueError, RuntimeError) as exc:  # a bad or busy port: named, no traceback
        fail(str(exc), EXIT_FAILED if isinstance(exc, RuntimeError) else EXIT_BAD_INPUT)
    raise typer.Exit(code)


@app.command()
def doctor(
    address: Address = None, http: Http = "auto", max_in_flight: MaxInFlight = 100,
    max_connections: MaxConnections = None, streams: Streams = 100,
) -> None:
    """Check every node: open-files limit against the planned connections, the niceness Ray
    gives its workers, ephemeral ports, somaxconn and tcp_tw_reuse; print findings with
    advice."""
    from rafale.cluster.spec import normalize_http, planned_connections

    try:
        planned = planned_connections(normalize_http(http), max_in_flight, streams,
                                      max_connections)
        doctor_main = importlib.import_module("rafale.cluster.doctor").main
        code = doctor_main(planned_connections=planned, address=address)
    except ValueError as exc:
        fail(str(exc))
    raise typer.Exit(code)


app.add_typer(webpush_app, name="webpush")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    try:
        app(args=argv, prog_name="rafale", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0

