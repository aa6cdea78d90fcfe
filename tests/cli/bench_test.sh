#!/usr/bin/env bash
# Shell tests of `distrifuse-bench`. Usage: bench_test.sh CASE (single | mpi | usage)
# Environment: DF_BENCH (the benchmark binary), DF_BIN (the distrifuse binary, for the latent
# comparison), DF_MAKE_MODEL (df-make-model), DF_MPIEXEC. Exit 0 pass, 1 fail, 77 skip.
# The model is a generated tiny SDXL (no golden data needed).
set -u
CASE=${1:?case}
BENCH=${DF_BENCH:?DF_BENCH}
T=$(mktemp -d /tmp/df-bench-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

fail() { echo "FAIL [bench $CASE]: $*" >&2; exit 1; }
need_python() { command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 not installed (JSON checks)"; exit 77; }; }
need_mpi() {
  MPI=${DF_MPIEXEC:-mpiexec}
  command -v "$MPI" >/dev/null 2>&1 || { echo "SKIP: no mpiexec"; exit 77; }
}
make_model() {
  "${DF_MAKE_MODEL:?DF_MAKE_MODEL}" --arch tiny-sdxl --out "$T/tiny" >"$T/mm.log" 2>&1 \
    || { cat "$T/mm.log"; fail "df-make-model"; }
}

# bench EXPECTED_RC [mpiexec -n N] ARGS...: stdout in $T/out, stderr in $T/err
bench() {
  local want=$1; shift
  local pre=()
  if [ "${1:-}" = "-n" ]; then pre=("$MPI" --oversubscribe -n "$2"); shift 2; fi
  "${pre[@]}" "$BENCH" "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "--- stdout"; cat "$T/out"; echo "--- stderr"; cat "$T/err"
    fail "exit $rc, expected $want for: ${pre[*]} $*"
  fi
}

# jcheck 'python boolean expression on j (the JSON of the last stdout line)'...
jcheck() {
  python3 - "$T/out" "$@" <<'EOF' || { cat "$T/out"; cat "$T/err"; fail "JSON check"; }
import json, sys
lines = open(sys.argv[1]).read().splitlines()
j = json.loads(lines[-1])
for key in ("latency_s", "ranks", "parallelism", "sync_mode", "async_step_s",
            "wait_s_per_step", "bytes_per_step", "latency_mean_s", "latency_median_s",
            "latency_min_s", "latency_std_s", "latencies_s", "step_kinds"):
    if key not in j:
        sys.exit("missing key %s" % key)
for k in ("sync", "first_async", "steady_async"):
    for f in ("steps", "step_s", "compute_s", "wait_s", "bytes"):
        if f not in j["step_kinds"][k]:
            sys.exit("missing step_kinds.%s.%s" % (k, f))
ok = True
for expr in sys.argv[2:]:
    if not eval(expr, {"j": j, "len": len, "abs": abs, "min": min, "max": max}):
        print("false: " + expr)
        ok = False
sys.exit(0 if ok else 1)
EOF
}

# expect_usage RC_PREFIX... : exit 2, one error line naming MATCH, nothing on stdout
expect_usage() {
  local match=$1; shift
  bench 2 "$@"
  [ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err"; fail "expected one error line for: $*"; }
  grep -q "^distrifuse-bench: error: .*$match" "$T/err" || { cat "$T/err"; fail "message lacks '$match'"; }
  [ ! -s "$T/out" ] || fail "stdout not empty on a usage error"
}

ARGS=(-W 256 -H 256 --steps 3 --warmup-times 1 --test-times 2 --warmup-steps 0 -t 1 -p "a cat")

case "$CASE" in
single)
  need_python
  make_model
  bench 0 -m "$T/tiny" "${ARGS[@]}" --save-latent "$T/b.safetensors"
  [ "$(wc -l <"$T/out")" -eq 1 ] || fail "stdout should be the JSON line only"
  jcheck 'j["ranks"] == 1' 'j["latency_s"] > 0' 'len(j["latencies_s"]) == 2' \
         'j["latency_min_s"] <= j["latency_median_s"] <= max(j["latencies_s"])' \
         'j["test_times"] == 2 and j["warmup_times"] == 1' 'j["output_type"] == "latent"' \
         'j["async_step_kind"] == "steady_async"' \
         'abs(j["async_step_s"] - j["step_kinds"]["steady_async"]["step_s"]) < 1e-12' \
         'j["async_step_s"] > 0' 'j["wait_s_per_step"] == 0 and j["bytes_per_step"] == 0' \
         'all(j["step_kinds"][k]["steps"] == 1 for k in ("sync", "first_async", "steady_async"))' \
         'j["vae_s"] == 0' 'j["width"] == 256 and j["steps"] == 3'
  grep -q "latency over 2 runs (after 1 warm-up)" "$T/err" || { cat "$T/err"; fail "table"; }
  grep -q "^  steady async " "$T/err" || { cat "$T/err"; fail "table rows"; }
  # the reused pipeline state gives what one fresh `distrifuse` run gives, bit for bit
  "${DF_BIN:?DF_BIN}" -m "$T/tiny" -W 256 -H 256 --steps 3 -t 1 -p "a cat" -q -o "$T/c.png" \
      --save-latent "$T/c.safetensors" >/dev/null 2>&1 || fail "distrifuse run"
  cmp -s "$T/b.safetensors" "$T/c.safetensors" || fail "bench latents differ from distrifuse's"
  # pil includes the VAE; the default warm-up (4) leaves no asynchronous step in 3 steps
  bench 0 -m "$T/tiny" -W 128 -H 128 --steps 3 --warmup-times 0 --test-times 1 -t 1 -q \
      --output-type pil
  jcheck 'j["output_type"] == "pil"' 'j["vae_s"] > 0' 'j["async_step_kind"] == "sync"' \
         'j["step_kinds"]["steady_async"]["steps"] == 0' 'j["step_kinds"]["sync"]["steps"] == 3'
  grep -Eq "^(warm-up|run) [0-9]+/" "$T/err" && fail "-q should not print iteration lines"
  ;;
mpi)
  need_python
  need_mpi
  make_model
  # patch parallelism over 2 ranks (both CFG halves per rank, so the patches exchange)
  bench 0 -n 2 -m "$T/tiny" "${ARGS[@]}" --no-split-batch --save-latent "$T/b.safetensors"
  [ "$(wc -l <"$T/out")" -eq 1 ] || fail "stdout should be rank 0's JSON line only"
  jcheck 'j["ranks"] == 2' 'j["parallelism"] == "patch"' 'j["sync_mode"] == "corrected_async_gn"' \
         'j["split_batch"] is False' 'j["comm_tensors"] > 0' \
         'j["async_step_kind"] == "steady_async"' 'j["bytes_per_step"] > 0' \
         'j["step_kinds"]["sync"]["bytes"] == j["bytes_per_step"]' \
         'j["wait_s_per_step"] >= 0 and j["async_step_s"] > 0' 'len(j["latencies_s"]) == 2' \
         'all(j["step_kinds"][k]["steps"] == 1 for k in ("sync", "first_async", "steady_async"))'
  grep -q "2 ranks: patch, corrected_async_gn, warm-up steps 0, no split batch" "$T/err" \
    || { cat "$T/err"; fail "table header"; }
  # bytes by kind (issue 8): they sum to bytes_per_step; halos go to the neighbours only, so
  # the mean halo volume per rank at 3 bands (1, 2, 1 neighbours) is 4/3 of that at 2 bands
  jcheck 'abs(j["bytes_halo"] + j["bytes_kv"] + j["bytes_gn"] + j["bytes_tp"] - j["bytes_per_step"]) <= 1e-9 * j["bytes_per_step"]' \
         'j["bytes_halo"] > 0 and j["bytes_kv"] > 0 and j["bytes_gn"] > 0 and j["bytes_tp"] == 0' \
         'j["bytes_output"] > 0'
  h2=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["bytes_halo"])' "$T/out")
  bench 0 -n 3 -m "$T/tiny" "${ARGS[@]}" --no-split-batch -q
  jcheck "abs(j['bytes_halo'] - $h2 * 4 / 3) <= 1e-6 * j['bytes_halo']" \
         'abs(j["bytes_halo"] + j["bytes_kv"] + j["bytes_gn"] + j["bytes_tp"] - j["bytes_per_step"]) <= 1e-9 * j["bytes_per_step"]' \
         '"uneven" in j["band_plan"]'
  grep -q "band plan (rows per rank, 3 bands, uneven)" "$T/err" || { cat "$T/err"; fail "band plan"; }
  # the planning-only count of scripts/comm_plan.py (used for docs/scaling.md) equals the
  # measured bytes by kind (mean over the 3 ranks)
  python3 "$(dirname "$0")/../../scripts/comm_plan.py" --config "$T/tiny/unet/config.json" -W 256 -H 256 \
      --ranks 3 --no-split-batch --json >"$T/plan.json" || fail "comm_plan.py"
  jcheck "all(abs(j[k] - sum(r['after'][f] for r in __import__('json').load(open('$T/plan.json'))['ranks']) / 3) <= 1e-6 * j[k] for k, f in (('bytes_halo', 'halo'), ('bytes_kv', 'kv'), ('bytes_gn', 'gn')))"
  # three generations on one runtime == one fresh distributed generation, bit for bit
  "$MPI" --oversubscribe -n 2 "${DF_BIN:?DF_BIN}" -m "$T/tiny" -W 256 -H 256 --steps 3 -t 1 \
      -p "a cat" --warmup-steps 0 --no-split-batch -q -o "$T/c.png" \
      --save-latent "$T/c.safetensors" >/dev/null 2>"$T/err2" || { cat "$T/err2"; fail "distrifuse mpi"; }
  cmp -s "$T/b.safetensors" "$T/c.safetensors" || fail "bench latents differ from distrifuse's"
  # full_sync: no asynchronous step; the step time after the warm-up stands in
  bench 0 -n 2 -m "$T/tiny" "${ARGS[@]}" --no-split-batch --sync-mode full_sync -q
  jcheck 'j["async_step_kind"] == "sync"' 'j["step_kinds"]["first_async"]["steps"] == 0' \
         'j["step_kinds"]["sync"]["steps"] == 3' 'j["bytes_per_step"] > 0'
  # split batch on 2 ranks: one rank per CFG half, nothing exchanged but the output gather
  bench 0 -n 2 -m "$T/tiny" "${ARGS[@]}" -q
  jcheck 'j["split_batch"] is True' 'j["bytes_per_step"] == 0' 'j["gather_bytes_per_step"] > 0'
  # usage errors are agreed on every rank: exit 2
  bench 2 -n 2 -m "$T/tiny" "${ARGS[@]}" --test-times 0
  grep -q "^distrifuse-bench: error: .*test-times must be >= 1" "$T/err" || { cat "$T/err"; fail "mpi usage msg"; }
  # 64x64: 2 rows at the deepest level; 3 ranks (odd: no split batch) need 3: refused
  bench 2 -n 3 -m "$T/tiny" "${ARGS[@]}" -W 64 -H 64
  grep -q "^distrifuse-bench: error: .*the largest N for this size is 4" "$T/err" || { cat "$T/err"; fail "3 ranks msg"; }
  ;;
usage)
  bench 0 --help
  for f in --model --warmup-times --test-times --output-type --ignore-ratio --threads \
           --parallelism --sync-mode --warmup-steps --no-split-batch --comm-progress "-t"; do
    grep -q -- "$f" "$T/out" || fail "--help lacks $f"
  done
  grep -q "(default: 5)" "$T/out" && grep -q "(default: 20)" "$T/out" || fail "--help defaults"
  grep -q "(default: latent)" "$T/out" || fail "--help output-type default"
  # the options shared with distrifuse (tools/common/cli_core.h)
  for f in --check-finite --no-check-finite --rank-timeout --compute --gn-compat --cpu; do
    grep -q -- "$f" "$T/out" || fail "--help lacks $f"
  done
  bench 0 --version
  grep -q "^distrifuse-bench " "$T/out" || fail "--version"
  M=/nonexistent-model
  expect_usage "unknown option '--bogus'" -m "$M" --bogus
  expect_usage "no model given" --steps 3
  expect_usage "warmup-times must be >= 0" -m "$M" --warmup-times -1
  expect_usage "test-times must be >= 1" -m "$M" --test-times 0
  expect_usage "invalid value 'png' for --output-type" -m "$M" --output-type png
  expect_usage "ignore-ratio must be in" -m "$M" --ignore-ratio 1
  expect_usage "invalid value 'x' for --warmup-times" -m "$M" --warmup-times x
  expect_usage "threads must be >= 0" -m "$M" -t -1
  expect_usage "invalid value 'bogus' for --parallelism" -m "$M" --parallelism bogus
  expect_usage "steps 0 must be" -m "$M" --steps 0
  # enum names come from the library's tables; a bad one names the option and the choices
  expect_usage "invalid value 'f16' for --compute (choose from f32, bf16)" -m "$M" --compute f16
  expect_usage "invalid value 'fast' for --sync-mode (choose from corrected_async_gn," \
    -m "$M" --sync-mode fast
  expect_usage "invalid value 'orig' for --gn-compat (choose from exact, original)" \
    -m "$M" --gn-compat orig
  expect_usage "rank-timeout must be >= 0" -m "$M" --rank-timeout -1
  # an unreadable model is a runtime error (1)
  bench 1 -m "$M" --steps 1
  grep -q "^distrifuse-bench: error: cannot load model" "$T/err" || { cat "$T/err"; fail "load error"; }
  ;;
*)
  fail "unknown case"
  ;;
esac
echo "PASS [bench $CASE]"
