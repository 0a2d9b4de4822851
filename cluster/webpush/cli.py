"""``rafale webpush prepare`` and ``rafale webpush send``: the CLI of cluster/webpush/prepare.py."""

from __future__ import annotations

from typing import Annotated

import typer

from rafale.cluster.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    exit_code,
    fail,
    shared_metrics,
    show_warnings,
    sigterm_as_interrupt,
)
from rafale.cluster.cli.options import Metrics, MetricsAllowRemote

app = typer.Typer(
    name="webpush", no_args_is_help=True, add_completion=False,
    help="Deliver one notification to each of N browser push subscriptions, once, at a "
         "chosen rate: `prepare` encrypts them into a feed (RFC 8291 aes128gcm, VAPID), "
         "`send` sends it and lists the gone subscriptions.")


@app.command()
def prepare(
    subscriptions: Annotated[str, typer.Option(
        "--subscriptions", metavar="FILE",
        help="JSON Lines or a JSON array of PushSubscription.toJSON() objects (endpoint, "
             "keys.p256dh, keys.auth).")],
    payload: Annotated[str, typer.Option(
        "--payload", metavar="TEXT|@FILE",
        help="The notification (at most 4,078 bytes), or @FILE to read it.")],
    vapid_key: Annotated[str, typer.Option(
        "--vapid-key", metavar="PEM",
        help="The application server's EC P-256 private key (PEM file). Never printed or "
             "saved.")],
    subject: Annotated[str, typer.Option(
        "--subject", metavar="mailto:|https:", help="VAPID contact (sub claim).")],
    out: Annotated[str, typer.Option(
        "--out", metavar="FEED.parquet", help="The feed to write (send it with `send`).")],
    ttl: Annotated[int, typer.Option("--ttl", metavar="S",
                                     help="How long the service keeps it (TTL).")] = 86_400,
    urgency: Annotated[str, typer.Option(
        "--urgency", metavar="LEVEL", help="very-low, low, normal or high.")] = "normal",
    topic: Annotated[str | None, typer.Option(
        "--topic", metavar="T", show_default=False,
        help="Replaces a pending message with the same topic (1-32 base64url chars).")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", metavar="N", show_default=False,
        help="Ray tasks at a time (default: every CPU of the cluster; 0: no Ray).")] = None,
) -> None:
    """Encrypt the payload for every subscription (spread over the Ray cluster)."""
    from rafale.cluster.webpush.prepare import prepare as run_prepare

    show_warnings()
    try:
        done = run_prepare(subscriptions, payload, vapid_key, subject, out, ttl_s=ttl,
                           urgency=urgency, topic=topic, workers=workers)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"prepared {done.rows:,} messages for {len(done.origins)} push service(s) in "
               f"{done.seconds:.1f} s ({done.messages_per_s:,.0f} msg/s, {done.workers} "
               f"workers): {done.feed}")


@app.command()
def send(
    feed: Annotated[str, typer.Argument(help="A feed written by `prepare`.")],
    rate: Annotated[float, typer.Option("--rate", metavar="MSG/S",
                                        help="Messages per second, over all actors.")],
    out: Annotated[str, typer.Option(
        "--out", metavar="DIR",
        help="Results: outcomes.parquet, gone.jsonl (subscriptions to delete), summary.")],
    ramp: Annotated[str | None, typer.Option("--ramp", metavar="DURATION",
                                             show_default=False)] = None,
    http: Annotated[str, typer.Option(
        "--http", metavar="VERSION",
        help="auto (HTTP/2 by ALPN, as push services speak), 1.1, 2 (strict) or 3.")] = "auto",
    retry: Annotated[int, typer.Option(
        "--retry", metavar="N", help="Retries after 429/503 (Retry-After) or a network "
                                     "error.")] = 3,
    actors: Annotated[str, typer.Option("--actors", metavar="auto|N")] = "auto",
    resolve: Annotated[list[str] | None, typer.Option(
        "--resolve", metavar="HOST:PORT:ADDR", show_default=False)] = None,
    cacert: Annotated[str | None, typer.Option("--cacert", metavar="FILE",
                                               show_default=False)] = None,
    address: Annotated[str | None, typer.Option("--address", metavar="HOST:PORT",
                                                show_default=False)] = None,
    progress: Annotated[bool, typer.Option("--progress/--quiet")] = True,
    metrics: Metrics = None, metrics_allow_remote: MetricsAllowRemote = False,
) -> None:
    """Send a prepared feed once: delivered, gone (gone.jsonl), too large, throttled."""
    from rafale.analysis.report import summary_text
    from rafale.cluster.metrics import parse_metrics_address
    from rafale.cluster.progress import ProgressPrinter
    from rafale.cluster.webpush.prepare import send as run_send

    show_warnings()
    sigterm_as_interrupt()
    try:
        bind = None if metrics is None else parse_metrics_address(metrics, metrics_allow_remote)
    except ValueError as exc:
        fail(str(exc))
    endpoint = shared_metrics(bind)
    printer = ProgressPrinter() if progress else None
    try:
        result = run_send(feed, rate_per_s=rate, out=out, retry=retry, http=http,
                          ramp_s=ramp or 0.0, actors=actors, resolve=tuple(resolve or ()),
                          cacert=cacert, address=address, on_progress=printer,
                          metrics_endpoint=endpoint)
    except ValueError as exc:
        if endpoint is not None:
            endpoint.stop()
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted while starting; no message was sent", EXIT_INTERRUPTED)
    except RuntimeError as exc:
        fail(str(exc), EXIT_FAILED)
    if printer is not None:
        printer.close()
    typer.echo(summary_text(result), nl=False)
    if endpoint is not None:
        typer.echo(f"  metrics: {endpoint.close()}")
    typer.echo(f"saved to {out}")
    raise typer.Exit(exit_code(str(result.meta.get("ended", ""))))
