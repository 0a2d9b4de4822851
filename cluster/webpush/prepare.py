"""Web push: encrypt one notification for each of N subscriptions into a feed, then send
the feed once at a chosen rate and know which subscriptions are gone.

:func:`prepare` reads browser subscriptions (JSON Lines or a JSON array of
``PushSubscription.toJSON()`` objects), checks them all before any work, signs one VAPID
JWT per push-service origin in the driver (the private key never leaves it), and encrypts
the payload for every subscription in Ray tasks over chunks (``workers`` at a time, with a
progress bar), so preparing scales with the cluster's cores. The result is a feed (Parquet):
url = endpoint, POST, the push headers, body = the encrypted record, tag = the push service.

:func:`send` runs that feed once (``feed_mode="once"``) with web-push defaults and sorts
the outcomes: 201/202 delivered, 404/410 gone (written to ``gone.jsonl``: the subscriptions
to delete), 413 too large, 429/503 retried after Retry-After, 400/401/403 rejected (the
service's first answer is shown once).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rafale.cluster.webpush.crypto import (
    MAX_PAYLOAD_BYTES,
    URGENCIES,
    Subscription,
    VapidKey,
    encrypt_rows,
    origin_of,
)

__all__ = ["OUTCOME_CLASSES", "Prepared", "prepare", "read_subscriptions", "send",
           "sort_outcomes"]

CHUNK_SUBSCRIPTIONS = 2_000
GONE_FILE = "gone.jsonl"
# How a push service's answers are read (RFC 8030 and the services' documentation).
OUTCOME_CLASSES: dict[str, tuple[int, ...]] = {
    "delivered": (201, 202), "gone": (404, 410), "too_large": (413,),
    "rejected": (400, 401, 403), "throttled": (429, 503),
}
_TOPIC_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# ----------------------------------------------------------------------------- inputs


def _json_items(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, object) of a JSON array file or of each JSON Lines line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"subscriptions {str(path)!r} cannot be read: {exc.strerror}") from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"subscriptions {str(path)!r} is not JSON: {exc}") from None
        for i, item in enumerate(items):
            yield f"{path.name} item {i}", item
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path.name} line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path.name} line {number} is not JSON: {exc.msg}") from None


def read_subscriptions(source: str | Path | Sequence[Any]) -> list[Subscription]:
    """Every subscription, checked (ValueError naming the line of the first bad one)."""
    items = (_json_items(Path(source).expanduser()) if isinstance(source, str | Path)
             else ((f"subscription {i}", item) for i, item in enumerate(source)))
    subscriptions = [Subscription.parse(item, where) for where, item in items]
    if not subscriptions:
        raise ValueError(f"subscriptions {str(source)[:80]!r} holds no subscription")
    return subscriptions


def _payload(payload: str | bytes | Path) -> bytes:
    if isinstance(payload, Path) or (isinstance(payload, str) and payload.startswith("@")):
        path = Path(str(payload).removeprefix("@")).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"payload file {str(path)!r} cannot be read: {exc.strerror}"
                             ) from None
    else:
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload is {len(data):,} bytes; a push message holds at most "
                         f"{MAX_PAYLOAD_BYTES:,} (one aes128gcm record in 4,096 bytes)")
    return data


def _vapid_key(vapid_key: str | Path | bytes, subject: str) -> VapidKey:
    if isinstance(vapid_key, bytes):
        return VapidKey(vapid_key, subject)
    path = Path(vapid_key).expanduser()
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"vapid key file {str(path)!r} cannot be read: {exc.strerror}"
                         ) from None
    return VapidKey(pem, subject)


def _check_options(ttl_s: int, urgency: str, topic: str | None) -> None:
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s < 0:
        raise ValueError(f"ttl {ttl_s!r} must be a whole number of seconds >= 0")
    if urgency not in URGENCIES:
        raise ValueError(f"urgency {urgency!r} is not one of {', '.join(URGENCIES)}")
    if topic is not None and (not 0 < len(topic) <= 32 or set(topic) - _TOPIC_CHARS):
        raise ValueError(f"topic {topic!r} must be 1 to 32 base64url characters (RFC 8030)")


# ----------------------------------------------------------------------------- prepare


@dataclass(frozen=True)
class Prepared:
    """What prepare() wrote: the feed, its rows, the origins, and how fast."""

    feed: Path
    rows: int
    origins: tuple[str, ...]
    seconds: float
    workers: int

    @property
    def messages_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def _chunks(subscriptions: Sequence[Subscription], size: int
            ) -> Iterator[tuple[list[str], list[bytes], list[bytes]]]:
    for start in range(0, len(subscriptions), size):
        part = subscriptions[start:start + size]
        yield ([s.endpoint for s in part], [s.p256dh for s in part], [s.auth for s in part])


def encrypt_chunk(endpoints: list[str], p256dh: list[bytes], auth: list[bytes],
                  shared: tuple[Any, ...]) -> pa.Table:
    """A Ray task: one chunk of subscriptions; ``shared`` = (payload, authorizations, ttl,
    urgency, topic), put once in the object store."""
    return encrypt_rows(endpoints, p256dh, auth, *shared)


def _in_ray(chunks: list[tuple[list[str], list[bytes], list[bytes]]], args: tuple[Any, ...],
            workers: int, tick: Callable[[int], None]) -> list[pa.Table]:
    """Every chunk in Ray tasks, at most ``workers`` at a time, in order."""
    import ray

    task = ray.remote(num_cpus=1)(encrypt_chunk)
    shared = ray.put(args)
    results: dict[int, pa.Table] = {}
    pending: dict[Any, int] = {}
    queue = list(enumerate(chunks))
    queue.reverse()
    while queue or pending:
        while queue and len(pending) < workers:
            index, (endpoints, keys, auths) = queue.pop()
            pending[task.remote(endpoints, keys, auths, shared)] = index
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            index = pending.pop(ref)
            results[index] = ray.get(ref)
            tick(results[index].num_rows)
    return [results[i] for i in range(len(chunks))]


def prepare(subscriptions: str | Path | Sequence[Any], payload: str | bytes | Path,
            vapid_key: str | Path | bytes, subject: str, out: str | Path, *,
            ttl_s: int = 86_400, urgency: str = "normal", topic: str | None = None,
            workers: int | None = None, progress: bool = True) -> Prepared:
    """Encrypt ``payload`` for every subscription and write the feed to ``out``.

    ``workers``: Ray tasks at a time (None: every CPU of the cluster; 0: in this process,
    without Ray). Every input is checked before any encryption.
    """
    _check_options(ttl_s, urgency, topic)
    data = _payload(payload)
    key = _vapid_key(vapid_key, subject)
    subs = read_subscriptions(subscriptions)
    target = Path(out).expanduser()
    if target.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(f"out {str(out)!r} must be a .parquet file (the feed to send)")
    target.parent.mkdir(parents=True, exist_ok=True)
    origins = tuple(dict.fromkeys(origin_of(s.endpoint) for s in subs))
    authorizations = {origin: key.authorization(origin) for origin in origins}
    args = (data, authorizations, ttl_s, urgency, topic)
    chunks = list(_chunks(subs, CHUNK_SUBSCRIPTIONS))
    began = time.perf_counter()
    bar = _progress(len(subs), progress)
    try:
        if workers == 0:
            tables = []
            for endpoints, keys, auths in chunks:
                tables.append(encrypt_rows(endpoints, keys, auths, *args))
                bar(tables[-1].num_rows)
        else:
            import ray

            from rafale.cluster import placement

            placement.connect(None)
            count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            tables = _in_ray(chunks, args, count, bar)
            workers = count
    finally:
        bar(-1)
    seconds = time.perf_counter() - began
    pq.write_table(pa.concat_tables(tables), target)
    return Prepared(target, len(subs), origins, seconds, workers or 0)


def _progress(total: int, shown: bool) -> Callable[[int], None]:
    """A callback: n rows more (-1: close). tqdm on stderr when ``shown``."""
    if not shown:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="msg", desc="encrypting", unit_scale=True)

    def tick(n: int) -> None:
        if n < 0:
            bar.close()
        else:
            bar.update(n)

    return tick


# ----------------------------------------------------------------------------- send


def sort_outcomes(outcomes: pa.Table | Any) -> dict[str, int]:
    """Rows per web-push outcome class (and ``failed`` without an answer, ``unknown``,
    ``unsent``, ``other``) from an outcomes table or frame."""
    frame = outcomes.to_pandas() if isinstance(outcomes, pa.Table) else outcomes
    counts = dict.fromkeys([*OUTCOME_CLASSES, "no_answer", "unknown", "unsent", "other"], 0)
    classes = {code: name for name, codes in OUTCOME_CLASSES.items() for code in codes}
    for outcome, status in zip(frame["outcome"], frame["status"], strict=True):
        if outcome in ("unknown", "unsent"):
            counts[outcome] += 1
        elif not status:
            counts["no_answer"] += 1
        else:
            counts[classes.get(int(status), "other")] += 1
    return counts


def write_gone(outcomes: Any, feed: pa.Table, directory: Path) -> int:
    """gone.jsonl: one line per subscription the service says is gone (404/410)."""
    gone = outcomes[outcomes["status"].isin(OUTCOME_CLASSES["gone"])]
    urls = feed.column("url")
    path = directory / GONE_FILE
    with path.open("w", encoding="utf-8") as out:
        for row, status in zip(gone["row"], gone["status"], strict=True):
            out.write(json.dumps({"row": int(row), "endpoint": urls[int(row)].as_py(),
                                  "status": int(status)}) + "\n")
    return len(gone)


def send(feed: str | Path, *, rate_per_s: float, out: str | Path, retry: int = 3,
         http: str = "auto", **options: Any) -> Any:
    """Send a prepared feed once; returns the run's result with ``summary["webpush"]``
    (outcome classes, gone count, the first rejected answer) and writes gone.jsonl."""
    from rafale.cluster.run import start

    run = start(feed=str(feed), feed_mode="once", rate_per_s=rate_per_s, retry=retry,
                http=http, out=str(out), keep_answers=OUTCOME_CLASSES["rejected"], **options)
    result = run.wait()
    outcomes = result.outcome_frame()
    feed_table = pq.read_table(Path(feed).expanduser(), columns=["url"])
    gone = write_gone(outcomes, feed_table, Path(out))
    result.summary["webpush"] = {"outcomes": sort_outcomes(outcomes), "gone": gone,
                                 "gone_file": str(Path(out) / GONE_FILE)}
    from rafale.analysis.store import SUMMARY_FILE, write_json

    write_json(Path(out) / SUMMARY_FILE, result.summary)
    return result
