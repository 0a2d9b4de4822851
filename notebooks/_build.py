"""Write the notebooks of this folder (outputs cleared): ``python notebooks/_build.py``.

The notebooks are generated so that their JSON stays clean and reviewable; edit the cells
here, run this script, and commit both. Each notebook's first code cell is tagged
``parameters`` (papermill-style); tests/test_notebooks.py replaces it with short values.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

HERE = Path(__file__).resolve().parent


def _cells(name: str, spec: list[tuple[str, str]]) -> list[NotebookNode]:
    cells = []
    first_code = True
    for i, (kind, source) in enumerate(spec):
        text = source.strip("\n")
        if kind == "md":
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell(text)
            if first_code:
                cell.metadata["tags"] = ["parameters"]
                first_code = False
        cell.id = f"{name}-{i:02d}"
        cells.append(cell)
    return cells


def notebook(name: str, spec: list[tuple[str, str]]) -> NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.cells = _cells(name, spec)
    nbformat.validate(nb)
    return nb


SHOW = '''
def show(fig: Figure, dpi: int = 80) -> None:
    """Display a matplotlib Figure inline as a PNG (analysis.plots returns Figures)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    display(Image(buffer.getvalue()))
'''

QUICKSTART: list[tuple[str, str]] = [
    ("md", """
# rafale quickstart

This notebook sends HTTPS requests at a controlled rate to a local test server and shows
what rafale measures, step by step:

1. start the **embedded target** (Caddy on two loopback addresses, with its own CA);
2. start a **run**: a ramp up to a constant rate, spread over sender actors placed by Ray;
3. watch the **live per-second DataFrame** and chart while it runs;
4. **pause** (nothing is sent) and **resume**, then **change the rate**;
5. **stop**, get the **result**, plot throughput, latency and the share of each address;
6. **save** the result and load it back.

All traffic goes to loopback (127.0.0.2 and 127.0.0.3). Every cell can be re-run.
"""),
    ("md", """
## Parameters

Change these and run all cells. `ACTORS` is a number of sender processes or `"auto"` (one
per CPU). `OUT_DIR` is relative to the notebook's working directory (usually this folder).
"""),
    ("code", """
DURATION_S = 30           # run length in seconds (a pause does not count)
RATE_PER_S = 500          # target rate after the ramp, requests per second
RAMP_S = 3                # seconds to ramp up from 0 to RATE_PER_S
ACTORS = 2                # sender processes, or "auto" for one per CPU
HTTP = "2"                # "1.1", "2", "3" (over https)
DNS = "pinned"            # "system" (libcurl picks one address) or "pinned" (all addresses)
WATCH_S = 5               # seconds of the run to watch live
PAUSE_S = 2.5             # how long to pause
NEW_RATE_PER_S = 800      # rate after set_rate
OUT_DIR = "results/quickstart"
"""),
    ("code", """
import io
import math
import time
from pathlib import Path

from IPython.display import Image, clear_output, display
from matplotlib.figure import Figure

import cluster
from analysis import frames, plots, store
from cluster.target import Target

""" + SHOW),
    ("md", """
## 1. Start the embedded target

`Target` runs Caddy on two loopback addresses under one host name, `rafale.test`. It serves
HTTP/1.1, HTTP/2 and HTTP/3 over TLS, and HTTP/1.1 and h2c over cleartext. Clients reach it
with curl-style `resolve` entries (`host:port:addr1,addr2`, as `curl --resolve`) and verify
TLS against its CA file, as they would a real server.
"""),
    ("code", """
previous = globals().get("target")
if previous is not None:
    previous.stop()  # re-running this cell replaces the previous target
target = Target().start()
print(target)
print("URL:     ", target.https_url)
print("resolve: ", target.resolve)
print("CA file: ", target.ca_file)
"""),
    ("md", """
## 2. Start a run

`cluster.start(...)` takes the same options as the command line (the `RunSpec` fields),
validates them before sending anything, connects to Ray (a local Ray the first time, kept
afterwards), places the sender actors and returns a `Run` at once; the run goes on in the
background. Starting a new run while one is still going ends the old one first.
"""),
    ("code", """
run = cluster.start(
    urls=target.https_url,
    resolve=target.resolve,
    cacert=str(target.ca_file),
    http=HTTP,
    dns=DNS,
    rate_per_s=RATE_PER_S,
    ramp_s=RAMP_S,
    duration_s=DURATION_S,
    actors=ACTORS,
    label="quickstart",
)
run
"""),
    ("md", """
## 3. Watch it live

`run.frame()` is the per-second DataFrame of what the actors reported so far, merged over
actors: `intended` (the schedule), `sent`, `completed`, `failed`, `late`, latency
percentiles in µs… A second appears about a second after it ends, when the driver drains
the actors. The loop below redraws the last rows and the throughput chart every second
until `WATCH_S` seconds are in; `run.watch()` shows the progress and the last rows until
the run ends.
"""),
    ("code", """
columns = ["second", "intended", "sent", "completed", "failed", "late", "p50_corrected_us",
           "p99_corrected_us", "actors"]
while not run.done:
    live = run.frame()
    clear_output(wait=True)
    print(f"{run!r}, {run.elapsed_s:.1f} s in")
    if live.empty:
        print("waiting for the first second…")
    else:
        display(live[columns].tail(5))
        show(plots.throughput(run.result()))
        if len(live) >= WATCH_S:
            break
    time.sleep(1.0)
"""),
    ("md", """
## 4. Pause, check, resume

`pause()` stops sending at once and freezes the schedule, so that `resume()` carries on at
the same rate without a burst to catch up. The cell waits until the live frame holds every
full second spent paused and checks that nothing was sent in them.
"""),
    ("code", """
assert PAUSE_S >= 1, "pause at least 1 s to see a whole second without sending"
run.pause()
paused_at_s = run.elapsed_s
time.sleep(PAUSE_S)
resumed_at_s = run.elapsed_s
paused_seconds = list(range(math.ceil(paused_at_s), math.floor(resumed_at_s)))

deadline = time.monotonic() + 10
live = run.frame()
while (live.empty or live["second"].max() < paused_seconds[-1]) and time.monotonic() < deadline:
    time.sleep(0.2)
    live = run.frame()
during_pause = live[live["second"].isin(paused_seconds)]
display(during_pause[["second", "intended", "sent", "completed"]])
assert len(during_pause) == len(paused_seconds), "the paused seconds were not reported"
assert during_pause["sent"].sum() == 0, "requests were sent while paused"
print(f"paused from {paused_at_s:.1f} s to {resumed_at_s:.1f} s: "
      f"0 requests sent in seconds {paused_seconds}")
run.resume()
"""),
    ("md", """
## 5. Change the rate, then stop

`set_rate(r)` sets a new constant target rate for all actors from now on. `stop()` ends
the run early (it would end by itself after `DURATION_S` seconds of sending); requests in
flight finish and everything measured is kept. `wait()` returns the `RunResult`.
"""),
    ("code", """
run.set_rate(NEW_RATE_PER_S)
time.sleep(2.0)
run.stop()
result = run.wait(timeout=60)
print(run, "ended:", result.meta["ended"])
result.frame()[columns]
"""),
    ("md", """
## 6. The result

`result.summary` holds the totals, mean rates, latency percentiles (from the merged
HdrHistograms, corrected from the intended send time and raw from the actual send) and the
shares per address and per HTTP version.
"""),
    ("code", """
summary = result.summary
requests = summary["requests"]
latency_ms = {k: v / 1000 for k, v in summary["latency_corrected_us"].items()
              if k != "count" and v is not None}
print("requests:       ", requests)
print("rate (req/s):   ", {k: round(v, 1) for k, v in summary["rate_per_s"].items()})
print("latency (ms):   ", {k: round(v, 2) for k, v in latency_ms.items()})
print("address share:  ", summary["address_share"])
print("HTTP versions:  ", summary["version_share"])
assert requests["completed"] > 0
"""),
    ("md", """
### Charts

Throughput: the target rate (grey) against sent and completed, per second — the ramp, the
pause (a gap), the new rate. Latency: p50/p90/p99 per second, from the intended send time
(solid) and from the actual send (dashed). Addresses: with `dns="pinned"` the connections
are spread over both addresses of the target; with `"system"` libcurl uses one.
"""),
    ("code", "show(plots.throughput(result))"),
    ("code", "show(plots.latency(result))"),
    ("code", """
show(plots.address_share(result))
frames.per_address(result)
"""),
    ("md", """
## 7. Save and load back

`result.save(dir)` writes `windows.parquet`, `counts.parquet`, `meta.json` and
`summary.json`. `analysis.store.load(dir)` reads them back with pandas only (no Ray, no
pycurl), so results can be studied anywhere; `rafale report DIR` renders the charts.
(Passing `out=...` to `cluster.start` saves during the run as well.)
"""),
    ("code", """
saved = result.save(OUT_DIR)
loaded = store.load(saved)
print("saved to", Path(saved).resolve())
print(loaded)
assert loaded.summary["requests"]["completed"] == requests["completed"]
frames.per_second(loaded)[columns].tail()
"""),
    ("md", """
## 8. Clean up

Stop the target. Ray stays up for the next run in this kernel; it ends with the kernel.
"""),
    ("code", """
target.stop()
print(target)
"""),
]

PROTOCOLS: list[tuple[str, str]] = [
    ("md", """
# HTTP versions × DNS modes

This notebook runs the **matrix**: every HTTP version against both DNS modes, one run after
the other at the same rate, against the embedded target and its two loopback addresses:

- HTTP/1.1, HTTP/2 and HTTP/3 over https, and h2c (HTTP/2 without TLS) over http;
- DNS `system`: libcurl resolves the name and keeps using one address;
- DNS `pinned`: rafale resolves every address and pins each connection to one of them,
  round-robin, so that all addresses share the load.

Then it compares the runs in a table and charts and reads what they show. The same
experiment runs from the command line with `rafale matrix` or `make demo`.
"""),
    ("md", """
## Parameters

`RATE_PER_S = None` sends as fast as the in-flight cap allows (the closed model) instead of
at a fixed rate: use it to compare maximum throughput rather than latency at a given rate.
"""),
    ("code", """
DURATION_S = 10                   # seconds per run
RATE_PER_S = 1000                 # req/s per run, or None for as fast as possible
RAMP_S = 1                        # ramp-up seconds (ignored when RATE_PER_S is None)
ACTORS = "auto"                   # sender processes per run, or "auto" (one per CPU)
HTTPS_VERSIONS = ["1.1", "2", "3"]
CLEARTEXT_VERSIONS = ["2c"]
DNS_MODES = ["system", "pinned"]
OUT_DIR = "results/protocols_and_dns"
"""),
    ("code", """
import io
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import Image, Markdown, display
from matplotlib.figure import Figure

from analysis import compare, frames, plots, store
from cluster.matrix import plan, run_matrix
from cluster.target import Target

""" + SHOW),
    ("md", """
## 1. The target and the plan

The embedded target listens on 127.0.0.2 and 127.0.0.3 under one name. `plan` builds and
validates every run first (a bad option fails before any traffic) and skips combinations
that cannot work (HTTP/2 and HTTP/3 need https, h2c needs http) with a note.
"""),
    ("code", """
previous = globals().get("target")
if previous is not None:
    previous.stop()  # re-running this cell replaces the previous target
target = Target().start()
print(target)

base: dict[str, Any] = {"duration_s": DURATION_S, "resolve": target.resolve,
                        "cacert": str(target.ca_file)}
if RATE_PER_S is not None:
    base.update(rate_per_s=RATE_PER_S, ramp_s=RAMP_S)
cases = []
for url, versions in ((target.https_url, HTTPS_VERSIONS), (target.http_url, CLEARTEXT_VERSIONS)):
    if versions:  # an empty list skips that scheme
        planned, notes = plan(base, [url], versions, DNS_MODES, actors=[ACTORS], out=OUT_DIR)
        cases += planned
        for note in notes:
            print("note:", note)
print(f"{len(cases)} runs of {DURATION_S} s:")
for case in cases:
    print(" ", case.label, case.spec.urls[0])
"""),
    ("md", """
## 2. Run the matrix

Each run is saved in its own folder under `OUT_DIR`; at the end `run_matrix` writes the
comparison (`comparison.md`, `.csv`, `.png`, `scaling.png`) there too. One line per run is
printed as it finishes.
"""),
    ("code", """
def describe(case: Any, result: Any) -> None:
    s = result.summary
    shares = ", ".join(f"{a} {v:.0%}" for a, v in sorted(s["address_share"].items()))
    print(f"{case.label:<28} {s['rate_per_s']['completed']:9.1f} req/s  "
          f"failed {s['requests']['failed']:<5} addresses: {shares or '-'}", flush=True)


results, written = run_matrix(cases, OUT_DIR, on_run=describe)
for path in written:
    print("wrote", path)
"""),
    ("md", """
## 3. The comparison table

One row per run (`analysis.compare.compare`): achieved requests/s, latency percentiles
corrected for coordinated omission (from the intended send time) and raw (from the actual
send), failures, late requests, and how many remote addresses were used.
"""),
    ("code", """
table = compare.compare(results)
shown = ["label", "http", "dns", "actors", "sent", "completed", "failed", "late",
         "achieved_per_s", "p50_corrected_us", "p99_corrected_us", "p99_raw_us",
         "addresses_used", "max_address_share"]
display(Markdown(compare.to_markdown(table[shown])))
"""),
    ("md", """
## 4. Charts

Requests/s per HTTP version (bars, one colour per DNS mode) with p50 and p99 latency
(markers, right axis); then, for one HTTP version, the share of requests per remote
address with each DNS mode.
"""),
    ("code", "show(plots.comparison(table))"),
    ("code", """
by_label = {case.label: result for case, result in zip(cases, results, strict=True)}
shown_http = "2" if "2" in table["http"].tolist() else table["http"].iloc[0]
for mode in DNS_MODES:
    for case in cases:
        if case.spec.http == shown_http and case.spec.dns == mode:
            show(plots.address_share(by_label[case.label]))
            break
"""),
    ("md", """
## 5. What the numbers show

The facts behind the reading are computed and checked here, from the results above.
"""),
    ("code", """
facts = pd.DataFrame(
    {
        "label": [c.label for c in cases],
        "http": [c.spec.http for c in cases],
        "dns": [c.spec.dns for c in cases],
        "negotiated": [", ".join(sorted(r.summary["version_share"])) for r in results],
        "addresses_used": [len(r.summary["address_share"]) for r in results],
        "completed": [r.summary["requests"]["completed"] for r in results],
        "error_share": [r.summary["error_share"] for r in results],
        "late_share": [frames.run_row(r)["late_share"] for r in results],
    }
)
display(facts)
addresses_by_mode = facts.groupby("dns")["addresses_used"].agg(["min", "max"])
print("addresses used per DNS mode (min, max over runs):")
print(addresses_by_mode.to_string())
print("target addresses:", len(target.addresses))

assert (facts["completed"] > 0).all(), "a run completed no request"
if "pinned" in addresses_by_mode.index:
    assert addresses_by_mode.loc["pinned", "min"] == len(target.addresses)
if "system" in addresses_by_mode.index:
    assert addresses_by_mode.loc["system", "max"] == 1
expected = facts["http"].str.removesuffix("c")  # h2c is HTTP/2 on the wire
assert (facts["negotiated"] == expected).all(), "a run fell back to another HTTP version"
print("every run used the HTTP version it asked for")
"""),
    ("md", """
**Reading.**

- **DNS.** With `system`, libcurl resolves `rafale.test` and sends every request to one
  address; the other one idles. With `pinned`, rafale pins connections to every resolved
  address in turn, so both addresses share the load. Against a real service whose name
  resolves to several servers, this is the difference between loading one of them and
  loading all of them — the point of the original 180,000 req/s experiment.
- **HTTP versions.** Every run negotiated the version it asked for (checked above), so
  the rows compare HTTP/1.1, HTTP/2, HTTP/3 and h2c themselves, not a silent fallback.
- **Rate and latency.** At a fixed rate every run is asked for the same requests, so
  req/s only differs when a run could not keep up (then `late` and the corrected latency
  grow); compare the latency columns. Set `RATE_PER_S = None` to compare the highest
  throughput of each combination instead. On loopback the numbers measure the client and
  the local server sharing this machine's CPUs, not a network.
"""),
    ("md", """
## 6. From disk

Every run was saved under `OUT_DIR`; `analysis.store.load` reads one back with pandas only,
and `analysis.compare.load_all(OUT_DIR)` reads them all (or `rafale report OUT_DIR`).
"""),
    ("code", """
reloaded = [store.load(case.spec.out) for case in cases]
assert [r.summary["requests"] for r in reloaded] == [r.summary["requests"] for r in results]
print(f"reloaded {len(reloaded)} runs from {Path(OUT_DIR).resolve()}")
print((Path(OUT_DIR) / compare.COMPARISON_MD).read_text())
"""),
    ("code", """
target.stop()
print(target)
"""),
]


def main() -> None:
    for name, spec in (("quickstart", QUICKSTART), ("protocols_and_dns", PROTOCOLS)):
        path = HERE / f"{name}.ipynb"
        nbformat.write(notebook(name, spec), path)
        print("wrote", path)


if __name__ == "__main__":
    main()
