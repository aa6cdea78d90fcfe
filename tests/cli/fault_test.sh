#!/usr/bin/env bash
# Fault tests of the `distrifuse` command line. Usage: fault_test.sh CASE
#   nonfinite  a model with NaN weights: --check-finite stops at step 1 naming the layer, exit 1,
#              no image / latent file; --no-check-finite warns once at the end (exit 0)
#   sigbus     the UNet weights truncated while the run has them mapped: one error line naming
#              the file, exit 1 (not a crash)
#   diskfull   a full tmpfs: the PNG and the --save-latent file fail with a message and leave no
#              partial file (skip 77 where mounting is refused)
#   rank_hang  mpiexec -n 2 with --rank-timeout 3; one rank is stopped (SIGSTOP) mid-run: the
#              other reports and the job ends within the timeout (plus slack); one rank killed
#              (SIGKILL) mid-run: the job ends with a non-zero status and no image
# Environment as cli_test.sh (DF_BIN, DF_MAKE_MODEL, DF_SRC, DF_TEST_MODELS, DF_MPIEXEC).
set -u
CASE=${1:?case}
BIN=${DF_BIN:?DF_BIN}
SRC=${DF_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/df-fault-test.XXXXXX)
MNT=""
cleanup() {
  [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 not installed"; exit 77; }
MODELS=${DF_TEST_MODELS:-$T/models}
sh "$SRC/tests/make_test_models.sh" "${DF_MAKE_MODEL:?DF_MAKE_MODEL}" "$MODELS" \
  || fail "cannot write the test models"

case "$CASE" in
nonfinite)
  cp -r "$MODELS/tiny-sd15" "$T/nan"
  python3 "$HERE/poison.py" "$T/nan/unet/diffusion_pytorch_model.safetensors" \
    mid_block.resnets.0.conv1.bias || fail "poison"
  "$BIN" -m "$T/nan" -p x -W 64 -H 64 --steps 3 --sampling-method ddim --check-finite \
    -o "$T/o.png" --save-latent "$T/l.safetensors" -q >"$T/out" 2>"$T/err"
  rc=$?
  cat "$T/err"
  [ "$rc" -eq 1 ] || fail "--check-finite: exit $rc, expected 1"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "expected one error line"
  grep -q "^distrifuse: error: .*non-finite value (NaN) at step 1/3 in the UNet's mid_block" \
    "$T/err" || fail "message lacks the step and the layer"
  ls "$T"/o.png* "$T"/l.safetensors* >/dev/null 2>&1 && fail "a file was written"
  # without the check: the run completes and warns exactly once
  "$BIN" -m "$T/nan" -p x -W 64 -H 64 --steps 3 --no-check-finite -o "$T/o.png" -q \
    >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "--no-check-finite should exit 0"; }
  [ "$(grep -c "non-finite values" "$T/err")" -eq 1 ] || { cat "$T/err"; fail "expected one warning"; }
  # a healthy model passes the check
  "$BIN" -m "$MODELS/tiny-sd15" -p x -W 64 -H 64 --steps 2 --check-finite -o "$T/g.png" -q \
    || fail "--check-finite on a healthy model"
  # distrifuse-bench takes the same option (one table, tools/common/cli_core.h)
  BENCH=${DF_BENCH:-$(dirname "$BIN")/distrifuse-bench}
  if [ -x "$BENCH" ]; then
    "$BENCH" -m "$T/nan" -W 64 -H 64 --steps 3 --sampling-method ddim --check-finite \
      --warmup-times 0 --test-times 1 -q >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq 1 ] || { cat "$T/err"; fail "bench --check-finite: exit $rc, expected 1"; }
    grep -q "^distrifuse-bench: error: .*non-finite value (NaN) at step 1/3" "$T/err" \
      || { cat "$T/err"; fail "bench: message lacks the step"; }
  fi
  ;;
sigbus)
  cp -r "$MODELS/tiny-sd15" "$T/bus"
  W="$T/bus/unet/diffusion_pytorch_model.safetensors"
  # no f32 weight cache: every step reads the mapped weights
  DF_UNET_CACHE_MB=0 "$BIN" -m "$T/bus" -p x -W 64 -H 64 --steps 900 --sampling-method ddim -t 1 -o "$T/o.png" \
    >"$T/out" 2>"$T/err" &
  pid=$!
  for _ in $(seq 1 300); do grep -q "^step " "$T/err" && break; sleep 0.1; done
  grep -q "^step " "$T/err" || { kill $pid; cat "$T/err"; fail "the run did not start"; }
  truncate -s 4096 "$W"
  for _ in $(seq 1 300); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -0 $pid 2>/dev/null && { kill $pid; fail "still running 30 s after the truncation"; }
  wait $pid
  rc=$?
  cat "$T/err"
  [ "$rc" -eq 1 ] || fail "exit $rc, expected 1"
  grep -q "^distrifuse: error: model file '.*diffusion_pytorch_model.safetensors' was truncated or replaced while in use" "$T/err" \
    || fail "message lacks the file"
  [ "$(grep -c "error" "$T/err")" -eq 1 ] || fail "expected one error line"
  ls "$T"/o.png* >/dev/null 2>&1 && fail "a file was written"
  ;;
diskfull)
  [ "$(id -u)" -eq 0 ] || { echo "SKIP: mounting a tmpfs needs root"; exit 77; }
  MNT="$T/full"
  mkdir -p "$MNT"
  mount -t tmpfs -o size=64k tmpfs "$MNT" 2>/dev/null || { MNT=""; echo "SKIP: mount refused"; exit 77; }
  # fill it to the last block
  dd if=/dev/zero of="$MNT/fill" bs=4k >/dev/null 2>&1
  "$BIN" -m "$MODELS/tiny-sd15" -p x -W 64 -H 64 --steps 1 -o "$MNT/o.png" -q >"$T/out" 2>"$T/err"
  rc=$?
  cat "$T/err"
  [ "$rc" -eq 1 ] || fail "PNG on a full disk: exit $rc, expected 1"
  grep -q "^distrifuse: error: cannot write '$MNT/o.png'.*No space left on device" "$T/err" \
    || fail "PNG message"
  ls "$MNT"/o.png* >/dev/null 2>&1 && fail "partial PNG left behind"
  "$BIN" -m "$MODELS/tiny-sd15" -p x -W 64 -H 64 --steps 1 -o "$T/ok.png" \
    --save-latent "$MNT/l.safetensors" -q >"$T/out" 2>"$T/err"
  rc=$?
  cat "$T/err"
  [ "$rc" -eq 1 ] || fail "latent on a full disk: exit $rc, expected 1"
  grep -q "^distrifuse: error: .*l.safetensors.*No space left on device" "$T/err" \
    || fail "latent message"
  ls "$MNT"/l.safetensors* >/dev/null 2>&1 && fail "partial latent file left behind"
  ls "$T"/ok.png* >/dev/null 2>&1 && fail "image written although the latent failed"
  ;;
rank_hang)
  MPI=${DF_MPIEXEC:-mpiexec}
  command -v "$MPI" >/dev/null 2>&1 || { echo "SKIP: no mpiexec"; exit 77; }
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  # rank 1 is stopped once the loop runs; rank 0 hears of no step for 3 s and ends the job
  "$MPI" --oversubscribe -n 2 "$BIN" -m "$MODELS/tiny-sdxl" -p x -W 64 -H 64 --steps 900 --sampling-method ddim \
    --no-split-batch --rank-timeout 3 -t 1 -o "$T/o.png" >"$T/out" 2>"$T/err" &
  mp=$!
  for _ in $(seq 1 600); do grep -q "^step " "$T/err" && break; sleep 0.1; done
  grep -q "^step " "$T/err" || { kill $mp; cat "$T/err"; fail "the run did not start"; }
  victim=""
  for p in $(pgrep -f -- "$T/o.png"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p
  done
  [ -n "$victim" ] || { kill $mp; fail "rank 1 not found"; }
  t0=$(date +%s)
  kill -STOP "$victim"
  for _ in $(seq 1 400); do kill -0 $mp 2>/dev/null || break; sleep 0.1; done
  if kill -0 $mp 2>/dev/null; then
    kill -CONT "$victim"; kill $mp; fail "the job still runs 40 s after rank 1 stopped"
  fi
  wait $mp
  rc=$?
  dt=$(( $(date +%s) - t0 ))
  kill -CONT "$victim" 2>/dev/null; kill -KILL "$victim" 2>/dev/null
  cat "$T/err" | grep -v "^step "
  [ "$rc" -ne 0 ] || fail "exit 0 after a hung rank"
  grep -q "^\[r0/2\] distrifuse: error: no step finished for 3 s: another rank died or hangs" \
    "$T/err" || fail "rank 0 gave no message"
  echo "job ended ${dt} s after rank 1 stopped"
  # a rank that dies (SIGKILL) mid-run: the job ends, non-zero, well within the timeout
  "$MPI" --oversubscribe -n 2 "$BIN" -m "$MODELS/tiny-sdxl" -p x -W 64 -H 64 --steps 900 \
    --sampling-method ddim --no-split-batch --rank-timeout 3 -t 1 -o "$T/d.png" \
    >"$T/out" 2>"$T/err" &
  mp=$!
  for _ in $(seq 1 600); do grep -q "^step " "$T/err" && break; sleep 0.1; done
  victim=""
  for p in $(pgrep -f -- "$T/d.png"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p
  done
  [ -n "$victim" ] || { kill $mp; fail "rank 1 not found (die)"; }
  kill -KILL "$victim"
  for _ in $(seq 1 400); do kill -0 $mp 2>/dev/null || break; sleep 0.1; done
  kill -0 $mp 2>/dev/null && { kill $mp; fail "the job still runs 40 s after rank 1 died"; }
  wait $mp
  rc=$?
  [ "$rc" -ne 0 ] || fail "exit 0 after a dead rank"
  [ ! -e "$T/d.png" ] || fail "an image was written after a rank died"
  ;;
*)
  fail "unknown case"
  ;;
esac
echo "PASS [$CASE]"
