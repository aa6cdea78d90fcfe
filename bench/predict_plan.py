#!/usr/bin/env python3
"""The scaling plan of docs/scaling.md from `distrifuse-bench --predict` (one sweep invocation).

  bench/predict_plan.py -m MODEL [--gflops 2500] [--threads 32] [--sizes 1024,2048,4096]
      [--ranks 2,4,8,16,32,64] [--gbit 1,10,25,100] [--latency-us 20] [--png docs/scaling_plan.png]
      [--halo allgather|neighbour] [--syncs corrected_async_gn,full_sync]

Prints markdown tables (speedup of patch + corrected_async_gn with the default split batch, and
of patch + full_sync, per link; the slowest link that still hides the exchange) and, with gnuplot
(Debian: gnuplot-nox), writes a PNG of speedup against N.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--gflops", default="2500")
    ap.add_argument("--threads", default="32")
    ap.add_argument("--sizes", default="1024,2048,4096")
    ap.add_argument("--ranks", default="2,4,8,16,32,64")
    ap.add_argument("--gbit", default="1,10,25,100")
    ap.add_argument("--latency-us", default="20")
    ap.add_argument("--png", default="")
    ap.add_argument("--build", default="build")
    ap.add_argument("--halo", default="neighbour", help="neighbour (the runtime, default) or allgather")
    ap.add_argument("--syncs", default="corrected_async_gn,full_sync")
    a = ap.parse_args()
    cmd = [os.path.join(REPO, a.build, "distrifuse-bench"), "--predict", "-m", a.model,
           "--sweep-sizes", a.sizes, "--sweep-ranks", a.ranks, "--sweep-gbit", a.gbit,
           "--gflops", a.gflops, "-t", a.threads, "--link-latency-us", a.latency_us, "--halo", a.halo, "-q"]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    sizes = [int(s) for s in a.sizes.split(",")]
    ranks = [int(n) for n in a.ranks.split(",")]
    gbits = [float(g) for g in a.gbit.split(",")]

    def get(size, n, g, sync):
        for r in rows:
            if r["width"] == size and r["ranks"] == n and r["link_gbit"] == g:
                split = n % 2 == 0
                for p in r["predictions"]:
                    if (p["parallelism"] == "patch" and p["sync_mode"] == sync
                            and p["split_batch"] == split):
                        return p, r["min_hiding_gbit"]
        return None, None

    print("Command: `%s`\n" % " ".join(["distrifuse-bench"] + cmd[1:]))
    for sync in a.syncs.split(","):
        print("Predicted speedup, patch + %s (split batch on), over 1 rank of the same node:\n"
              % sync)
        print("| image | N | " + " | ".join("%g Gbit/s" % g for g in gbits) +
              (" | slowest hiding link |" if sync == "corrected_async_gn" else " |"))
        print("|---|---|" + "---|" * len(gbits) + ("---|" if sync == "corrected_async_gn" else ""))
        for s in sizes:
            for n in ranks:
                cells, hide = [], None
                for g in gbits:
                    p, h = get(s, n, g, sync)
                    hide = h
                    cells.append("%.2fx" % p["speedup"] if p else "-")
                extra = ""
                if sync == "corrected_async_gn":
                    extra = " %s |" % ("%.2f Gbit/s" % hide if hide is not None else "never")
                print("| %d | %d | %s |%s" % (s, n, " | ".join(cells), extra))
        print()
    if a.png and shutil.which("gnuplot"):
        d = tempfile.mkdtemp()
        plots = []
        colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
        dashes = {1024: 1, 2048: 2, 4096: 3}
        for s in sizes:
            for gi, g in enumerate(gbits):
                f = os.path.join(d, "s%d_g%g.dat" % (s, g))
                with open(f, "w") as fh:
                    for n in ranks:
                        p, _ = get(s, n, g, "corrected_async_gn")
                        if p:
                            fh.write("%d %g\n" % (n, p["speedup"]))
                plots.append("'%s' using 1:2 with linespoints lc rgb '%s' dt %d lw 2 "
                             "title '%dpx, %g Gbit/s'" % (f, colours[gi % 4], dashes.get(s, 1), s, g))
        paper = os.path.join(d, "paper.dat")
        with open(paper, "w") as fh:
            fh.write("1 1\n2 1.8\n4 3.4\n8 6.1\n")
        plots.append("'%s' using 1:2 with points pt 7 ps 1.5 lc rgb 'black' "
                     "title 'paper, 8xA100 NVLink, 3840px'" % paper)
        plots.append("x with lines lc rgb 'gray' dt 3 title 'ideal'")
        gp = ("set terminal pngcairo size 1000,700 font ',10'\n"
              "set output '%s'\n"
              "set logscale xy 2\nset xrange [1.5:80]\nset yrange [0.5:80]\n"
              "set xlabel 'ranks N (one 32-core node each)'\nset ylabel 'predicted speedup'\n"
              "set title 'distrifuse-bench --predict: patch + corrected\\_async\\_gn, SDXL, "
              "%s GFLOP/s per node, %s us per collective'\n"
              "set key top left\nset grid\nplot %s\n"
              % (a.png, a.gflops, a.latency_us, ", ".join(plots)))
        with open(os.path.join(d, "plot.gp"), "w") as fh:
            fh.write(gp)
        subprocess.run(["gnuplot", os.path.join(d, "plot.gp")], check=True)
        shutil.rmtree(d)
        print("plot: %s" % a.png, file=sys.stderr)


if __name__ == "__main__":
    main()
