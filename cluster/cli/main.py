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

from rafale.analysis.redact import redact_url
from rafale.cluster.cli.common import (  # noqa: F401 - EXIT_* re-exported for callers
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    exit_code,
    fail,
    shared_metrics,
    show_warnings,
    sigterm_as_interrupt,
)
from rafale.cluster.cli.compare import compare_command
from rafale.cluster.cli.launch import app as cluster_app
from rafale.cluster.cli.options import (
    AbortOnFail,
    Actors,
    Address,
    Aggregation,
    Cacert,
    Charts,
    ConnectRate,
    Data,
    Dns,
    Duration,
    FeedFormat,
    FeedMode,
    FeedOption,
    FeedUrls,
    Gap,
    Header,
    Html,
    Http,
    InFlightStep,
    Insecure,
    KeepAnswer,
    Label,
    LateAfter,
    Lease,
    MaxConnections,
    MaxInFlight,
    Method,
    Metrics,
    MetricsAllowRemote,
    Nameserver,
    Only,
    Otlp,
    Out,
    Progress,
    Ramp,
    Rate,
    Repeat,
    ResendUnknown,
    ReserveCpu,
    Resolve,
    Retry,
    ShowQuery,
    Stages,
    StallAfter,
    Streams,
    Thresholds,
    Timeout,
    Urls,
    repeat_outs,
    spec_options,
)
from rafale.cluster.spec import RunSpec
from rafale.cluster.warm import WarmSenders
from rafale.cluster.webpush.cli import app as webpush_app

app = typer.Typer(
    name="rafale", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Send HTTP requests at a controlled, near-constant rate from one libcurl sender per "
         "CPU, placed by Ray on one or many machines.",
    epilog="From Python or Jupyter: `import rafale`; `rafale.start(urls=..., rate_per_s=...)` "
           "takes the same options as `rafale run` (RunSpec field names, units in the names) "
           "and `rafale.load(DIR)` reads saved results.",
)

# ----- commands ----------------------------------------------------------------------------


@app.command()
def run(
    ctx: typer.Context,
    urls: FeedUrls = None, method: Method = "GET", header: Header = None, data: Data = None,
    rate: Rate = None, ramp: Ramp = None, stages: Stages = None, duration: Duration = None,
    http: Http = "auto", dns: Dns = "system", resolve: Resolve = None,
    nameserver: Nameserver = None, cacert: Cacert = None, insecure: Insecure = False,
    max_in_flight: MaxInFlight = 100, in_flight_step: InFlightStep = 50,
    max_connections: MaxConnections = None, streams: Streams = 100,
    connect_rate: ConnectRate = None, timeout: Timeout = "10s",
    late_after: LateAfter = "1ms", stall_after: StallAfter = "50ms",
    feed: FeedOption = None, feed_format: FeedFormat = None, feed_mode: FeedMode = "cycle",
    only: Only = None, retry: Retry = 0, resend_unknown: ResendUnknown = False,
    threshold: Thresholds = None, abort_on_fail: AbortOnFail = False,
    actors: Actors = "auto", address: Address = None, reserve_driver_cpu: ReserveCpu = False,
    lease: Lease = "3s", gap: Gap = "catch-up", aggregation: Aggregation = "auto",
    out: Out = None, repeat: Repeat = None, label: Label = None,
    show_query: ShowQuery = False, keep_answer: KeepAnswer = None, charts: Charts = True,
    progress: Progress = True, html: Html = False,
    metrics: Metrics = None, metrics_allow_remote: MetricsAllowRemote = False,
    otlp: Otlp = None,
) -> None:
    """Send requests at --rate for --duration (or a feed's rows) and print a summary;
    with --repeat N, N times in a row into --out DIR/1 .. DIR/N."""
    show_warnings()
    try:
        spec = RunSpec.parse(**spec_options(ctx.params))
        specs = ([spec] if repeat is None
                 else [spec.replace(out=o) for o in repeat_outs(repeat, spec.out)])
    except ValueError as exc:
        fail(str(exc))
    sigterm_as_interrupt()
    series = spec.out if repeat is not None else None  # the directory of DIR/1 .. DIR/N
    # A series serves one /metrics for all its runs (each its run_id), as the matrix does.
    endpoint = shared_metrics(spec.metrics) if series is not None else None
    code = 0
    # A series reuses its senders from one run to the next (cluster/warm.py).
    with WarmSenders() as warm:
        for number, one in enumerate(specs, 1):
            if series is not None:
                typer.echo(f"run {number}/{len(specs)} into {one.out} ...", err=True)
            ended = _run_once(one, charts=charts, progress=progress, html=html,
                              metrics_endpoint=endpoint, warm=warm if series else None)
            if series is not None:
                from rafale.analysis.store import write_repeat

                ran = [str(s.out) for s in specs[:number]]
                typer.echo(f"wrote {write_repeat(series, ran)}")
            code = ended or code  # the last non-zero exit code
            if ended == EXIT_INTERRUPTED:
                break
    if endpoint is not None:
        typer.echo(f"metrics: {endpoint.close()}")
    raise typer.Exit(code)


def _run_once(spec: RunSpec, *, charts: bool, progress: bool, html: bool,
              metrics_endpoint: Any = None, warm: WarmSenders | None = None) -> int:
    """One run of ``rafale run``: start it, print its progress and summary, write its
    charts; return its exit code (bad input or a failed start or save exit here)."""
    from rafale.cluster.progress import ProgressPrinter
    from rafale.cluster.run import start

    printer = ProgressPrinter() if progress else None
    try:
        running = start(spec=spec, on_progress=printer, metrics_endpoint=metrics_endpoint,
                        warm=warm)
    except ValueError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted while starting; no request was sent", EXIT_INTERRUPTED)
    except RuntimeError as exc:
        fail(str(exc), EXIT_FAILED)
    sigterm_as_interrupt()  # again: ray.init installs its own SIGTERM handler
    from rafale.analysis.report import render, summary_text  # matplotlib: after the start

    own_metrics = running.metrics if metrics_endpoint is None else None  # a series': shared
    if own_metrics is not None:
        typer.echo(f"metrics: {own_metrics.url} (Prometheus format)", err=True)
    if running.otlp is not None:
        typer.echo(f"otlp: exporting to {redact_url(running.otlp.url)} every second", err=True)
    result = running.wait()
    if printer is not None:
        printer.close()
    typer.echo(summary_text(result), nl=False)
    if own_metrics is not None:
        typer.echo(f"  metrics: {own_metrics.close()}")
    if running.otlp is not None and running.otlp.final_ok:  # else a warning says it
        typer.echo(f"  otlp: {running.otlp.outcome}")
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
    return exit_code(str(result.meta.get("ended", "")),
                     bool(result.summary.get("thresholds_passed", True)))


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
    streams: Streams = 100, connect_rate: ConnectRate = None, cacert: Cacert = None,
    insecure: Insecure = False,
    timeout: Timeout = "10s", late_after: LateAfter = "1ms", header: Header = None,
    method: Method = "GET", data: Data = None,
    address: Address = None, reserve_driver_cpu: ReserveCpu = False, html: Html = False,
    metrics: Metrics = None, metrics_allow_remote: MetricsAllowRemote = False,
) -> None:
    """Run every HTTP version × DNS mode (× actor count) back to back and compare them;
    then every cell against the first (its verdicts: baseline.md).

    With --metrics, one endpoint serves every run of the matrix (each with its own run
    label) and stays up after the last one until the final values are scraped."""
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
        placement.connect(cases[0].spec.address)  # --address, else $RAY_ADDRESS, else local
    except ValueError as exc:
        fail(str(exc))
    sigterm_as_interrupt()  # after ray.init, which installs its own SIGTERM handler

    def started(case: Any) -> None:
        typer.echo(f"run {case.label} ...", err=True)

    endpoint = shared_metrics(cases[0].spec.metrics)
    baselines: list[Any] = []
    try:
        results, written = run_matrix(cases, out, on_start=started, metrics_endpoint=endpoint,
                                      on_baseline=baselines.append)
    except ValueError as exc:
        fail(str(exc))
    from rafale.analysis.verdict.baseline import baseline_text

    typer.echo(compare.to_terminal(compare.compare(results)), nl=False)
    typer.echo(baseline_text(baselines[0]), nl=False)
    if endpoint is not None:
        typer.echo(f"metrics: {endpoint.close()}")
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
    delay: Annotated[bool, typer.Option(
        "--delay", help="Also serve /delay/<ms>: answered after <ms> milliseconds (a slower "
                        "target, to compare runs against).")] = False,
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
                               http_port=http_port, delay=delay)
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


# `--base A1 A2 --cand B1 B2`: the sides are parsed from the arguments in order
# (cluster/cli/compare.py), so unknown options reach the command instead of click.
app.command("compare", context_settings={"ignore_unknown_options": True})(compare_command)
app.add_typer(webpush_app, name="webpush")
app.add_typer(cluster_app, name="cluster")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    try:
        app(args=argv, prog_name="rafale", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0

