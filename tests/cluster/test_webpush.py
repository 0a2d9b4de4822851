"""Web push: a prepared message decrypts to the payload and carries a valid VAPID JWT; bad
inputs are refused naming the line; 5,000 subscriptions sent through the push emulator
(2 % gone, 5 % throttled once) are each delivered exactly once and gone.jsonl lists
exactly the gone ones; a rejected answer is shown once."""

from __future__ import annotations

import base64
import collections
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from rafale.cluster.target import PushOptions, Target
from rafale.cluster.webpush.crypto import (
    MAX_PAYLOAD_BYTES,
    Subscription,
    decode_b64url,
    decrypt,
    encrypt,
    encrypt_rows,
    new_subscription,
    new_vapid_pem,
)
from rafale.cluster.webpush.prepare import GONE_FILE, prepare, send

SUBJECT = "mailto:ops@rafale.test"


def jwt_claims(authorization: str) -> dict[str, Any]:
    """Verify ``vapid t=JWT,k=KEY`` (ES256 with the key in k) and return the claims."""
    scheme, _, rest = authorization.partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in rest.split(","))
    header, claims, signature = fields["t"].split(".")
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), decode_b64url(fields["k"]))
    raw = decode_b64url(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    assert json.loads(decode_b64url(header)) == {"typ": "JWT", "alg": "ES256"}
    return dict(json.loads(decode_b64url(claims)))


def write_subscriptions(path: Path, endpoints: list[str]) -> list[tuple[Any, bytes]]:
    keys = []
    with path.open("w") as out:
        for endpoint in endpoints:
            subscription, key, auth = new_subscription(endpoint)
            out.write(json.dumps(subscription) + "\n")
            keys.append((key, auth))
    return keys


def test_a_prepared_message_decrypts_and_its_vapid_jwt_verifies(tmp_path: Path) -> None:
    endpoints = ["https://push-a.rafale.test/push/one", "https://push-b.rafale.test:8443/w/two"]
    keys = write_subscriptions(tmp_path / "subs.jsonl", endpoints)
    pem = tmp_path / "vapid.pem"
    pem.write_bytes(new_vapid_pem())
    payload = "héllo push ✓" * 10
    done = prepare(tmp_path / "subs.jsonl", payload, pem, SUBJECT, tmp_path / "feed.parquet",
                   ttl_s=600, urgency="high", topic="news", workers=0, progress=False)
    assert done.rows == 2 and done.origins == ("https://push-a.rafale.test",
                                               "https://push-b.rafale.test:8443")
    feed = pq.read_table(done.feed).to_pylist()
    assert [row["url"] for row in feed] == endpoints
    assert [row["tag"] for row in feed] == ["push-a.rafale.test", "push-b.rafale.test"]
    for row, (key, auth), endpoint in zip(feed, keys, endpoints, strict=True):
        assert row["method"] == "POST"
        assert decrypt(row["body"], key, auth) == payload.encode()
        headers = dict(h.split(": ", 1) for h in row["headers"])
        assert headers["Content-Encoding"] == "aes128gcm" and headers["TTL"] == "600"
        assert headers["Urgency"] == "high" and headers["Topic"] == "news"
        claims = jwt_claims(headers["Authorization"])
        parts = urlsplit(endpoint)
        origin = f"{parts.scheme}://{parts.netloc}"
        assert claims["aud"] == origin and claims["sub"] == SUBJECT
        assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    # Each message has its own ephemeral key and salt.
    assert feed[0]["body"][:16] != feed[1]["body"][:16]
    # A tampered signature does not verify (the check above can fail).
    good = dict(h.split(": ", 1) for h in feed[0]["headers"])["Authorization"]
    token, key = good.removeprefix("vapid t=").split(",k=")
    header, claims, signature = token.split(".")
    forged = signature[:8] + ("B" if signature[8] == "A" else "A") + signature[9:]
    with pytest.raises(InvalidSignature):
        jwt_claims(f"vapid t={header}.{claims}.{forged},k={key}")


@pytest.mark.parametrize("size", [1, 200, MAX_PAYLOAD_BYTES])
def test_encrypt_gives_http_ece_bytes_for_the_same_key_and_salt(size: int) -> None:
    """The key schedule laid over cryptography's primitives is RFC 8291's: for one
    ephemeral key and salt it writes exactly what http_ece writes, and reads back."""
    import http_ece

    info, key, auth = new_subscription("https://push.rafale.test/push/a")
    subscription = Subscription.parse(info, "test")
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sender = ec.generate_private_key(ec.SECP256R1())
    salt = bytes(range(16))
    ours = encrypt(payload, subscription, sender=sender, salt=salt)
    theirs = http_ece.encrypt(payload, salt=salt, private_key=sender, dh=subscription.p256dh,
                              auth_secret=subscription.auth, version="aes128gcm", rs=4096)
    assert ours == bytes(theirs)
    assert len(ours) <= 4096 + 86  # one record: header (86 bytes) + at most rs
    assert decrypt(encrypt(payload, subscription), key, auth) == payload
    # An empty payload still gets its one (last) record; http_ece writes none for it.
    assert decrypt(encrypt(b"", subscription), key, auth) == b""


def test_encrypt_rows_tags_each_row_by_its_origin() -> None:
    """Rows of two origins (one endpoint without a path) get their own Authorization."""
    endpoints = ["https://a.rafale.test/push/1", "https://b.rafale.test:8443?x=1",
                 "https://a.rafale.test/push/2"]
    subs = [Subscription.parse(new_subscription(e)[0], e) for e in endpoints]
    table = encrypt_rows(endpoints, [s.p256dh for s in subs], [s.auth for s in subs], b"hi",
                         {"https://a.rafale.test": "vapid A",
                          "https://b.rafale.test:8443": "vapid B"}, 60, "low", None)
    rows = table.to_pylist()
    assert [r["tag"] for r in rows] == ["a.rafale.test", "b.rafale.test", "a.rafale.test"]
    auths = [next(h for h in r["headers"] if h.startswith("Authorization")) for r in rows]
    assert auths == ["Authorization: vapid A", "Authorization: vapid B",
                     "Authorization: vapid A"]


def bad_inputs(tmp_path: Path) -> dict[str, tuple[dict[str, Any], str]]:
    good, _, _ = new_subscription("https://push.rafale.test/push/a")
    pem = tmp_path / "vapid.pem"
    pem.write_bytes(new_vapid_pem())
    rsa = tmp_path / "rsa.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys

    rsa.write_bytes(rsa_keys.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))

    def subs(name: str, *items: Any, raw: str | None = None) -> str:
        path = tmp_path / name
        path.write_text(raw if raw is not None else "".join(json.dumps(i) + "\n" for i in items))
        return str(path)

    short_key = {**good, "keys": {**good["keys"], "p256dh": good["keys"]["p256dh"][:40]}}
    bad_auth = {**good, "keys": {**good["keys"], "auth": "AAAA"}}
    return {
        "not json": ({"subscriptions": subs("a.jsonl", raw="{nope\n")}, "line 1 is not JSON"),
        "no endpoint": ({"subscriptions": subs("b.jsonl", good, {"keys": good["keys"]})},
                        "line 2: no 'endpoint'"),
        "no keys": ({"subscriptions": subs("c.jsonl", {"endpoint": good["endpoint"]})},
                    "line 1: no 'keys'"),
        "bad p256dh": ({"subscriptions": subs("d.jsonl", good, good, short_key)},
                       "line 3: keys.p256dh"),
        "bad auth": ({"subscriptions": subs("e.jsonl", bad_auth)}, "line 1: keys.auth"),
        "http endpoint": ({"subscriptions": subs("f.jsonl", {**good, "endpoint":
                                                             "http://push.rafale.test/x"})},
                          "not an https:// URL"),
        "vapid not a key": ({"vapid_key": subs("g.pem", raw="hello")}, "not a PEM private key"),
        "vapid rsa": ({"vapid_key": str(rsa)}, "not an EC P-256"),
        "subject": ({"subject": "ops@rafale.test"}, "mailto: or https:"),
        "payload too big": ({"payload": "x" * (MAX_PAYLOAD_BYTES + 1)}, "at most 4,078"),
        "negative ttl": ({"ttl_s": -1}, "ttl -1"),
    }


def test_bad_inputs_are_refused_naming_what_is_wrong(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    write_subscriptions(good, ["https://push.rafale.test/push/a"])
    pem = tmp_path / "vapid.pem"
    pem.write_bytes(new_vapid_pem())
    for name, (changes, message) in bad_inputs(tmp_path).items():
        options: dict[str, Any] = {"subscriptions": str(good), "payload": "hi",
                                   "vapid_key": str(pem), "subject": SUBJECT,
                                   "out": str(tmp_path / f"{name}.parquet"), "workers": 0,
                                   "progress": False, **changes}
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            prepare(**options)
        assert not (tmp_path / f"{name}.parquet").exists(), name


@pytest.mark.real
def test_cli_refuses_a_bad_subscription_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "subs.jsonl").write_text('{"endpoint": "https://p.test/x"}\n')
    pem = tmp_path / "vapid.pem"
    pem.write_bytes(new_vapid_pem())
    done = subprocess.run(
        [sys.executable, "-m", "rafale.cluster.cli", "webpush", "prepare", "--subscriptions",
         str(tmp_path / "subs.jsonl"), "--payload", "hi", "--vapid-key", str(pem),
         "--subject", SUBJECT, "--out", str(tmp_path / "feed.parquet"), "--workers", "0"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "subs.jsonl line 1: no 'keys'" in done.stderr, done.stderr
    assert "BEGIN" not in done.stderr + done.stdout  # the key is never printed


@pytest.mark.slow
def test_five_thousand_subscriptions_each_delivered_once_and_gone_listed(
        local_ray: None, tmp_path: Path) -> None:
    count = 5000
    ids = [f"sub{i:05d}" for i in range(count)]
    gone = set(ids[::50])  # 2 %
    with Target(push=PushOptions(gone=tuple(sorted(gone)), throttle_share=0.05)) as target:
        write_subscriptions(tmp_path / "subs.jsonl", [target.push_url(i) for i in ids])
        pem = tmp_path / "vapid.pem"
        pem.write_bytes(new_vapid_pem())
        done = prepare(tmp_path / "subs.jsonl", "breaking news", pem, SUBJECT,
                       tmp_path / "feed.parquet", workers=2, progress=False)
        assert done.rows == count and done.workers == 2
        out = tmp_path / "sent"
        result = send(done.feed, rate_per_s=1500, out=out, retry=3, resolve=target.resolve,
                      cacert=str(target.ca_file), actors=2)
        time.sleep(0.5)
        log = target.push_log_entries()
    by_id: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for entry in log:
        by_id[entry["id"]].append(entry)
    delivered = collections.Counter(e["id"] for e in log if e["status"] == 201)
    assert set(delivered) == set(ids) - gone and set(delivered.values()) == {1}
    assert {i for i in ids if any(e["status"] == 410 for e in by_id[i])} == gone
    throttled = [i for i in ids if by_id[i][0]["status"] == 429]
    assert 0.03 * count < len(throttled) < 0.07 * count
    for i in throttled:  # retried once, after Retry-After
        first, second = by_id[i][:2]
        assert second["t"] - first["t"] >= 0.95, (i, by_id[i])
    listed = [json.loads(line) for line in (out / GONE_FILE).read_text().splitlines()]
    assert {line["endpoint"].rsplit("/", 1)[1] for line in listed} == gone
    assert {line["status"] for line in listed} == {410}
    push = result.summary["webpush"]
    assert push["outcomes"]["delivered"] == count - len(gone)
    assert push["outcomes"]["gone"] == len(gone) and push["gone"] == len(gone)
    assert result.summary["requests"]["retries"] == len(throttled)  # gone ids are never 429
    saved = json.loads((out / "summary.json").read_text())
    assert saved["webpush"] == push
    # What arrived is the payload: decrypt a delivered body kept by the emulator.
    sample = next(e for e in log if e.get("body_b64"))
    assert sample["bytes"] == len(base64.b64decode(sample["body_b64"]))


@pytest.mark.slow
def test_a_rejected_answer_is_shown_once(local_ray: None, target: Target,
                                         tmp_path: Path) -> None:
    endpoints = [target.url("/status/403"), target.url("/status/201")] * 5
    write_subscriptions(tmp_path / "subs.jsonl", endpoints)
    pem = tmp_path / "vapid.pem"
    pem.write_bytes(new_vapid_pem())
    done = prepare(tmp_path / "subs.jsonl", "x", pem, SUBJECT, tmp_path / "feed.parquet",
                   workers=0, progress=False)
    result = send(done.feed, rate_per_s=100, out=tmp_path / "sent", resolve=target.resolve,
                  cacert=str(target.ca_file), actors=1)
    assert result.summary["answers"] == {"403": "status 403\n"}
    assert result.summary["webpush"]["outcomes"]["rejected"] == 5
    assert result.summary["webpush"]["outcomes"]["delivered"] == 5
    from rafale.analysis.report import summary_text

    text = summary_text(result)
    assert "answer 403" in text and "status 403" in text
    for name in ("meta.json", "summary.json"):  # no Authorization, no body in results
        saved = (tmp_path / "sent" / name).read_text()
        assert "vapid t=" not in saved and "eyJ" not in saved


GOOD_HEADERS = {"Content-Encoding": "aes128gcm", "TTL": "60",
                "Authorization": "vapid t=eyJ.eyJ.sig,k=BKey"}


@pytest.mark.parametrize(("push_id", "headers", "size", "expected"), [
    ("abc", GOOD_HEADERS, 100, 201),
    ("gone1", GOOD_HEADERS, 100, 410),
    ("abc", {**GOOD_HEADERS, "Content-Encoding": "aesgcm"}, 100, 400),
    ("abc", {k: v for k, v in GOOD_HEADERS.items() if k != "TTL"}, 100, 400),
    ("abc", {**GOOD_HEADERS, "Authorization": "Bearer x"}, 100, 400),
    ("abc", GOOD_HEADERS, 4097, 413),
    ("a/b", GOOD_HEADERS, 100, 404),
    ("unknown", GOOD_HEADERS, 100, 404),
])
def test_the_push_emulator_answers_as_a_push_service(push_id: str, headers: dict[str, str],
                                                     size: int, expected: int) -> None:
    import io

    from rafale.cluster.target.push_emulator import PushService

    service = PushService(io.StringIO(), gone=frozenset({"gone1"}),
                          known=frozenset({"abc", "gone1"}))
    assert service.answer(push_id, headers, b"x" * size)[0] == expected


def test_the_push_emulator_throttles_a_share_of_ids_once() -> None:
    import io

    from rafale.cluster.target.push_emulator import PushService

    service = PushService(io.StringIO(), throttle_share=0.1, retry_after_s=2)
    first = {f"id{i}": service.answer(f"id{i}", GOOD_HEADERS, b"x") for i in range(2000)}
    throttled = {i for i, (status, _, _) in first.items() if status == 429}
    assert 120 < len(throttled) < 280
    assert all(first[i][2] == {"Retry-After": "2"} for i in throttled)
    assert all(service.answer(i, GOOD_HEADERS, b"x")[0] == 201 for i in throttled)
