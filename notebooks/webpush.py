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
# # Web push: one notification to each of N subscribers, once, at a chosen speed
#
# This notebook does the job rafale was made for, end to end, against a local push service:
#
# 1. start the **embedded target in push mode** (Caddy in front of a push-service emulator:
#    201 delivered, 410 for gone subscriptions, 429 once for a share of them);
# 2. generate **N test subscriptions** as browsers would (`PushSubscription.toJSON()`); the
#    notebook keeps their private keys, as the browsers would;
# 3. **prepare**: encrypt the payload for each one (RFC 8291, aes128gcm) and sign one VAPID
#    JWT per push service, spread over the Ray cluster;
# 4. **send** the feed once at a rate with a ramp, retrying 429s after their `Retry-After`;
# 5. chart **delivered / gone / retried per second**, read `gone.jsonl`;
# 6. **decrypt** a sample of what the push service received, to show it is the payload.
#
# All traffic goes to loopback (127.0.0.2 and 127.0.0.3).

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
SUBSCRIPTIONS = 10_000    # test subscribers
GONE_SHARE = 0.02         # share the push service says are gone (410)
THROTTLE_SHARE = 0.05     # share answered 429 once (Retry-After: 1 s)
RATE_PER_S = 2_000        # messages per second after the ramp
RAMP_S = 2                # seconds to ramp up
PAYLOAD = '{"title": "rafale", "body": "Your order has shipped"}'
OUT_DIR = "results/webpush"

# %%
import base64
import collections
import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

import rafale
from rafale.analysis import plots
from rafale.analysis.report import summary_text
from rafale.cluster.target import PushOptions
from rafale.cluster.webpush.crypto import decrypt, new_subscription, new_vapid_pem
from rafale.cluster.webpush.prepare import prepare, send

out = Path(OUT_DIR)
out.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. The push service

# %%
ids = [f"sub{i:06d}" for i in range(SUBSCRIPTIONS)]
every = max(1, round(1 / GONE_SHARE)) if GONE_SHARE else len(ids) + 1
gone = set(ids[::every])
target = rafale.Target(push=PushOptions(gone=tuple(sorted(gone)), throttle_share=THROTTLE_SHARE))
target.start()
print(f"push service at {target.push_url('<id>')}; {len(gone)} of {len(ids)} subscriptions gone")

# %% [markdown]
# ## 2. Test subscriptions (the browsers' side)
#
# Each subscription has an endpoint at the push service and two keys from the browser:
# `p256dh` (its public key) and `auth` (a 16-byte secret). The private keys stay here.

# %%
browsers = {}
with (out / "subscriptions.jsonl").open("w") as lines:
    for push_id in ids:
        subscription, private_key, auth = new_subscription(target.push_url(push_id))
        browsers[push_id] = (private_key, auth)
        lines.write(json.dumps(subscription) + "\n")
(out / "vapid.pem").write_bytes(new_vapid_pem())  # the application server's key
print((out / "subscriptions.jsonl").read_text().splitlines()[0][:160], "...")

# %% [markdown]
# ## 3. Prepare: encrypt for every subscription, spread over the cluster

# %%
prepared = prepare(out / "subscriptions.jsonl", PAYLOAD, out / "vapid.pem",
                   "mailto:ops@rafale.test", out / "feed.parquet", ttl_s=3600, progress=False)
print(f"{prepared.rows:,} messages in {prepared.seconds:.1f} s "
      f"({prepared.messages_per_s:,.0f} msg/s on {prepared.workers} workers)")
pd.read_parquet(prepared.feed).head(3)[["url", "method", "tag"]]

# %% [markdown]
# ## 4. Send once, at a rate with a ramp

# %%
result = send(prepared.feed, rate_per_s=RATE_PER_S, ramp_s=RAMP_S, out=out / "sent",
              retry=3, resolve=target.resolve, cacert=str(target.ca_file))
print(summary_text(result))
result.summary["webpush"]

# %% [markdown]
# ## 5. Delivered, gone and retried per second

# %%
outcomes = result.outcome_frame()
sent = result.frame().set_index("second")
answers = outcomes[outcomes["second"] >= 0].copy()
answers["class"] = answers["status"].map(
    lambda s: {201: "delivered", 202: "delivered", 404: "gone", 410: "gone"}.get(s, "other"))
per_second = answers.groupby(["second", "class"]).size().unstack(fill_value=0)
per_second["retried"] = sent["retries"].reindex(per_second.index, fill_value=0)

fig = Figure(figsize=(10, 4.5), layout="constrained")
ax = fig.subplots()
for name in per_second.columns:
    ax.plot(per_second.index, per_second[name], marker="o", label=name)
ax.set_xlabel("run time (s)")
ax.set_ylabel("messages per second")
ax.set_title(f"Web push to {len(ids):,} subscriptions at {RATE_PER_S:,}/s (ramp {RAMP_S} s)")
ax.legend()
ax.grid(alpha=0.3)
plots.show(fig)

# %%
gone_lines = [json.loads(line) for line in (out / "sent" / "gone.jsonl").read_text().splitlines()]
listed = {line["endpoint"].rsplit("/", 1)[1] for line in gone_lines}
assert listed == gone, "gone.jsonl lists exactly the gone subscriptions"
print(f"gone.jsonl: {len(gone_lines)} subscriptions to delete, e.g. {gone_lines[0]}")

# %% [markdown]
# ## 6. What the push service received is the payload

# %%
log = target.push_log_entries()
delivered = collections.Counter(e["id"] for e in log if e["status"] == 201)
assert set(delivered) == set(ids) - gone and set(delivered.values()) == {1}
samples = [e for e in log if e.get("body_b64")][:3]
for entry in samples:
    private_key, auth = browsers[entry["id"]]
    plain = decrypt(base64.b64decode(entry["body_b64"]), private_key, auth)
    print(entry["id"], entry["bytes"], "bytes ->", plain.decode())
    assert plain.decode() == PAYLOAD
print(f"every subscription got exactly one delivered message ({len(delivered):,})")

# %%
target.stop()
