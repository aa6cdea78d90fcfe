#!/usr/bin/env bash
# Distributed step benchmark (issue: DistriFusion over MPI): runs distrifuse-bench on one model
# and size for the configurations that matter and prints one table of per-step times.
#   bench/bench_dist.sh MODEL [SIZE] [STEPS]      (defaults 1024, 4; warm-up steps 1)
# Configurations (1 thread per rank): 1 rank; 1 rank x 2 threads; 2 ranks CFG split;
# 2 ranks --no-split-batch with patch (corrected_async_gn), naive_patch, full_sync, sync_gn.
# Steady async step = the mean step time after the first asynchronous step; speedups are the
# 1-rank 1-thread step time over each configuration's step time. BUILD=dir selects the build.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bench/bench_dist.sh MODEL [SIZE] [STEPS]}
SIZE=${2:-1024}
STEPS=${3:-4}
B=${BUILD:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIEXEC=${MPIEXEC:-mpiexec --oversubscribe --mca mpi_yield_when_idle 0}
OUT=${OUT:-$B/bench_dist}
mkdir -p "$OUT"
common=(-m "$MODEL" -W "$SIZE" -H "$SIZE" --warmup-times 0 --test-times 1 --output-type latent
        --warmup-steps 1 -q)

run() { # name steps launcher... -- args...
  local name=$1 steps=$2
  shift 2
  echo "bench_dist: $name ..." >&2
  "$@" "${common[@]}" --steps "$steps" >"$OUT/$name.json" 2>"$OUT/$name.log" ||
    { cat "$OUT/$name.log" >&2; exit 1; }
}
run 1rank_t1 2 "./$B/distrifuse-bench" -t 1
run 1rank_t2 2 "./$B/distrifuse-bench" -t 2
run 2ranks_cfg_split 2 $MPIEXEC -n 2 "./$B/distrifuse-bench" -t 1
run 2ranks_patch "$STEPS" $MPIEXEC -n 2 "./$B/distrifuse-bench" -t 1 --no-split-batch
run 2ranks_naive_patch 3 $MPIEXEC -n 2 "./$B/distrifuse-bench" -t 1 --no-split-batch \
  --parallelism naive_patch
run 2ranks_full_sync 2 $MPIEXEC -n 2 "./$B/distrifuse-bench" -t 1 --no-split-batch \
  --sync-mode full_sync
run 2ranks_sync_gn "$STEPS" $MPIEXEC -n 2 "./$B/distrifuse-bench" -t 1 --no-split-batch \
  --sync-mode sync_gn
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
names = ["1rank_t1", "1rank_t2", "2ranks_cfg_split", "2ranks_patch", "2ranks_naive_patch",
         "2ranks_full_sync", "2ranks_sync_gn"]
rows = {}
for n in names:
    with open(os.path.join(out, n + ".json")) as f:
        rows[n] = json.loads(f.read().strip().splitlines()[-1])
base = rows["1rank_t1"]["async_step_s"]
print("| configuration | step s | kind | speedup vs 1 rank x 1 thread | wait s/step | MiB/step |")
print("|---|---|---|---|---|---|")
for n in names:
    j = rows[n]
    print("| %s | %.2f | %s | %.2fx | %.3f | %.1f |" % (n, j["async_step_s"],
          j.get("async_step_kind", "?"), base / j["async_step_s"], j["wait_s_per_step"],
          j["bytes_per_step"] / 2**20))
p, nv = rows["2ranks_patch"]["async_step_s"], rows["2ranks_naive_patch"]["async_step_s"]
print("\npatch steady async step / naive_patch step = %.3f" % (p / nv))
PY
