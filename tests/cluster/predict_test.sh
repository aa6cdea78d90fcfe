#!/usr/bin/env bash
# distrifuse-bench --predict: predicted bytes per rank per step == the measured bytes_per_step of
# distrifuse-bench (within 1%) at N = 2 and 4 on the tiny SDXL fixture (shared memory: the bytes
# do not depend on the transport), and the last stdout line is the JSON object of the issue.
# Environment: DF_BENCH, DF_MAKE_MODEL, DF_MPIEXEC, DF_WORK; DF_PREDICT_ARGS (e.g. --halo
# neighbour) goes to --predict.
set -uo pipefail
W=${DF_WORK:-$PWD}/predict_bytes
PY=${DF_PYTHON:-python3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
"${DF_MAKE_MODEL:?}" --arch tiny-sdxl --out tiny >/dev/null || { echo "FAIL: df-make-model"; exit 1; }
fails=0
for N in 2 4; do
  "${DF_BENCH:?}" --predict -m tiny -W 256 -H 256 --ranks $N --gflops 50 ${DF_PREDICT_ARGS:-} \
    > predict_n$N.txt 2> predict_n$N.err || { cat predict_n$N.err; echo "FAIL: --predict"; exit 1; }
  tail -1 predict_n$N.txt > predict_n$N.json
done
check() { # N PAR SYNC SPLIT(true|false) ARGS...
  local N=$1 par=$2 sync=$3 split=$4; shift 4
  ${DF_MPIEXEC:?} --oversubscribe -n $N "$DF_BENCH" -m tiny -W 256 -H 256 --steps 3 \
    --warmup-steps 1 --warmup-times 0 --test-times 1 -t 1 -q --parallelism $par "$@" \
    > run.json 2> run.err || { cat run.err; echo "FAIL: distrifuse-bench -n $N $par $*"; fails=1; return; }
  "$PY" - predict_n$N.json run.json "$par" "$sync" "$split" "$N" <<'PYEOF' || fails=1
import json, sys
pred = json.loads(open(sys.argv[1]).read())
run = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
par, sync, split, n = sys.argv[3], sys.argv[4], sys.argv[5] == "true", sys.argv[6]
assert set(pred) == {"predictions", "min_hiding_gbit"}, "JSON keys %s" % sorted(pred)
keys = {"parallelism", "sync_mode", "split_batch", "step_s", "bytes_per_rank_per_step", "speedup"}
m = [p for p in pred["predictions"] if p["parallelism"] == par and p["split_batch"] == split
     and (p["sync_mode"] == sync or sync == "-")]
assert len(m) == 1, "no single prediction for %s %s split=%s" % (par, sync, split)
assert set(m[0]) == keys, "prediction keys %s" % sorted(m[0])
p, meas = m[0]["bytes_per_rank_per_step"], run["bytes_per_step"]
ok = meas > 0 and abs(p - meas) <= 0.01 * meas
print("N=%s %-11s %-18s split=%-5s predicted %10d measured %10d bytes/rank/step (%s): %s"
      % (n, par, sync, split, p, meas, run.get("async_step_kind"), "ok" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PYEOF
}
check 2 patch corrected_async_gn false --no-split-batch --sync-mode corrected_async_gn
check 2 patch full_sync false --no-split-batch --sync-mode full_sync
check 2 tensor - false --no-split-batch
check 4 patch corrected_async_gn false --no-split-batch --sync-mode corrected_async_gn
check 4 patch corrected_async_gn true --sync-mode corrected_async_gn
check 4 patch sync_gn false --no-split-batch --sync-mode sync_gn
[ $fails -eq 0 ] || { echo "FAIL: predicted bytes differ from the measured ones"; exit 1; }
echo "PASS: predicted bytes within 1% of the measured bytes_per_step"
