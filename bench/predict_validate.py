#!/usr/bin/env python3
"""Predicted vs measured step times: `distrifuse-bench --predict` against cluster_bench runs.

  bench/predict_validate.py -m MODEL [--runs bench/data/cluster256_quiet.jsonl] [-W 256 -H 256]
      [--gflops G] [--link-gbit shm=50,10gbit=6.0,1gbit=0.96] [--latency-us 20]
      [--tolerance 0.15] [--build build]

The runs (bench/cluster_bench.py's DIR/runs.jsonl: one JSON object per run with link, config,
step_s, compute_s, wait_s, gather_s, bytes) are the comparison set; the median step of every
(link, configuration) is compared with the --predict step of the same parallelism, sync mode and
split batch at that link's rate. The compute rate comes from --gflops (a separate calibration)
or, absent, from --predict's own calibration forwards (CPU seconds of one forward on this
machine): never from the compared runs. Link rates: what the emulated links carry (tbf's
"10gbit" moves ~6 Gbit/s on this 2-core VM, 1gbit 0.96 Gbit/s: tests cluster_link_rate; shared
memory: a fast link). Prints a markdown table (measured, predicted, error) and exits 1 when an
error exceeds the tolerance.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = {  # cluster_bench configuration -> (parallelism, sync_mode, split_batch)
    "patch_async": ("patch", "corrected_async_gn", False),
    "patch_full_sync": ("patch", "full_sync", False),
    "patch_sync_gn": ("patch", "sync_gn", False),
    "naive_patch": ("naive_patch", None, False),
    "tensor": ("tensor", None, False),
    "cfg_split": ("patch", "corrected_async_gn", True),
}


def kv(s):
    return {k: float(v) for k, v in (p.split("=") for p in s.split(",") if p)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--runs", default=os.path.join(REPO, "bench", "data",
                                                   "cluster256_quiet.jsonl"))
    ap.add_argument("-W", "--width", type=int, default=256)
    ap.add_argument("-H", "--height", type=int, default=256)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--gflops", type=float, default=0)
    ap.add_argument("--link-gbit", default="shm=50,10gbit=6.0,1gbit=0.96")
    ap.add_argument("--latency-us", default="20")
    ap.add_argument("--tolerance", type=float, default=0.15)
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    rates = kv(a.link_gbit)
    recs = [json.loads(l) for l in open(a.runs) if l.strip()]
    groups = {}
    for r in recs:
        groups.setdefault((r["link"], r["config"]), []).append(r)
    bench = os.path.join(REPO, a.build, "distrifuse-bench")
    G = a.gflops
    if G <= 0:  # one calibration for all rows
        out = subprocess.run([bench, "--predict", "-m", a.model, "-W", str(a.width), "-H",
                              str(a.height), "--ranks", str(a.ranks), "-t", "1"], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        m = re.search(r"compute ([0-9.]+) GFLOP/s per rank \(calibration: (.*)\)", out)
        if not m:
            sys.exit("predict_validate: no calibration line in --predict's output")
        G = float(m.group(1))
        print("calibration (--predict, this machine): %s GFLOP/s per rank, %s\n"
              % (m.group(1), m.group(2)))
    else:
        print("calibration: --gflops %g (given)\n" % G)
    preds = {}
    for link in sorted({k[0] for k in groups}):
        if link not in rates:
            sys.exit("predict_validate: no --link-gbit rate for link '%s'" % link)
        out = subprocess.run([bench, "--predict", "-m", a.model, "-W", str(a.width), "-H",
                              str(a.height), "--ranks", str(a.ranks), "-t", "1", "--gflops",
                              str(G), "--link-gbit", str(rates[link]), "--link-latency-us",
                              a.latency_us, "-q"], check=True, stdout=subprocess.PIPE,
                             text=True).stdout
        preds[link] = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    print("| link | configuration | runs | measured step s | predicted step s | error |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for (link, cfg), rs in sorted(groups.items(), key=lambda kv_: (kv_[0][1], kv_[0][0])):
        par, sync, split = CONF[cfg]
        meas = statistics.median(r["step_s"] for r in rs)
        p = [q for q in preds[link]["predictions"] if q["parallelism"] == par
             and q["sync_mode"] == sync and q["split_batch"] == split]
        if not p:
            print("| %s | %s | %d | %.3f | - | - |" % (link, cfg, len(rs), meas))
            continue
        err = p[0]["step_s"] / meas - 1
        worst = max(worst, abs(err))
        print("| %s | %s | %d | %.3f | %.3f | %+.1f%% |" % (link, cfg, len(rs), meas,
                                                         p[0]["step_s"], 100 * err))
    print("\nlargest error %.1f%% (tolerance %.0f%%)" % (100 * worst, 100 * a.tolerance))
    return 0 if worst <= a.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
