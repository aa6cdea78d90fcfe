#!/usr/bin/env bash
# Tests of batch generation in `distrifuse` (--prompt-file, --output-dir, -b, --split,
# --image-groups). Usage: batch_test.sh CASE
# Every image of a batch must be bit-identical (cmp) to a single `distrifuse -p CAPTION_i
# -s SEED+i` run with the same options, on the same number of ranks per image.
# Environment: DF_BIN (distrifuse), DF_MAKE_MODEL (df-make-model), DF_MPIEXEC. Exit 0 pass,
# 1 fail, 77 skip. Fixtures: a tiny-sdxl model written by df-make-model at test time.
set -u
CASE=${1:?case}
BIN=${DF_BIN:?DF_BIN}
MM=${DF_MAKE_MODEL:?DF_MAKE_MODEL}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/df-batch-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
need_mpi() {
  MPI=${DF_MPIEXEC:-mpiexec}
  command -v "$MPI" >/dev/null 2>&1 || { echo "SKIP: no mpiexec"; exit 77; }
}

"$MM" --arch tiny-sdxl --out "$T/m" >"$T/mm.log" 2>&1 || { cat "$T/mm.log"; fail "df-make-model"; }
# small and fast; 4 steps with a warm-up of 1 so that DistriFusion's asynchronous steps run
OPTS=(-m "$T/m" -W 64 -H 64 --steps 4 -t 1 --warmup-steps 1)

# run EXPECTED_RC CMD...: keeps stdout/stderr in $T/out, $T/err (stdin closed: mpiexec reads it)
run() {
  local want=$1; shift
  "$@" >"$T/out" 2>"$T/err" </dev/null
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "--- stdout"; cat "$T/out"; echo "--- stderr"; cat "$T/err"
    fail "exit $rc, expected $want for: $*"
  fi
}

CAPS=("a red cube on a table" "a blue sphere, studio light" "a green cone" "zebra" "two cats")
printf '%s\n' "${CAPS[@]}" >"$T/caps.txt"

# single_refs PREFIX SEED LAUNCH...: reference images PREFIX_i.png of single runs, one per caption
single_refs() {
  local pre=$1 seed=$2; shift 2
  for i in "${!CAPS[@]}"; do
    run 0 "$@" "$BIN" "${OPTS[@]}" -p "${CAPS[$i]}" -s $((seed + i)) -q -o "${pre}_$i.png"
  done
}

# same_as_refs DIR PREFIX: DIR/{i:04d}.png == PREFIX_i.png for every caption
same_as_refs() {
  for i in "${!CAPS[@]}"; do
    local f
    f=$(printf '%s/%04d.png' "$1" "$i")
    [ -f "$f" ] || fail "$f missing"
    cmp -s "$f" "$2_$i.png" || fail "$f differs from the single run of caption $i"
  done
}

expect_error() { # RC MATCH ARGS...: one error line, nothing on stdout, no image written
  local rc=$1 match=$2; shift 2
  rm -rf "$T/e"
  run "$rc" "$BIN" "$@"
  [ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err"; fail "expected one error line for: $*"; }
  grep -q "^distrifuse: error: .*$match" "$T/err" || { cat "$T/err"; fail "message lacks '$match'"; }
  [ ! -s "$T/out" ] || fail "stdout not empty on error"
  ! ls "$T"/e/*.png "$T"/e.png >/dev/null 2>&1 || fail "image written after an error: $*"
}

case "$CASE" in
list)
  command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 not installed (PNG checks)"; exit 77; }
  single_refs "$T/s" 100
  run 0 "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/d" -s 100 -o "$T/ignored.png"
  same_as_refs "$T/d" "$T/s"
  [ ! -e "$T/ignored.png" ] || fail "-o must be ignored with --output-dir"
  [ "$(cat "$T/out")" = "$(printf '%s\n' "$T"/d/000{0,1,2,3,4}.png)" ] || { cat "$T/out"; fail "stdout: the paths"; }
  grep -q "image 5/5: .*0004.png (seed 104) .*ETA" "$T/err" || { cat "$T/err"; fail "no image progress with an ETA"; }
  grep -q "batch: 5 images generated, 0 skipped" "$T/err" || { cat "$T/err"; fail "no summary"; }
  ls "$T"/d/*tmp* >/dev/null 2>&1 && fail "temporary file left"
  python3 "$HERE/png_check.py" "$T/d/0003.png" 64 64 \
    $'zebra\nSteps: 4, Sampler: euler, CFG scale: 5, Seed: 103, Size: 64x64, Model: m' \
    || fail "parameters chunk of image 3"
  # the same list as a JSON array, and as a JSON object (values in the file's key order), with
  # CRLF lines, blank lines and a BOM in the text form: identical images
  python3 - "$T" "${CAPS[@]}" <<'EOF' || fail "writing the JSON lists"
import json, sys
t, caps = sys.argv[1], sys.argv[2:]
json.dump(caps, open(t + "/caps.json", "w"))
keys = ["z", "b", "10", "2", "a"]  # not sorted: file order counts
open(t + "/obj.json", "w").write("{" + ", ".join(json.dumps(k) + ": " + json.dumps(c) for k, c in zip(keys, caps)) + "}")
open(t + "/crlf.txt", "wb").write(b"\xef\xbb\xbf\r\n" + b"".join(c.encode() + b"\r\n\r\n" for c in caps))
EOF
  for f in caps.json obj.json crlf.txt; do
    run 0 "$BIN" "${OPTS[@]}" --prompt-file "$T/$f" --output-dir "$T/$f.d" -s 100 -q
    same_as_refs "$T/$f.d" "$T/s"
  done
  # -b N (stable-diffusion.cpp): N images of one prompt, seeds SEED+i, out.png, out_2.png, ...
  for i in 0 1 2; do run 0 "$BIN" "${OPTS[@]}" -p "${CAPS[1]}" -s $((7 + i)) -q -o "$T/b$i.png"; done
  run 0 "$BIN" "${OPTS[@]}" -p "${CAPS[1]}" -s 7 -b 3 -o "$T/bat.png"
  cmp -s "$T/bat.png" "$T/b0.png" && cmp -s "$T/bat_2.png" "$T/b1.png" && cmp -s "$T/bat_3.png" "$T/b2.png" \
    || fail "-b 3 images differ from single runs with seeds 7, 8, 9"
  [ "$(cat "$T/out")" = "$(printf '%s\n' "$T/bat.png" "$T/bat_2.png" "$T/bat_3.png")" ] || fail "-b stdout"
  run 0 "$BIN" "${OPTS[@]}" -p "${CAPS[1]}" -s 7 --batch-count 2 --output-dir "$T/bd" -q
  cmp -s "$T/bd/0000.png" "$T/b0.png" && cmp -s "$T/bd/0001.png" "$T/b1.png" || fail "-b with --output-dir"
  ;;
resume)
  single_refs "$T/s" 5
  run 0 "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/d" -s 5 -q
  same_as_refs "$T/d" "$T/s"
  for i in 0 1 2 3 4; do stat -c '%i %y' "$T/d/000$i.png" >"$T/st$i"; done
  # a second run skips everything
  run 0 "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/d" -s 5
  grep -q "batch: 0 images generated, 5 skipped" "$T/err" || { cat "$T/err"; fail "not all skipped"; }
  [ ! -s "$T/out" ] || fail "skipped images printed"
  # damage: 1 truncated, 2 one byte flipped in the middle, 3 deleted, 4 an image of other
  # parameters (image 0's file); 0 is intact and must not be rewritten
  head -c 500 "$T/s_1.png" >"$T/d/0001.png"
  python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=0x5a; open(p,'wb').write(b)" "$T/d/0002.png" \
    || fail "corrupting a file"
  cmp -s "$T/d/0002.png" "$T/s_2.png" && fail "corruption did not change the file"
  rm "$T/d/0003.png"
  cp "$T/s_0.png" "$T/d/0004.png"
  run 0 "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/d" -s 5
  grep -q "batch: 4 images generated, 1 skipped" "$T/err" || { cat "$T/err"; fail "resume counts"; }
  same_as_refs "$T/d" "$T/s"
  [ "$(stat -c '%i %y' "$T/d/0000.png")" = "$(cat "$T/st0")" ] || fail "a complete image was rewritten"
  [ "$(cat "$T/out")" = "$(printf '%s\n' "$T"/d/000{1,2,3,4}.png)" ] || { cat "$T/out"; fail "resume stdout"; }
  # other parameters (steps): every image is regenerated
  run 0 "$BIN" "${OPTS[@]}" --steps 3 --prompt-file "$T/caps.txt" --output-dir "$T/d" -s 5 -q
  [ "$(wc -l <"$T/out")" -eq 5 ] || fail "changed parameters must regenerate every image"
  ;;
split)
  single_refs "$T/s" 0
  # n = 5, N = 3: chunk 2 -> [0,2) [2,4) [4,5); the index (and seed) stays global
  for k in 0 1 2; do
    run 0 "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/d$k" -s 0 -q --split $k 3
  done
  [ "$(ls "$T/d0")" = "$(printf '0000.png\n0001.png')" ] || fail "shard 0: $(ls "$T/d0")"
  [ "$(ls "$T/d1")" = "$(printf '0002.png\n0003.png')" ] || fail "shard 1: $(ls "$T/d1")"
  [ "$(ls "$T/d2")" = "0004.png" ] || fail "shard 2: $(ls "$T/d2")"
  mkdir "$T/all" && cp "$T"/d?/*.png "$T/all/"
  same_as_refs "$T/all" "$T/s"
  # N = 4: chunk 2 -> shard 3 is [6, 5): empty, not an error
  run 0 "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/d3" -s 0 -q --split 3 4
  [ -z "$(ls "$T/d3")" ] || fail "empty shard wrote images"
  # shards of a -b batch
  run 0 "$BIN" "${OPTS[@]}" -p "${CAPS[2]}" -b 5 --output-dir "$T/bb" -s 0 -q --split 1 2
  [ "$(ls "$T/bb")" = "$(printf '0003.png\n0004.png')" ] || fail "-b shard: $(ls "$T/bb")"
  run 0 "$BIN" "${OPTS[@]}" -p "${CAPS[2]}" -s 4 -q -o "$T/b4.png"
  cmp -s "$T/bb/0004.png" "$T/b4.png" || fail "-b shard image 4"
  ;;
usage)
  run 0 "$BIN" --help
  for f in --prompt-file --output-dir "-b, --batch-count" "--split K N" --image-groups "{i:04d}.png"; do
    grep -q -- "$f" "$T/out" || fail "--help lacks $f"
  done
  echo "[]" >"$T/empty.json"
  : >"$T/empty.txt"
  printf '\n  \n' >"$T/blank.txt"
  echo '["a", "b",' >"$T/bad.json"
  echo '["a", 3]' >"$T/num.json"
  echo '{"x": "a", "y": null}' >"$T/null.json"
  P=(--prompt-file "$T/caps.txt" --output-dir "$T/e")
  expect_error 2 "either -p/--prompt or --prompt-file" "${OPTS[@]}" -p x "${P[@]}"
  expect_error 2 "needs two values" "${OPTS[@]}" "${P[@]}" --split 1
  expect_error 2 "needs two values" "${OPTS[@]}" "${P[@]}" --split=1 2
  expect_error 2 "split K N needs 0 <= K < N (got 3 3)" "${OPTS[@]}" "${P[@]}" --split 3 3
  expect_error 2 "split K N needs 0 <= K < N (got -1 2)" "${OPTS[@]}" "${P[@]}" --split -1 2
  expect_error 2 "invalid value 'x' for --split" "${OPTS[@]}" "${P[@]}" --split x 2
  expect_error 2 "batch-count must be >= 1" "${OPTS[@]}" -p x -b 0 -o "$T/e.png"
  expect_error 2 "batch-count applies to -p" "${OPTS[@]}" "${P[@]}" -b 2
  expect_error 2 "image-groups 2 must divide the number of ranks (1)" "${OPTS[@]}" "${P[@]}" --image-groups 2
  expect_error 2 "save-latent" "${OPTS[@]}" "${P[@]}" --save-latent "$T/e.safetensors"
  expect_error 1 "empty.txt: no captions" "${OPTS[@]}" --prompt-file "$T/empty.txt" --output-dir "$T/e"
  expect_error 1 "blank.txt: no captions" "${OPTS[@]}" --prompt-file "$T/blank.txt" --output-dir "$T/e"
  expect_error 1 "empty.json: the JSON array holds no captions" "${OPTS[@]}" --prompt-file "$T/empty.json" --output-dir "$T/e"
  expect_error 1 "bad.json: not valid JSON (error at line 1, column 11)" "${OPTS[@]}" --prompt-file "$T/bad.json" --output-dir "$T/e"
  expect_error 1 "num.json: item 1 of the JSON array is not a string" "${OPTS[@]}" --prompt-file "$T/num.json" --output-dir "$T/e"
  expect_error 1 "null.json: the value of key 'y' is not a string" "${OPTS[@]}" --prompt-file "$T/null.json" --output-dir "$T/e"
  expect_error 1 "cannot read the caption list: .*missing.txt" "${OPTS[@]}" --prompt-file "$T/missing.txt" --output-dir "$T/e"
  : >"$T/afile"
  expect_error 1 "afile' is not a directory" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/afile/sub"
  ;;
mpi)
  need_mpi
  # 2 ranks, DistriFusion patch parallelism without split batch (P = 2): batch == single runs
  M2=("$MPI" --oversubscribe -n 2)
  D=(--no-split-batch)
  OPTS+=("${D[@]}")
  single_refs "$T/m" 40 "${M2[@]}"
  run 0 "${M2[@]}" "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/d" -s 40
  same_as_refs "$T/d" "$T/m"
  [ "$(cat "$T/out")" = "$(printf '%s\n' "$T"/d/000{0,1,2,3,4}.png)" ] || { cat "$T/out"; fail "stdout"; }
  # the distributed images really differ from the single-process ones (patch parallelism ran)
  run 0 "$BIN" "${OPTS[@]}" -p "${CAPS[0]}" -s 40 -q -o "$T/one.png"
  cmp -s "$T/one.png" "$T/m_0.png" && fail "2-rank image equals the 1-rank image"
  # resume under mpiexec: delete one, the others are skipped
  rm "$T/d/0002.png"
  run 0 "${M2[@]}" "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/d" -s 40
  grep -q "batch: 1 images generated, 4 skipped" "$T/err" || { cat "$T/err"; fail "mpi resume"; }
  same_as_refs "$T/d" "$T/m"
  # naive patch with -b and a split; split batch (the CFG halves on the 2 ranks) with -b
  NP=(--parallelism naive_patch -p zebra -q)
  run 0 "${M2[@]}" "$BIN" "${OPTS[@]}" "${NP[@]}" -s 3 -b 3 --split 1 2 --output-dir "$T/nb"
  run 0 "${M2[@]}" "$BIN" "${OPTS[@]}" "${NP[@]}" -s 5 -o "$T/n5.png"
  [ "$(ls "$T/nb")" = "0002.png" ] && cmp -s "$T/nb/0002.png" "$T/n5.png" || fail "naive patch -b shard"
  SB=(-m "$T/m" -W 64 -H 64 --steps 4 -t 1 -p zebra -q)
  run 0 "${M2[@]}" "$BIN" "${SB[@]}" -s 3 -b 2 -o "$T/sb.png"
  run 0 "${M2[@]}" "$BIN" "${SB[@]}" -s 4 -o "$T/sb4.png"
  cmp -s "$T/sb_2.png" "$T/sb4.png" || fail "split batch -b image 1"
  ;;
groups)
  need_mpi
  OPTS+=(--no-split-batch)
  # N = 4 ranks, G = 2 groups of 2: image i == mpiexec -n 2 single run; groups take i mod 2
  single_refs "$T/m" 9 "$MPI" --oversubscribe -n 2
  run 0 "$MPI" --oversubscribe -n 4 "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/g2" \
      -s 9 --image-groups 2
  same_as_refs "$T/g2" "$T/m"
  grep -q "2 image groups of 2 ranks" "$T/err" || { cat "$T/err"; fail "group log"; }
  grep -q "\[r0/4\] group 0: image 3/3: .*0004.png" "$T/err" || { cat "$T/err"; fail "group 0 takes 0, 2, 4"; }
  grep -q "\[r2/4\] group 1: image 2/2: .*0003.png" "$T/err" || { cat "$T/err"; fail "group 1 takes 1, 3"; }
  [ "$(sort "$T/out")" = "$(printf '%s\n' "$T"/g2/000{0,1,2,3,4}.png)" ] || { cat "$T/out"; fail "stdout"; }
  # G = N = 4: one rank per group == single-process runs
  single_refs "$T/s" 9
  run 0 "$MPI" --oversubscribe -n 4 "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/g4" \
      -s 9 --image-groups 4
  same_as_refs "$T/g4" "$T/s"
  # with a shard: images [3, 5) on 2 groups
  run 0 "$MPI" --oversubscribe -n 4 "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/gs" \
      -s 9 --image-groups 2 --split 1 2 -q
  [ "$(ls "$T/gs")" = "$(printf '0003.png\n0004.png')" ] && cmp -s "$T/gs/0003.png" "$T/m_3.png" \
    && cmp -s "$T/gs/0004.png" "$T/m_4.png" || fail "groups with a split"
  # G must divide N
  run 2 "$MPI" --oversubscribe -n 4 "$BIN" "${OPTS[@]}" --prompt-file "$T/caps.txt" --output-dir "$T/gx" \
      -s 9 --image-groups 3
  grep -q "^distrifuse: error: --image-groups 3 must divide the number of ranks (4)" "$T/err" \
    || { cat "$T/err"; fail "G not dividing N"; }
  [ ! -e "$T/gx" ] || fail "output written after a usage error"
  ;;
*)
  fail "unknown case"
  ;;
esac
echo "PASS [$CASE]"
