# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # rafale quickstart
#
# This notebook sends HTTPS requests at a controlled rate to a local test server and shows
# what rafale measures, step by step:
#
# 1. start the **embedded target** (Caddy on two loopback addresses, with its own CA);
# 2. start a **run**: a ramp up to a constant rate, spread over sender actors placed by Ray;
# 3. watch the run **live**: charts redrawn every second, from its per-second DataFrame;
# 4. **pause** (nothing is sent) and **resume**, then **change the rate**;
# 5. **stop**, get the **result**, plot throughput, latency and the share of each address;
# 6. **save** the result and load it back.
#
# All traffic goes to loopback (127.0.0.2 and 127.0.0.3). Every cell can be re-run.

# %% [markdown]
# ## Parameters
#
# Change these and run all cells. `ACTORS` is a number of sender processes or `"auto"` (one
# per CPU). `OUT_DIR` is relative to the notebook's working directory (usually this folder).

# %% tags=["parameters"]
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

# %%
import math
import time

from IPython.display import display

import rafale
from rafale.analysis import frames, plots

# %% [markdown]
# ## 1. Start the embedded target
#
# `rafale.Target` runs Caddy on two loopback addresses under one host name, `rafale.test`. It serves
# HTTP/1.1, HTTP/2 and HTTP/3 over TLS, and HTTP/1.1 and h2c over cleartext. Clients reach it
# with curl-style `resolve` entries (`host:port:addr1,addr2`, as `curl --resolve`) and verify
# TLS against its CA file, as they would a real server.

# %%
previous = globals().get("target")
if previous is not None:
    previous.stop()  # re-running this cell replaces the previous target
target = rafale.Target().start()
print(target)
print("URL:     ", target.https_url)
print("resolve: ", target.resolve)
print("CA file: ", target.ca_file.name, "(in the target's temporary directory)")

# %% [markdown]
# ## 2. Start a run
#
# `rafale.start(...)` takes the same options as the command line (the `RunSpec` fields),
# validates them before sending anything, connects to Ray (a local Ray the first time, kept
# afterwards), places the sender actors and returns a `Run` at once; the run goes on in the
# background. Starting a new run while one is still going ends the old one first.

# %%
run = rafale.start(
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

# %% [markdown]
# ## 3. Watch it live
#
# `run.live()` shows the run as charts redrawn every second — throughput (target, sent,
# completed), latency p50 and p99, failed requests, the share of each address — under a
# status line (elapsed, rate, completed, failed). It returns when the run ends, or after
# `for_s` seconds while the run goes on, as here; the last picture stays in the notebook.
# (In a terminal it prints the progress line instead.)
#
# The charts are drawn from `run.frame()`, the per-second DataFrame of what the actors
# reported so far, merged over actors: `intended` (the schedule), `sent`, `completed`,
# `failed`, `late`, latency percentiles in µs… A second appears about a second after it
# ends, when the driver drains the actors.

# %%
run.live(for_s=WATCH_S)
columns = ["second", "intended", "sent", "completed", "failed", "late", "p50_corrected_us",
           "p99_corrected_us", "actors"]
run.frame()[columns].tail()

# %% [markdown]
# ## 4. Pause, check, resume
#
# `pause()` stops sending at once and freezes the schedule, so that `resume()` carries on at
# the same rate without a burst to catch up. The cell waits until the live frame holds every
# full second spent paused and checks that nothing was sent in them.

# %%
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

# %% [markdown]
# ## 5. Change the rate, then stop
#
# `set_rate(r)` sets a new constant target rate for all actors from now on. `stop()` ends
# the run early (it would end by itself after `DURATION_S` seconds of sending); requests in
# flight finish and everything measured is kept. `run.live()` (as `wait()`) returns the
# `RunResult` once the run has ended; its last picture is drawn after the end, from the
# run's final frame: the ramp, the pause, the new rate.

# %%
run.set_rate(NEW_RATE_PER_S)
time.sleep(2.0)
run.stop()
result = run.live()
print(run, "ended:", result.meta["ended"])

# %% [markdown]
# ## 6. The result
#
# `result.summary` holds the totals, mean rates, latency percentiles (from the merged
# HdrHistograms, corrected from the intended send time and raw from the actual send) and the
# shares per address and per HTTP version.

# %%
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

# %% [markdown]
# ### Charts
#
# Throughput: the target rate (grey) against sent and completed, per second — the ramp, the
# pause (a gap), the new rate. Latency: p50/p90/p99 per second, from the intended send time
# (solid) and from the actual send (dashed). Addresses: with `dns="pinned"` the connections
# are spread over both addresses of the target; with `"system"` libcurl uses one.

# %%
plots.show(plots.throughput(result))

# %%
plots.show(plots.latency(result))

# %%
plots.show(plots.address_share(result))
frames.per_address(result)

# %% [markdown]
# ## 7. Save and load back
#
# `result.save(dir)` writes `windows.parquet`, `counts.parquet`, `meta.json` and
# `summary.json`. `analysis.rafale.load(dir)` reads them back with pandas only (no Ray, no
# pycurl), so results can be studied anywhere; `rafale report DIR` renders the charts.
# (Passing `out=...` to `rafale.start` saves during the run as well.)

# %%
saved = result.save(OUT_DIR)
loaded = rafale.load(saved)
print("saved to", saved)
print(loaded)
assert loaded.summary["requests"]["completed"] == requests["completed"]
frames.per_second(loaded)[columns].tail()

# %% [markdown]
# ## 8. Clean up
#
# Stop the target. Ray stays up for the next run in this kernel; it ends with the kernel.

# %%
target.stop()
print(target)
