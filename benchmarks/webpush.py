"""Web push: how fast messages are prepared (encrypted) per core, and how sending them goes.

1. ``--messages`` test subscriptions are generated. In this process, one message's cost
   with rafale's encoder and with pywebpush's, and the floor under both: the three P-256
   operations every message needs (a new ephemeral key, the ECDH with the subscription's
   key, decoding that key), timed alone; each figure the best of 7 passes.
2. The payload is prepared for all of them with 1 and with 2 Ray workers, ``--rounds``
   times, the order alternating by round (after a warm-up, so that worker start-up and
   imports are not counted): messages per second per core (target >= 8,000) and the
   speed-up from 1 to 2 workers (target >= 1.7x), medians over the rounds.
3. The feed is sent once at each of ``--rates`` over h2 to the embedded push emulator
   (Caddy in front of an aiohttp push service on the same 2 cores): achieved rate and late
   share, and how much of the lateness the in-flight cap caused (the service too slow).

    .venv/bin/python -m benchmarks.webpush [--messages 100000] [--rounds 3]
        [--rates 5000,2000] [--out DIR]
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
from rafale.cluster.webpush.crypto import new_subscription, new_vapid_pem
from rafale.cluster.webpush.prepare import prepare, send

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


def p256_floor_us(p256dh: bytes, number: int = 500) -> dict[str, float]:
    """µs of each P-256 operation a message needs (best of 7 repeats): no encoder that makes
    a new ephemeral key per message (RFC 8291) can cost less than their sum."""
    import timeit

    from cryptography.hazmat.primitives.asymmetric import ec

    curve, ecdh = ec.SECP256R1(), ec.ECDH()
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(curve, p256dh)
    own = ec.generate_private_key(curve)

    def best(call: Any) -> float:
        return min(timeit.repeat(call, number=number, repeat=7)) / number * 1e6

    costs = {"keygen_us": best(lambda: ec.generate_private_key(curve)),
             "ecdh_us": best(lambda: own.exchange(ecdh, ua_key)),
             "decode_us": best(lambda: ec.EllipticCurvePublicKey.from_encoded_point(
                 curve, p256dh))}
    return {**costs, "floor_us": sum(costs.values())}


def encoder_costs(subs: Path, count: int = 400, repeat: int = 7) -> dict[str, float]:
    """µs per message in this process, same subscriptions, same run, each the best of
    ``repeat`` passes over ``count`` messages (as the floor is): pywebpush's encoder
    (WebPusher.encode, aes128gcm) and rafale's (encrypt_rows, which also builds the row),
    and the P-256 floor under both."""
    from pywebpush import WebPusher

    from rafale.cluster.webpush.crypto import encrypt_rows, origin_of
    from rafale.cluster.webpush.prepare import read_subscriptions

    lines = subs.read_text().splitlines()[:count]
    infos = [json.loads(line) for line in lines]
    parsed = read_subscriptions(infos)
    data = PAYLOAD.encode()
    columns = ([s.endpoint for s in parsed], [s.p256dh for s in parsed],
               [s.auth for s in parsed])
    authorizations = {origin_of(parsed[0].endpoint): "vapid t=a.b.c,k=d"}

    def theirs() -> None:
        for info in infos:
            WebPusher(info).encode(data, content_encoding="aes128gcm")

    def ours() -> None:
        encrypt_rows(*columns, data, authorizations, 60, "normal", None)

    def best_us(call: Any) -> float:
        passes = []
        for _ in range(repeat):
            began = time.perf_counter()
            call()
            passes.append(time.perf_counter() - began)
        return min(passes) / len(infos) * 1e6

    their_us, our_us = best_us(theirs), best_us(ours)
    return {"pywebpush_us": their_us, "rafale_us": our_us, "ratio": our_us / their_us,
            **p256_floor_us(parsed[0].p256dh)}


def median_prepare(rows: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    """The median round of ``workers`` (by messages/s), with every round's figure."""
    mine = sorted((r for r in rows if r["workers"] == workers),
                  key=lambda r: r["messages_per_s"])
    middle = dict(mine[len(mine) // 2])
    middle["rounds_per_s"] = [r["messages_per_s"] for r in mine]
    return middle


def send_row(result: Any, rate: float) -> dict[str, Any]:
    requests = result.summary["requests"]
    outcomes = result.summary["webpush"]["outcomes"]
    sent = requests["sent"] or 1
    return {"rate_per_s": rate, "sent_per_s": result.summary["rate_per_s"]["sent"],
            "late_share": requests["late"] / sent, "late_cap_share": requests["late_cap"] / sent,
            "delivered": outcomes["delivered"], "gone": outcomes["gone"],
            "dropped": requests["dropped"]}


def markdown(report: dict[str, Any]) -> str:
    one, two = report["prepare"]
    verdict = {True: "met", False: "**missed**"}
    per_core = one["per_core_per_s"]
    speedup = two["messages_per_s"] / one["messages_per_s"]
    costs = report["encoders"]
    rounds = len(one.get("rounds_per_s", [one["messages_per_s"]]))
    lines = [
        "| what | measured | target |",
        "|---|--:|---|",
        f"| one message in one process, best of 7 passes: rafale / pywebpush's encoder | "
        f"{costs['rafale_us']:.0f} / {costs['pywebpush_us']:.0f} µs = {costs['ratio']:.2f}x "
        "| near 1x |",
    ]
    if "floor_us" in costs:
        lines.append(
            f"| the P-256 floor of one message, best of 7: new key + ECDH + decoding the "
            f"subscriber's key "
            f"| {costs['keygen_us']:.0f} + {costs['ecdh_us']:.0f} + {costs['decode_us']:.0f} "
            f"= {costs['floor_us']:.0f} µs ({1e6 / costs['floor_us']:,.0f}/s per core at best) "
            "| reported |")
    lines += [
        f"| prepare {one['messages']:,} messages, 1 worker (sustained; median of {rounds}) | "
        f"{one['messages_per_s']:,.0f} msg/s ({1e6 / per_core:.0f} µs each) | >= "
        f"{PER_CORE_TARGET:,.0f}/s per core: {verdict[per_core >= PER_CORE_TARGET]} |",
        f"| prepare, 2 workers (median of {rounds}) | {two['messages_per_s']:,.0f} msg/s, "
        f"speed-up {speedup:.2f}x | >= {SPEEDUP_TARGET}x: {verdict[speedup >= SPEEDUP_TARGET]} |",
    ]
    sends = report["send"] if isinstance(report["send"], list) else [report["send"]]
    for send_ in sends:
        cap = (f", {send_['late_cap_share']:.1%} by the in-flight cap"
               if "late_cap_share" in send_ else "")
        lines.append(
            f"| send once at {send_['rate_per_s']:,.0f} msg/s (h2, push emulator on the same 2 "
            f"cores) | {send_['sent_per_s']:,.0f} msg/s sent, {send_['late_share']:.1%} late"
            f"{cap}, {send_['delivered']:,} delivered, {send_['gone']:,} gone | reported |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webpush",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="prepare rounds (medians)")
    parser.add_argument("--rates", default="5000,2000",
                        help="comma-separated msg/s, one send of the feed at each")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
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
              f"{costs['pywebpush_us']:.0f} ({costs['ratio']:.2f}x); P-256 floor "
              f"{costs['floor_us']:.0f}", flush=True)
        placement.connect(None)
        _prepare(work / "subs.jsonl", work / "vapid.pem", work / "warm.parquet", 2)  # warm-up
        rounds = []
        for round_ in range(args.rounds):
            for workers in ((1, 2) if round_ % 2 == 0 else (2, 1)):
                row = _prepare(work / "subs.jsonl", work / "vapid.pem",
                               work / f"feed{workers}.parquet", workers)
                rounds.append({**row, "round": round_})
                print(f"round {round_}, prepare with {workers} worker(s): "
                      f"{row['messages_per_s']:,.0f} msg/s ({row['per_core_per_s']:,.0f} per "
                      "core)", flush=True)
        prepared = [median_prepare(rounds, 1), median_prepare(rounds, 2)]
        sends = []
        for i, rate in enumerate(rates):
            result = send(work / "feed2.parquet", rate_per_s=rate, out=work / f"sent{i}",
                          retry=3, resolve=target.resolve, cacert=str(target.ca_file))
            sends.append(send_row(result, rate))
            print(f"send once at {rate:,.0f} msg/s: {sends[-1]['sent_per_s']:,.0f} msg/s sent, "
                  f"{sends[-1]['late_share']:.1%} late", flush=True)
    report = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
              "encoders": costs, "prepare": prepared, "prepare_rounds": rounds,
              "send": sends}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "webpush.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report), end="")
    print(f"wrote {args.out / 'webpush.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
