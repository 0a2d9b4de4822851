"""Security of a whole run (CLI and driver): insecure is loud and recorded; header values
reach the target but nothing rafale prints, saves or returns.

Engine-level TLS checks are in test_security.py; that the local Ray listens on loopback
only is in tests/cluster/test_placement.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rafale.analysis import store
from rafale.cluster.progress import format_line
from rafale.cluster.run import start
from rafale.cluster.target import Target
from tests.faults.misbehaving import LOOPBACK, Misbehaving
from tests.faults.test_security import CERT_HOST, make_ca, make_server_context
from tests.helpers import rafale
from tests.rayhead import RayHead

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "SECRET-TOKEN-123"
API_KEY = "KEY-456"
HEADERS = [f"Authorization: Bearer {TOKEN}", f"X-Api-Key: {API_KEY}"]
SECRETS = (TOKEN, API_KEY)


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} found in {where}"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Misbehaving]:
    """An HTTP/1.1 TLS server on 127.0.0.1 with a certificate from a CA rafale is not
    given (so only --insecure gets through); it keeps every request's headers."""
    _, ca, ca_key = make_ca(tmp_path)
    with Misbehaving(tls=make_server_context(tmp_path, ca, ca_key, CERT_HOST)) as server:
        yield server


def test_cli_insecure_warns_and_is_recorded_and_header_values_stay_out(
        tls_server: Misbehaving, tmp_path: Path, ray_head: RayHead) -> None:
    out = tmp_path / "secure"
    rate = 20
    args = ["run", tls_server.url("/", host=CERT_HOST), "--http", "1.1", "--rate", str(rate),
            "--duration", "1s", "--actors", "1", "--insecure", "--out", str(out),
            "--resolve", f"{CERT_HOST}:{tls_server.port}:{LOOPBACK}"]
    for header in HEADERS:
        args += ["-H", header]
    done = rafale(*args, head=ray_head)
    assert done.returncode == 0, done.stderr

    # insecure: a warning on stderr, and recorded
    warnings = [line for line in done.stderr.splitlines() if line.startswith("rafale: warning")]
    assert any("insecure" in line and "NOT verified" in line for line in warnings), done.stderr
    result = store.load(out)
    assert result.meta["insecure"] is True and result.meta["spec"]["insecure"] is True
    requests = result.summary["requests"]
    assert requests["completed"] == requests["sent"] == rate  # got through an unknown CA

    # the target did receive both header values, on every request...
    assert len(tls_server.headers) == rate
    for received in tls_server.headers:
        assert received["authorization"] == f"Bearer {TOKEN}"
        assert received["x-api-key"] == API_KEY
    # ... and they are nowhere in the progress lines, summary, or any saved file (charts too)
    assert "achieved" in done.stderr and "latency (ms)" in done.stdout
    assert_no_secret(done.stdout, "stdout")
    assert_no_secret(done.stderr, "stderr")
    saved = sorted(p for p in out.rglob("*") if p.is_file())
    assert {"meta.json", "summary.json", "windows.parquet"} <= {p.name for p in saved}
    assert any(p.suffix in (".png", ".svg", ".html") for p in saved), saved
    for path in saved:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, path)
    names = [name for name, _ in result.meta["spec"]["headers"]]
    assert names == ["Authorization", "X-Api-Key"]  # names kept, values not


def test_driver_never_returns_header_values(target: Target, local_ray: None) -> None:
    """Run.meta(), repr(spec), repr(run), the progress line, the windows and the result,
    while running and at the end; the embedded target's access log shows they were sent."""
    lines_before, mark = target.count_access_log(), target.access_log_mark()
    with pytest.warns(UserWarning, match="insecure"):
        run = start(urls=target.https_url, resolve=target.resolve, http="2", rate_per_s=50,
                    duration_s=1.5, actors=1, insecure=True, headers=HEADERS)
    texts = {"repr(spec)": repr(run.spec), "str(spec)": str(run.spec), "repr(run)": repr(run),
             "meta running": json.dumps(run.meta(), default=str)}
    result = run.wait(timeout=60)
    texts.update({
        "meta done": json.dumps(run.meta(), default=str),
        "result meta": json.dumps(result.meta, default=str),
        "summary": json.dumps(result.summary, default=str),
        "progress line": format_line(run.snapshot()),
        "windows": run.windows().to_json(),
        "frame": result.frame().to_csv(),
    })
    for where, text in texts.items():
        assert_no_secret(text, where)
    assert run.meta()["insecure"] is True
    assert result.summary["requests"]["completed"] == 75

    # Caddy logs request headers (Authorization itself as "REDACTED"): both were sent.
    sent = result.summary["requests"]["sent"]
    target.wait_access_log(lines_before + sent)
    entries = [e for e in target.access_log_entries(mark)
               if e["request"]["headers"].get("X-Api-Key") == [API_KEY]]
    assert len(entries) == sent
    assert all(e["request"]["headers"].get("Authorization") == ["REDACTED"] for e in entries)
    assert {e["request"]["proto"] for e in entries} == {"HTTP/2.0"}


QUERY_SECRET = "q-s3cret-789"


def test_url_query_values_reach_the_target_but_no_output_or_file(target: Target, tmp_path: Path,
                                                                  ray_head: RayHead) -> None:
    url = f"{target.https_url}?token={QUERY_SECRET}&page=2"
    options = ["--cacert", str(target.ca_file), *(f"--resolve={r}" for r in target.resolve)]
    lines_before, mark = target.count_access_log(), target.access_log_mark()
    out = tmp_path / "query"
    done = rafale("run", url, "--rate", "20", "--duration", "1s", "--actors", "1", "--out",
                  str(out), "--no-charts", *options, head=ray_head)
    assert done.returncode == 0, done.stderr
    assert QUERY_SECRET not in done.stdout + done.stderr
    for path in (p for p in out.rglob("*") if p.is_file()):
        assert QUERY_SECRET.encode() not in path.read_bytes(), path
    meta = store.load(out).meta
    assert meta["spec"]["urls"] == [f"{target.https_url}?token=<redacted>&page=<redacted>"]
    target.wait_access_log(lines_before + 20)
    uris = [e["request"]["uri"] for e in target.access_log_entries(mark)]
    assert uris.count(f"/?token={QUERY_SECRET}&page=2") == 20  # sent as given

    # A bad-input message names the URL, redacted.
    bad = rafale("run", url.replace("https://", "http://"), "--http", "3", "--duration", "1s")
    assert bad.returncode == 2 and "token=<redacted>" in bad.stderr, bad.stderr
    assert QUERY_SECRET not in bad.stderr

    # --show-query keeps the query in what is saved.
    shown = tmp_path / "shown"
    done = rafale("run", url, "--rate", "5", "--duration", "1s", "--actors", "1", "--out",
                  str(shown), "--no-charts", "--show-query", *options, head=ray_head)
    assert done.returncode == 0, done.stderr
    assert store.load(shown).meta["spec"]["urls"] == [url]
