#!/usr/bin/env bash
# Uneven bands (issue 9 item 2) and band weights (item 3) through the `distrifuse` binary on the
# tiny SDXL fixture made at test time (df-make-model --arch tiny-sdxl), oversubscribed.
# Usage: uneven_test.sh N        synchronous runs on N ranks == the single process (rel-L2 1e-5):
#                                full_sync (default split batch: an odd N runs as --no-split-batch
#                                and rank 0 says so in one line) and corrected_async_gn with the
#                                warm-up covering every step, --no-split-batch; --stats prints the
#                                uneven band plan.
#        uneven_test.sh weights  --band-weights 3,1 on 2 ranks: the plan has 3:1 rows, the result
#                                equals the single process; wrong counts are usage errors.
#        uneven_test.sh toomany  more ranks than deepest-level rows: a usage error naming the
#                                largest N.
# Environment: DF_BIN, DF_MAKE_MODEL, DF_MPIEXEC. Exit 0 pass, 1 fail, 77 skip.
set -u
CASE=${1:?case}
BIN=${DF_BIN:?DF_BIN}
MPI=${DF_MPIEXEC:-mpiexec}
HERE=$(cd "$(dirname "$0")" && pwd)
CHECK="$HERE/../cli/golden_check.py"
T=$(mktemp -d /tmp/df-uneven-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
fail() { echo "FAIL [uneven $CASE]: $*" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 not installed"; exit 77; }
command -v "$MPI" >/dev/null 2>&1 || { echo "SKIP: no mpiexec"; exit 77; }
"${DF_MAKE_MODEL:?DF_MAKE_MODEL}" --arch tiny-sdxl --out "$T/m" >"$T/mm.log" 2>&1 \
  || { cat "$T/mm.log"; fail "df-make-model"; }
# 256x256: latent 32x32, 8 rows at the deepest level of the tiny SDXL UNet (2 downsamplings)
ARGS=(-m "$T/m" -p "a lighthouse" -W 256 -H 256 --steps 3 -s 7 -t 1)
single() { "$BIN" "${ARGS[@]}" -q -o "$T/s.png" --save-latent "$T/s.safetensors" \
             >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "single process"; }; }
# mrun NAME N ARGS...: mpiexec run writing $T/NAME.safetensors, stderr in $T/NAME.err
mrun() {
  local name=$1 n=$2; shift 2
  "$MPI" --oversubscribe -n "$n" "$BIN" "${ARGS[@]}" "$@" -o "$T/$name.png" \
      --save-latent "$T/$name.safetensors" >"$T/$name.out" 2>"$T/$name.err" \
    || { cat "$T/$name.err"; fail "mpiexec -n $n $*"; }
}
same() { python3 "$CHECK" relcmp "$T/s.safetensors" "$T/$1.safetensors" 1e-5 || fail "$1 differs"; }

case "$CASE" in
[0-9]*)
  N=$CASE
  single
  mrun full "$N" --sync-mode full_sync --stats
  same full
  grep -q "band plan (rows per rank, .*uneven" "$T/full.err" \
    || { cat "$T/full.err"; fail "--stats shows no uneven band plan"; }
  grep "band plan" "$T/full.err"
  n_fb=$(grep -c "running as --no-split-batch" "$T/full.err")
  if [ $((N % 2)) -eq 1 ]; then
    [ "$n_fb" -eq 1 ] || { cat "$T/full.err"; fail "odd N: expected one fallback line, got $n_fb"; }
  else
    [ "$n_fb" -eq 0 ] || fail "even N: unexpected fallback line"
  fi
  mrun warm "$N" --no-split-batch --warmup-steps 3 -q
  same warm
  ;;
weights)
  single
  mrun w 2 --no-split-batch --sync-mode full_sync --band-weights 3,1 --stats
  same w
  # 8 deepest rows 3:1 -> 6/2; latent rows 24/8
  grep -q "band plan (rows per rank, 2 bands, uneven): level 0 (32): 24/8; level 1 (16): 12/4; level 2 (8): 6/2" "$T/w.err" \
    || { grep "band plan" "$T/w.err"; fail "band weights 3,1 not honoured"; }
  # auto: the re-plan runs; a balanced machine keeps (or slightly moves) the bands
  mrun a 2 --no-split-batch --warmup-steps 1 --band-weights auto --steps 4
  grep -q "band weights auto" "$T/a.err" || { cat "$T/a.err"; fail "auto: no re-plan line"; }
  "$MPI" --oversubscribe -n 2 "$BIN" "${ARGS[@]}" --no-split-batch --band-weights 1,2,3 \
      -o "$T/x.png" >"$T/x.out" 2>"$T/x.err"
  rc=$?
  [ "$rc" -eq 2 ] || { cat "$T/x.err"; fail "3 weights for 2 bands: exit $rc, expected 2"; }
  grep -q "^distrifuse: error: .*3 weights" "$T/x.err" || { cat "$T/x.err"; fail "weights msg"; }
  [ ! -e "$T/x.png" ] || fail "output written after an error"
  "$BIN" "${ARGS[@]}" --band-weights 1,x -o "$T/x.png" >"$T/x.out" 2>"$T/x.err"
  [ $? -eq 2 ] && grep -q "^distrifuse: error: --band-weights" "$T/x.err" \
    || { cat "$T/x.err"; fail "bad --band-weights value"; }
  ;;
toomany)
  # 128x128: latent 16, 4 deepest rows; 5 ranks (odd -> no split) need 5 rows: refused
  "$MPI" --oversubscribe -n 5 "$BIN" -m "$T/m" -p x -W 128 -H 128 --steps 2 -q \
      -o "$T/x.png" >"$T/x.out" 2>"$T/x.err"
  rc=$?
  [ "$rc" -eq 2 ] || { cat "$T/x.err"; fail "5 ranks at 128x128: exit $rc, expected 2"; }
  grep -q "^distrifuse: error: .*the largest N for this size is 8" "$T/x.err" \
    || { cat "$T/x.err"; fail "largest-N message"; }
  [ "$(grep -c 'error' "$T/x.err")" -eq 1 ] || { cat "$T/x.err"; fail "one error line expected"; }
  ;;
*) fail "unknown case" ;;
esac
echo "PASS [uneven $CASE]"
