#!/usr/bin/env bash
# Tests over the emulated cluster (scripts/cluster.sh): 2 nodes x 1 rank, TCP through tbf links.
#   cluster_test.sh link_rate        bulk transfer node0 -> node1 at 80-105% of --rate
#   cluster_test.sh full_sync        full_sync over TCP == single process (rel-L2 <= 1e-5)
#   cluster_test.sh transport        corrected_async_gn over TCP == over shared memory (<= 1e-6)
#   cluster_test.sh kill             a rank killed on node 1 ends every rank, message, rc != 0,
#                                    within 60 s
#   cluster_test.sh bytes            node 0's eth0 counters grow by >= the bytes --stats reports
#   cluster_test.sh mpich            the MPICH build (build-mpich/) over TCP == Open MPI over shm
# Environment (tests/cluster/tests.cmake): DF_SRC, DF_BIN, DF_MAKE_MODEL, DF_MPIEXEC, DF_WORK.
# Exit 77 (skip) where the cluster cannot be made (not root, no namespaces).
set -uo pipefail
mode=${1:?mode}
SRC=${DF_SRC:?}
CL=$SRC/scripts/cluster.sh
WORK=${DF_WORK:-$PWD}/cluster_$mode
PY=${DF_PYTHON:-python3}
export DF_CLUSTER_DIR=$WORK/cluster
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK" || exit 1
# the namespaces dfnode* are global: one user at a time across build trees and worktrees
# (CTest's RESOURCE_LOCK covers one ctest only; bench/cluster_bench.py takes the same lock)
exec 9>"${DF_CLUSTER_LOCK:-/tmp/df-cluster.lock}"
flock -w 700 9 || { echo "FAIL: /tmp/df-cluster.lock busy for 700 s (another cluster user)"; exit 1; }

fail() { echo "FAIL: $*"; exit 1; }
cleanup() { "$CL" down >/dev/null 2>&1 || true; }
trap cleanup EXIT

up() {
  "$CL" up 2 --rate "$1"
  local rc=$?
  [ $rc -eq 77 ] && exit 77
  [ $rc -eq 0 ] || fail "cluster.sh up 2 --rate $1 exited $rc"
}

# one generation of the tiny SDXL fixture: 2 ranks, no CFG split, 1 warm-up step
GEN=(-p "a lighthouse at dusk" -W 256 -H 256 --steps 6 -t 1 -s 7)
DIST=(--no-split-batch --warmup-steps 1)
fixture() {
  "${DF_MAKE_MODEL:?}" --arch tiny-sdxl --out "$WORK/tiny" >/dev/null || fail "df-make-model"
}
tcp_run() {  # tcp_run NAME ARGS...: 2 ranks over the cluster
  local name=$1; shift
  timeout 120 "$CL" mpirun -n 2 -- "${DF_BIN:?}" -m "$WORK/tiny" "${GEN[@]}" "${DIST[@]}" \
    -o "$name.png" --save-latent "$name.safetensors" "$@" > "$name.log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || { cat "$name.log"; fail "$name: mpirun over the cluster exited $rc"; }
}

case "$mode" in
  link_rate)
    up 1gbit
    ip netns exec dfnode0 true || exit 1
    "$CL" exec 1 "$PY" "$SRC/tests/cluster/bw.py" recv 5201 > recv.json &
    rpid=$!
    sleep 0.3
    "$CL" exec 0 "$PY" "$SRC/tests/cluster/bw.py" send 10.213.7.2 5201 1.2 ||
      fail "sender failed"
    wait $rpid || fail "receiver failed"
    cat recv.json
    "$PY" - recv.json <<'PYEOF' || fail "link rate outside 80-105% of 1gbit"
import json, sys
r = json.load(open(sys.argv[1]))
frac = r["bits_per_s"] / 1e9
print("measured %.3f Gbit/s over %.2f s = %.1f%% of --rate 1gbit" % (frac, r["seconds"], 100 * frac))
sys.exit(0 if 0.80 <= frac <= 1.05 and r["seconds"] > 0.8 else 1)
PYEOF
    ;;
  full_sync)
    fixture
    up 1gbit
    "$DF_BIN" -m "$WORK/tiny" "${GEN[@]}" -o single.png --save-latent single.safetensors \
      > single.log 2>&1 || { cat single.log; fail "single-process run"; }
    tcp_run tcp --sync-mode full_sync
    "$PY" "$SRC/tests/cluster/latent_diff.py" single.safetensors tcp.safetensors 1e-5 ||
      fail "full_sync over TCP differs from the single process"
    ;;
  transport)
    fixture
    up 10gbit
    tcp_run tcp --sync-mode corrected_async_gn
    timeout 120 ${DF_MPIEXEC:?} --oversubscribe -n 2 "$DF_BIN" -m "$WORK/tiny" "${GEN[@]}" \
      "${DIST[@]}" -o shm.png --save-latent shm.safetensors --sync-mode corrected_async_gn \
      > shm.log 2>&1 || { cat shm.log; fail "shared-memory run"; }
    "$PY" "$SRC/tests/cluster/latent_diff.py" shm.safetensors tcp.safetensors 1e-6 ||
      fail "corrected_async_gn over TCP differs from shared memory"
    ;;
  kill)
    bin=$(readlink -f "$DF_BIN")
    is_rank() { [ "$(readlink -f /proc/$1/exe 2>/dev/null)" = "$bin" ]; }
    fixture
    up 1gbit
    t0=$(date +%s)
    "$CL" mpirun -n 2 -- "$DF_BIN" -m "$WORK/tiny" -p "a long run" -W 256 -H 256 --steps 400 \
      -t 1 "${DIST[@]}" -o killed.png > kill.log 2>&1 &
    mpid=$!
    victim=""
    for _ in $(seq 200); do  # the rank on node 1, once it runs
      for p in $(ip netns pids dfnode1 2>/dev/null); do
        is_rank $p && victim=$p
      done
      [ -n "$victim" ] && break
      sleep 0.1
    done
    [ -n "$victim" ] || { kill $mpid; cat kill.log; fail "no distrifuse rank appeared on dfnode1"; }
    sleep 3  # into the denoising loop
    echo "killing rank on dfnode1 (pid $victim)"
    kill -9 "$victim"
    tk=$(date +%s)
    rc=0
    for _ in $(seq 600); do kill -0 $mpid 2>/dev/null || break; sleep 0.1; done
    if kill -0 $mpid 2>/dev/null; then
      kill $mpid; cat kill.log; fail "the job was still running 60 s after the kill"
    fi
    wait $mpid; rc=$?
    t1=$(date +%s)
    cat kill.log
    echo "exit $rc, $((t1 - tk)) s after the kill ($((t1 - t0)) s in all)"
    [ $rc -ne 0 ] || fail "exit status 0 after a rank was killed"
    left=""
    for n in dfnode0 dfnode1; do
      for p in $(ip netns pids $n 2>/dev/null); do
        is_rank $p && left+=" $p"
      done
    done
    [ -z "$left" ] || fail "ranks still alive after the job ended:$left"
    grep -Eiq "signal|killed|exited|abort|terminat" kill.log || fail "no message naming the failure"
    ;;
  bytes)
    fixture
    up 10gbit
    cnt() { ip netns exec dfnode0 sh -c \
      'echo $(( $(cat /sys/class/net/eth0/statistics/tx_bytes) + $(cat /sys/class/net/eth0/statistics/rx_bytes) ))'; }
    b0=$(cnt)
    tcp_run stats --sync-mode corrected_async_gn --stats
    b1=$(cnt)
    cat stats.log
    "$PY" - stats.log "$((b1 - b0))" 6 <<'PYEOF' || fail "eth0 counted fewer bytes than --stats"
import re, sys
log = open(sys.argv[1]).read()
wire, steps = int(sys.argv[2]), int(sys.argv[3])
m = re.search(r"sent ([0-9.]+) MiB/step, received ([0-9.]+) MiB/step", log)
if not m:
    sys.exit("no 'sent X MiB/step, received Y MiB/step' in the --stats line")
stats = (float(m.group(1)) + float(m.group(2))) * steps * 1048576
print("--stats: %.0f bytes (rank 0, %d steps); node 0 eth0 tx+rx: %d bytes (%.3fx)"
      % (stats, steps, wire, wire / stats if stats else 0))
sys.exit(0 if stats > 0 and wire >= stats else 1)
PYEOF
    ;;
  mpich)
    # the MPICH build (scripts/cluster.sh build-mpich; .ci/run makes it) over TCP == Open MPI
    # over shared memory, and its bytes really cross node 0's link
    mb=$SRC/build-mpich/distrifuse
    command -v mpiexec.mpich >/dev/null && command -v mpicc.mpich >/dev/null ||
      { echo "no MPICH (mpiexec.mpich, mpicc.mpich; scripts/install-deps.sh installs it): skipped"; exit 77; }
    if [ ! -x "$mb" ] || [ ! -f "$SRC/build-mpich/libdf-mpich-ucx-close.so" ]; then
      # a clean checkout: make the second build here (about a minute on 2 cores)
      "$SRC/scripts/cluster.sh" build-mpich > build-mpich.log 2>&1; rc=$?
      [ $rc -eq 77 ] && { cat build-mpich.log; exit 77; }
      [ $rc -eq 0 ] && [ -x "$mb" ] || { tail -20 build-mpich.log; fail "scripts/cluster.sh build-mpich"; }
    fi
    fixture
    up 10gbit
    cnt() { ip netns exec dfnode0 cat /sys/class/net/eth0/statistics/tx_bytes; }
    b0=$(cnt)
    timeout 120 "$CL" mpirun --mpi mpich -n 2 -- "$mb" -m "$WORK/tiny" "${GEN[@]}" "${DIST[@]}" \
      -o mpich.png --save-latent mpich.safetensors --sync-mode corrected_async_gn --stats \
      > mpich.log 2>&1 || { cat mpich.log; fail "mpirun --mpi mpich over the cluster"; }
    b1=$(cnt)
    cat mpich.log
    timeout 120 ${DF_MPIEXEC:?} --oversubscribe -n 2 "$DF_BIN" -m "$WORK/tiny" "${GEN[@]}" \
      "${DIST[@]}" -o shm.png --save-latent shm.safetensors --sync-mode corrected_async_gn \
      > shm.log 2>&1 || { cat shm.log; fail "shared-memory run"; }
    "$PY" "$SRC/tests/cluster/latent_diff.py" shm.safetensors mpich.safetensors 1e-6 ||
      fail "corrected_async_gn over MPICH/TCP differs from Open MPI over shared memory"
    "$PY" - mpich.log "$((b1 - b0))" 6 <<'PYEOF' || fail "MPICH's bytes did not cross eth0"
import re, sys
log = open(sys.argv[1]).read()
wire, steps = int(sys.argv[2]), int(sys.argv[3])
m = re.search(r"sent ([0-9.]+) MiB/step", log)
if not m:
    sys.exit("no 'sent X MiB/step' in the --stats line")
sent = float(m.group(1)) * steps * 1048576
print("--stats: rank 0 sent %.0f bytes; node 0 eth0 tx: %d bytes" % (sent, wire))
sys.exit(0 if sent > 0 and wire >= sent else 1)
PYEOF
    ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
echo "PASS: cluster $mode"
