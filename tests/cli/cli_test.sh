#!/usr/bin/env bash
# Shell tests of the `distrifuse` command line. Usage: cli_test.sh CASE
# Environment: DF_BIN (the distrifuse binary), DF_MAKE_MODEL (df-make-model), DF_SRC (source
# tree), DF_TEST_MODELS (test models folder, tests/make_test_models.sh; default: made here),
# DF_GOLDEN (golden data; default $DF_SRC/../shared/golden; only latent_roundtrip needs it).
# Exit 0 pass, 1 fail, 77 skip.
set -u
CASE=${1:?case}
BIN=${DF_BIN:?DF_BIN}
SRC=${DF_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
GOLDEN=${DF_GOLDEN:-$SRC/../shared/golden}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/df-cli-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
need_python() { command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 not installed (PNG / tensor checks)"; exit 77; }; }
need_golden() { [ -f "$GOLDEN/README.md" ] || { echo "SKIP: no golden data at $GOLDEN"; exit 77; }; }
# Test models written by df-make-model (tests/make_test_models.sh; the golden fixtures' shapes
# and names, random weights): every case but the golden comparisons runs without ../shared.
MODELS=${DF_TEST_MODELS:-}
if [ -z "$MODELS" ]; then MODELS="$T/models"; fi
sh "$SRC/tests/make_test_models.sh" "${DF_MAKE_MODEL:?DF_MAKE_MODEL}" "$MODELS" \
  || fail "cannot write the test models"
SD15="$MODELS/tiny-sd15"
SDXL="$MODELS/tiny-sdxl"

# run EXPECTED_RC ARGS...: runs the binary, keeps stdout/stderr in $T/out, $T/err
run() {
  local want=$1; shift
  "$BIN" "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "--- stdout"; cat "$T/out"; echo "--- stderr"; cat "$T/err"
    fail "exit $rc, expected $want for: $*"
  fi
}

# The failure contract: exactly one stderr line "distrifuse: error: ...MATCH...", nothing on
# stdout, and no output file (nor temporary) left behind.
expect_error() {
  local rc=$1 match=$2; shift 2
  rm -f "$T"/o.png*
  run "$rc" -o "$T/o.png" "$@"
  [ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err"; fail "expected one error line for: $*"; }
  grep -q "^distrifuse: error: .*$match" "$T/err" || { cat "$T/err"; fail "message lacks '$match'"; }
  [ ! -s "$T/out" ] || fail "stdout not empty on error"
  ls "$T"/o.png* >/dev/null 2>&1 && fail "output file left behind for: $*"
  return 0
}

case "$CASE" in
help)
  run 0 --help
  for f in --model --prompt --negative-prompt --width --height --steps --cfg-scale \
           --sampling-method --seed --output --threads --vae-tiling --init-latent \
           --save-latent --clip-skip --guidance-rescale --verbose --gn-compat --check-finite \
           --no-check-finite --rank-timeout "-W" "-H" "-s" "-o" "-t"; do
    grep -q -- "$f" "$T/out" || fail "--help lacks $f"
  done
  grep -q "ddim,euler,euler_a,dpm++2m,pndm" "$T/out" || fail "--help lacks the sampler list"
  grep -q -- "--gn-compat {exact,original}" "$T/out" || fail "--help lacks the gn-compat choices"
  grep -q "(default: 20)" "$T/out" || fail "--help lacks the steps default"
  grep -q "(default: output.png)" "$T/out" || fail "--help lacks the output default"
  run 0 --version
  grep -q "^distrifuse " "$T/out" || fail "--version"
  ;;
usage_errors)
  expect_error 2 "unknown option '--bogus'" -m "$SD15" -p x --bogus
  expect_error 2 "invalid value 'lms' for --sampling-method" -m "$SD15" -p x --sampling-method lms
  expect_error 2 "width 100 must be a positive multiple of 8" -m "$SD15" -p x -W 100
  expect_error 2 "height 36 must be a positive multiple of 8" -m "$SD15" -p x -H 36
  expect_error 2 "width must be a positive" -m "$SD15" -p x --width 0
  expect_error 2 "steps 0 must be" -m "$SD15" -p x --steps 0
  expect_error 2 "steps -3 must be" -m "$SD15" -p x --steps -3
  expect_error 2 "invalid value 'abc' for --steps" -m "$SD15" -p x --steps abc
  expect_error 2 "invalid value '1.5x' for --cfg-scale" -m "$SD15" -p x --cfg-scale 1.5x
  expect_error 2 "cfg-scale must be >= 0" -m "$SD15" -p x --cfg-scale -2
  expect_error 2 "guidance rescale 2 must be in" -m "$SD15" -p x --guidance-rescale 2
  expect_error 2 "threads must be >= 0" -m "$SD15" -p x -t -1
  expect_error 2 "warmup-steps must be >= 0" -m "$SD15" -p x --warmup-steps -1
  expect_error 2 "invalid value 'f8' for --comm-dtype" -m "$SD15" -p x --comm-dtype f8
  expect_error 2 "invalid value 'approx' for --gn-compat" -m "$SD15" -p x --gn-compat approx
  expect_error 2 "rank-timeout must be >= 0" -m "$SD15" -p x --rank-timeout -1
  expect_error 2 "no model given" -p x
  expect_error 2 "no prompt given" -m "$SD15"
  expect_error 2 "needs a value" -m "$SD15" -p
  expect_error 2 "unexpected argument 'stray'" -m "$SD15" -p x stray
  expect_error 2 "clip skip 5 too large" -m "$SD15" -p x --clip-skip 6 -W 64 -H 64 --steps 1
  ;;
runtime_errors)
  expect_error 1 "cannot load model '/nonexistent/model'" -m /nonexistent/model -p x
  # a safetensors file that is no checkpoint (a latent file), a folder that is no pipeline
  run 0 -m "$SD15" -p x -W 64 -H 64 --steps 1 -q -o "$T/a.png" --save-latent "$T/l.safetensors"
  expect_error 1 "not a Stable Diffusion checkpoint" -m "$T/l.safetensors" -p x
  mkdir -p "$T/notamodel"
  echo x >"$T/notamodel/readme.txt"
  expect_error 1 "not a diffusers pipeline folder" -m "$T/notamodel" -p x
  # unwritable output: missing folder, or a folder in place of the file
  rm -f "$T"/o.png*
  run 1 -m "$SD15" -p x -o "$T/missing/dir/o.png"
  [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "^distrifuse: error: cannot write output.*does not exist" "$T/err" \
    || { cat "$T/err"; fail "unwritable output message"; }
  mkdir "$T/adir"
  run 1 -m "$SD15" -p x -o "$T/adir"
  grep -q "^distrifuse: error: cannot write output.*is a directory" "$T/err" || fail "dir output"
  # a latent of the wrong shape for --init-latent (64x64 latent for a 128x128 image)
  expect_error 1 "expected \[1, 4, 16, 16\]" -m "$SD15" -p x -W 128 -H 128 --steps 1 -q \
    --init-latent "$T/l.safetensors"
  expect_error 1 "none.safetensors: cannot open" -m "$SD15" -p x -W 64 -H 64 --steps 1 -q \
    --init-latent "$T/none.safetensors"
  ;;
generate)
  need_python
  run 0 -m "$SD15" -p "a red cube" -n "blurry" -W 64 -H 48 --steps 3 -s 7 --sampling-method ddim \
      -o "$T/a.png" -t 2
  [ "$(cat "$T/out")" = "$T/a.png" ] || fail "stdout should be the output path"
  grep -q "timings: text encode .* denoise .* VAE" "$T/err" || { cat "$T/err"; fail "no timings"; }
  grep -q "step 3/3" "$T/err" || fail "no progress"
  ls "$T"/a.png.tmp* >/dev/null 2>&1 && fail "temporary file left"
  python3 "$HERE/png_check.py" "$T/a.png" 64 48 \
    $'a red cube\nNegative prompt: blurry\nSteps: 3, Sampler: ddim, CFG scale: 7.5, Seed: 7, Size: 64x48, Model: tiny-sd15' \
    || fail "PNG content / parameters chunk"
  # same seed -> identical file; other seed -> different; quiet mode prints no progress
  run 0 -m "$SD15" -p "a red cube" -n "blurry" -W 64 -H 48 --steps 3 -s 7 --sampling-method ddim \
      -o "$T/b.png" -q
  cmp -s "$T/a.png" "$T/b.png" || fail "same seed gave a different image"
  [ ! -s "$T/err" ] || { cat "$T/err"; fail "-q should print nothing"; }
  run 0 -m "$SD15" -p "a red cube" -n "blurry" -W 64 -H 48 --steps 3 -s 8 --sampling-method ddim \
      -o "$T/c.png" -q
  cmp -s "$T/a.png" "$T/c.png" && fail "another seed gave the same image"
  # SDXL (tiny) with euler_a, clip skip, guidance rescale and tiling forced on
  run 0 -m "$SDXL" -p "a cat" -W 64 -H 64 --steps 2 --sampling-method euler_a --clip-skip 2 \
      --guidance-rescale 0.5 --vae-tiling -o "$T/x.png" -q
  python3 "$HERE/png_check.py" "$T/x.png" 64 64 \
    $'a cat\nSteps: 2, Sampler: euler_a, CFG scale: 5, Seed: 42, Size: 64x64, Model: tiny-sdxl, Clip skip: 2, Guidance rescale: 0.5' \
    || fail "SDXL PNG parameters"
  # --vae-tiling tiles once a latent side exceeds the VAE tile (tiny-sd15: 64 latent pixels)
  run 0 -m "$SD15" -p x -W 576 -H 64 --steps 1 --vae-tiling -o "$T/t.png"
  grep -q "VAE [0-9.]* s (tiled)" "$T/err" || { cat "$T/err"; fail "--vae-tiling did not tile"; }
  run 0 -m "$SD15" -p x -W 576 -H 64 --steps 1 -o "$T/u.png"
  grep -q "(tiled)" "$T/err" && fail "auto tiling should not tile a small image"
  # random seed is reported
  run 0 -m "$SD15" -p x -W 64 -H 64 --steps 1 -s -1 -o "$T/r.png"
  grep -q "seed: [0-9]" "$T/err" || fail "random seed not reported"
  ;;
latent_roundtrip)
  need_python
  need_golden
  # --save-latent writes [1,4,h,w] F32; feeding the golden's initial noise through --init-latent
  # reproduces diffusers (sd15 pipe_pndm_256: latents and the uint8 image).
  python3 "$HERE/golden_check.py" extract "$GOLDEN/sd15/pipe_pndm_256.safetensors" in.noise \
    "$T/noise.safetensors" || fail "extract in.noise"
  run 0 -m "$GOLDEN/models/tiny-sd15" \
      -p "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k" \
      -W 256 -H 256 --steps 10 --cfg-scale 7.5 --sampling-method pndm \
      --init-latent "$T/noise.safetensors" --save-latent "$T/final.safetensors" -o "$T/g.png" -q
  python3 "$HERE/golden_check.py" compare "$GOLDEN/sd15/pipe_pndm_256.safetensors" \
    "$T/final.safetensors" "$T/g.png" || fail "CLI output differs from the golden"
  ;;
demo)
  need_python
  # The README's demo path: a generated tiny SDXL model (needs only the shipped vocabulary).
  MM=${DF_MAKE_MODEL:?DF_MAKE_MODEL}
  "$MM" --arch tiny-sdxl --out "$T/tiny-sdxl" >"$T/mm.log" 2>&1 || { cat "$T/mm.log"; fail "df-make-model"; }
  run 0 -m "$T/tiny-sdxl" -p "a lighthouse at dusk" -W 128 -H 128 --steps 2 -o "$T/demo.png"
  python3 "$HERE/png_check.py" "$T/demo.png" 128 128 || fail "demo PNG"
  # the same model as one single-file checkpoint
  "$MM" --arch tiny-sd15 --layout single --out "$T/tiny-sd15.safetensors" >"$T/mm.log" 2>&1 \
    || { cat "$T/mm.log"; fail "df-make-model single"; }
  run 0 -m "$T/tiny-sd15.safetensors" -p "a lighthouse" -W 64 -H 64 --steps 2 -o "$T/s.png" -q
  python3 "$HERE/png_check.py" "$T/s.png" 64 64 || fail "single-file PNG"
  ;;
mpi)
  need_python
  # The same pipeline under mpiexec: full_sync (every step synchronous, exact GroupNorm) equals
  # the single-process run up to float order; the default DistriFusion mode runs and reports
  # statistics; a rank count the topology cannot use is a usage error.
  MPI=${DF_MPIEXEC:-mpiexec}
  command -v "$MPI" >/dev/null 2>&1 || { echo "SKIP: no mpiexec"; exit 77; }
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
  ARGS=(-m "$SDXL" -p "a cat" -W 128 -H 128 --steps 4 -q)
  run 0 "${ARGS[@]}" -o "$T/s.png" --save-latent "$T/s.safetensors"
  "$MPI" --oversubscribe -n 2 "$BIN" "${ARGS[@]}" --sync-mode full_sync --no-split-batch \
      -o "$T/m.png" --save-latent "$T/m.safetensors" >"$T/out" 2>"$T/err" \
    || { cat "$T/err"; fail "mpiexec -n 2 full_sync"; }
  [ "$(cat "$T/out")" = "$T/m.png" ] || fail "stdout of rank 0 should be the path only"
  python3 "$HERE/golden_check.py" relcmp "$T/s.safetensors" "$T/m.safetensors" 1e-5 \
    || fail "full_sync latents differ from the single process"
  "$MPI" --oversubscribe -n 2 "$BIN" -m "$SDXL" -p "a cat" -W 128 -H 128 --steps 6 \
      --warmup-steps 1 --stats -o "$T/a.png" >"$T/out" 2>"$T/err" \
    || { cat "$T/err"; fail "mpiexec -n 2 corrected_async_gn"; }
  grep -q "comm (rank 0, patch/corrected_async_gn" "$T/err" || { cat "$T/err"; fail "--stats"; }
  python3 "$HERE/png_check.py" "$T/a.png" 128 128 || fail "distributed PNG"
  # 64x64: 2 rows at the deepest level; 3 ranks (odd: no split batch) need 3: refused
  "$MPI" --oversubscribe -n 3 "$BIN" "${ARGS[@]}" -W 64 -H 64 -o "$T/x.png" >"$T/out" 2>"$T/err"
  rc=$?
  [ "$rc" -eq 2 ] || { cat "$T/err"; fail "3 ranks at 64x64: exit $rc, expected 2"; }
  grep -q "^distrifuse: error: .*the largest N for this size is 4" "$T/err" || { cat "$T/err"; fail "3 ranks msg"; }
  [ ! -e "$T/x.png" ] || fail "output written after an error"
  ;;
*)
  fail "unknown case"
  ;;
esac
echo "PASS [$CASE]"
