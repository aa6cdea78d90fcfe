#!/usr/bin/env python3
"""Benchmark distrifuse-bench on the emulated cluster (scripts/cluster.sh) against shared memory.

  bench/cluster_bench.py -m MODEL [-W 768] [-H 768] [--steps 6] [--repeats 2]
      [--links shm,10gbit,1gbit] [--configs patch_async,patch_full_sync,...]
      [--progress test] [--ranks 2] [--out DIR] [--build build] [--extra "ARGS"]

Every run: `distrifuse-bench --warmup-steps 1 --warmup-times 0 --test-times 1 -t 1
--output-type latent`, 2 ranks (1 per node over TCP, or 2 processes over shared memory). The
repeats alternate: all links and configurations once, then again; the table gives medians.
Configurations: patch_async (patch + corrected_async_gn), patch_full_sync, patch_sync_gn,
naive_patch, tensor (all --no-split-batch) and cfg_split (the default split batch, patch).
Columns: the step time of the configuration's representative step (steady async, else the
step kind the bench reports), its compute and blocked-on-exchange times, and bytes per rank per
step (sent + received). Raw JSON lines go to DIR/runs.jsonl, the table to stdout.
"""
import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "patch_async": ["--no-split-batch", "--parallelism", "patch", "--sync-mode",
                    "corrected_async_gn"],
    "patch_full_sync": ["--no-split-batch", "--parallelism", "patch", "--sync-mode", "full_sync"],
    "patch_sync_gn": ["--no-split-batch", "--parallelism", "patch", "--sync-mode", "sync_gn"],
    "naive_patch": ["--no-split-batch", "--parallelism", "naive_patch"],
    "tensor": ["--no-split-batch", "--parallelism", "tensor"],
    "cfg_split": ["--parallelism", "patch", "--sync-mode", "corrected_async_gn"],
}

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(REPO, "scripts", "cluster.sh")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def run_one(a, link, cfg, progress):
    bench = os.path.join(REPO, a.build, "distrifuse-bench")
    args = [bench, "-m", a.model, "-W", str(a.width), "-H", str(a.height), "--steps",
            str(a.steps), "--warmup-steps", "1", "--warmup-times", "0", "--test-times", "1",
            "-t", "1", "--output-type", "latent", "-q", "--comm-progress", progress]
    args += CONFIGS[cfg] + a.extra.split()
    if link == "shm":
        cmd = ["mpiexec", "--oversubscribe", "--bind-to", "none", "-n", str(a.ranks)] + args
    else:
        cmd = [CLUSTER, "mpirun", "-n", str(a.ranks), "--"] + args
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        sys.exit("cluster_bench: %s %s failed (exit %d)" % (link, cfg, p.returncode))
    line = [l for l in p.stdout.splitlines() if l.startswith("{")][-1]
    j = json.loads(line)
    kind = j.get("async_step_kind", "sync")
    if kind == "sync":
        # every step synchronous: the bench's figures are those of the steps after W+1 (the
        # step_kinds "sync" entry also averages steps 0..W+1); compute = step - wait - gather
        wait, gather = j["wait_s_per_step"], j["gather_s_per_step"]
        comp = j["async_step_s"] - wait - gather
    else:
        k = j["step_kinds"][kind]
        comp, wait, gather = k["compute_s"], k["wait_s"], k["gather_s"]
    rec = {"link": link, "config": cfg, "progress": progress, "kind": kind,
           "step_s": j["async_step_s"], "compute_s": comp, "wait_s": wait,
           "gather_s": gather, "bytes": j["bytes_per_step"], "json": j,
           "sync_step_s": j["step_kinds"].get("sync", {}).get("step_s"),
           "latency_s": j["latency_s"], "wall_s": time.time() - t0}
    print("cluster_bench: %-7s %-16s %-6s %s step %.3f s (compute %.3f, wait %.3f, gather "
          "%.3f), %.2f MiB/step" % (link, cfg, progress, kind, rec["step_s"], rec["compute_s"],
                                   rec["wait_s"], rec["gather_s"], rec["bytes"] / 1048576),
          file=sys.stderr, flush=True)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-W", "--width", type=int, default=768)
    ap.add_argument("-H", "--height", type=int, default=768)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2,
                    help="0: print the table of the runs already in DIR/runs.jsonl")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--links", default="shm,10gbit,1gbit")
    ap.add_argument("--configs", default="patch_async,patch_full_sync,naive_patch,cfg_split")
    ap.add_argument("--progress", default="test", help="comma list of none,test,thread")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "cluster_bench"))
    ap.add_argument("--build", default="build")
    ap.add_argument("--extra", default="", help="more distrifuse-bench arguments (one string)")
    a = ap.parse_args()
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    links = a.links.split(",")
    cfgs = a.configs.split(",")
    progs = a.progress.split(",")
    for c in cfgs:
        if c not in CONFIGS:
            sys.exit("cluster_bench: unknown configuration '%s' (%s)" % (c, ", ".join(CONFIGS)))
    os.makedirs(a.out, exist_ok=True)
    # the namespaces dfnode* are global: hold the lock tests/cluster/cluster_test.sh takes
    lock = open(os.environ.get("DF_CLUSTER_LOCK", "/tmp/df-cluster.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    recs = []
    with open(os.path.join(a.out, "runs.jsonl"), "a") as f:
        try:
            for rep in range(a.repeats):
                for link in links:
                    if link != "shm":
                        sh([CLUSTER, "up", str(a.ranks), "--rate", link], stdout=subprocess.DEVNULL)
                    for cfg in cfgs:
                        for prog in progs:
                            r = run_one(a, link, cfg, prog)
                            r["repeat"] = rep
                            f.write(json.dumps(r) + "\n")
                            f.flush()
                            recs.append(r)
        finally:
            subprocess.run([CLUSTER, "down"], stdout=subprocess.DEVNULL)
    if a.repeats == 0:  # table only, from the runs recorded in DIR/runs.jsonl
        with open(os.path.join(a.out, "runs.jsonl")) as f:
            recs = [json.loads(l) for l in f if l.strip()]
    print("| link | configuration | progress | step kind | step s | compute s | blocked s | "
          "gather s | MiB/rank/step | runs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cfg in cfgs:
        for link in links:
            for prog in progs:
                rs = [r for r in recs if r["link"] == link and r["config"] == cfg
                      and r["progress"] == prog]
                if not rs:
                    continue
                med = lambda key: statistics.median(r[key] for r in rs)
                print("| %s | %s | %s | %s | %.3f | %.3f | %.3f | %.3f | %.2f | %d |"
                      % (link, cfg, prog, rs[0]["kind"], med("step_s"), med("compute_s"),
                         med("wait_s"), med("gather_s"), med("bytes") / 1048576, len(rs)))


if __name__ == "__main__":
    main()
