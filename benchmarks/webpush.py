"""Web push: how fast messages are prepared (encrypted) per core, and how sending them goes.

1. ``--messages`` test subscriptions are generated; the payload is prepared for all of them
   with 1 and with 2 Ray workers (each after a warm-up, so that worker start-up and imports
   are not counted): messages per second per core (target >= 8,000, near the pywebpush
   encoder's cost) and the speed-up from 1 to 2 workers (target >= 1.7x).
2. The feed is sent once at ``--rate`` over h2 to the embedded push emulator (Caddy in
   front of an aiohttp push service on the same 2 cores): achieved rate and late share.

    .venv/bin/python -m benchmarks.webpush [--messages 100000] [--rate 5000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import driver_scale
from rafale.cluster import placement
from rafale.cluster.target import PushOptions, Target
from rafale.cluster.webpush import prepare, send
from rafale.cluster.webpush_crypto import new_subscription, new_vapid_pem

PER_CORE_TARGET = 8000.0
SPEEDUP_TARGET = 1.7
PAYLOAD = '{"title": "rafale", "body": "Your order has shipped", "url": "/orders/1"}'


def _subscriptions(path: Path, target: Target, count: int) -> None:
    with path.open("w") as out:
        for i in range(count):
            out.write(json.dumps(new_subscription(target.push_url(f"s{i:07d}"))[0]) + "\n")


def _prepare(subs: Path, pem: Path, out: Path, workers: int) -> dict[str, Any]:
    done = prepare(subs, PAYLOAD, pem, "mailto:bench@rafale.test", out, workers=workers,
                   progress=False)
    return {"workers": workers, "messages": done.rows, "seconds": done.seconds,
            "messages_per_s": done.messages_per_s,
            "per_core_per_s": done.messages_per_s / workers}


def encoder_costs(subs: Path, count: int = 2000) -> dict[str, float]:
    """µs per message in this process, same subscriptions, same run: pywebpush's encoder
    (WebPusher.encode, aes128gcm) and rafale's (encrypt_rows, which also builds the row)."""
    from pywebpush import WebPusher

    from rafale.cluster.webpush import read_subscriptions
    from rafale.cluster.webpush_crypto import encrypt_rows, origin_of

    lines = subs.read_text().splitlines()[:count]
    infos = [json.loads(line) for line in lines]
    parsed = read_subscriptions(infos)
    data = PAYLOAD.encode()
    began = time.perf_counter()
    for info in infos:
        WebPusher(info).encode(data, content_encoding="aes128gcm")
    theirs = (time.perf_counter() - began) / len(infos) * 1e6
    began = time.perf_counter()
    encrypt_rows([s.endpoint for s in parsed], [s.p256dh for s in parsed],
                 [s.auth for s in parsed], data, {origin_of(parsed[0].endpoint):
                                                  "vapid t=a.b.c,k=d"}, 60, "normal", None)
    ours = (time.perf_counter() - began) / len(infos) * 1e6
    return {"pywebpush_us": theirs, "rafale_us": ours, "ratio": ours / theirs}


def markdown(report: dict[str, Any]) -> str:
    one, two = report["prepare"]
    send_ = report["send"]
    verdict = {True: "met", False: "**missed**"}
    per_core = one["per_core_per_s"]
    speedup = two["messages_per_s"] / one["messages_per_s"]
    costs = report["encoders"]
    lines = [
        "| what | measured | target |",
        "|---|--:|---|",
        f"| one message in one process: rafale / pywebpush's encoder (same run) | "
        f"{costs['rafale_us']:.0f} / {costs['pywebpush_us']:.0f} µs = {costs['ratio']:.2f}x "
        "| near 1x |",
        f"| prepare {one['messages']:,} messages, 1 worker | {one['messages_per_s']:,.0f} "
        f"msg/s ({1e6 / per_core:.0f} µs each) | >= {PER_CORE_TARGET:,.0f}/s per core: "
        f"{verdict[per_core >= PER_CORE_TARGET]} |",
        f"| prepare, 2 workers | {two['messages_per_s']:,.0f} msg/s, speed-up {speedup:.2f}x "
        f"| >= {SPEEDUP_TARGET}x: {verdict[speedup >= SPEEDUP_TARGET]} |",
        f"| send once at {send_['rate_per_s']:,.0f} msg/s (h2, push emulator on the same 2 "
        f"cores) | {send_['sent_per_s']:,.0f} msg/s sent, {send_['late_share']:.1%} late, "
        f"{send_['delivered']:,} delivered, {send_['gone']:,} gone | reported |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webpush",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    machine = driver_scale.machine()
    gone = tuple(f"s{i:07d}" for i in range(0, args.messages, 100))  # 1 %
    with (tempfile.TemporaryDirectory(prefix="rafale-webpush-bench-") as tmp,
          Target(push=PushOptions(gone=gone, keep_bodies=0)) as target):
        work = Path(tmp)
        began = time.perf_counter()
        _subscriptions(work / "subs.jsonl", target, args.messages)
        (work / "vapid.pem").write_bytes(new_vapid_pem())
        print(f"{args.messages:,} subscriptions generated in {time.perf_counter() - began:.0f} s")
        costs = encoder_costs(work / "subs.jsonl")
        print(f"encoders, µs per message: rafale {costs['rafale_us']:.0f}, pywebpush "
              f"{costs['pywebpush_us']:.0f} ({costs['ratio']:.2f}x)", flush=True)
        placement.connect(None)
        _prepare(work / "subs.jsonl", work / "vapid.pem", work / "warm.parquet", 2)  # warm-up
        prepared = []
        for workers in (1, 2):
            row = _prepare(work / "subs.jsonl", work / "vapid.pem",
                           work / f"feed{workers}.parquet", workers)
            prepared.append(row)
            print(f"prepare, {workers} worker(s): {row['messages_per_s']:,.0f} msg/s "
                  f"({row['per_core_per_s']:,.0f} per core)", flush=True)
        result = send(work / "feed2.parquet", rate_per_s=args.rate, out=work / "sent",
                      retry=3, resolve=target.resolve, cacert=str(target.ca_file))
    requests = result.summary["requests"]
    outcomes = result.summary["webpush"]["outcomes"]
    sent = {"rate_per_s": args.rate, "sent_per_s": result.summary["rate_per_s"]["sent"],
            "late_share": requests["late"] / requests["sent"] if requests["sent"] else 0.0,
            "delivered": outcomes["delivered"], "gone": outcomes["gone"],
            "dropped": requests["dropped"]}
    print(f"send once at {args.rate:,.0f} msg/s: {sent['sent_per_s']:,.0f} msg/s sent, "
          f"{sent['late_share']:.1%} late, {sent['delivered']:,} delivered, "
          f"{sent['gone']:,} gone")
    report = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
              "encoders": costs, "prepare": prepared, "send": sent}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "webpush.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report), end="")
    print(f"wrote {args.out / 'webpush.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
