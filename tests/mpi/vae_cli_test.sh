#!/usr/bin/env bash
# The parallel VAE decode through the programs (issue 9 items 1 and 4), tiny SDXL fixture made at
# test time: under mpiexec the default decode (one band per rank) gives the image of
# --no-parallel-vae (8-bit, PSNR >= 50 dB: within +-1 on almost every value), for 2 ranks (CFG
# split) and 3 ranks (no split); --vae-tiling combines with the split; distrifuse-bench
# --output-type pil reports the decode split (text and JSON keys vae_compute_s, vae_halo_s,
# vae_gather_s, parallel_vae).
# Environment: DF_BIN, DF_BENCH, DF_MAKE_MODEL, DF_COMPARE, DF_MPIEXEC (mpiexec --oversubscribe).
set -u
BIN=${DF_BIN:?DF_BIN}
BENCH=${DF_BENCH:?DF_BENCH}
MK=${DF_MAKE_MODEL:?DF_MAKE_MODEL}
CMP=${DF_COMPARE:?DF_COMPARE}
read -r -a MPI <<<"${DF_MPIEXEC:?DF_MPIEXEC}"
T=$(mktemp -d /tmp/df-vae-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=1
fail() { echo "FAIL: $*" >&2; exit 1; }
"$MK" --arch tiny-sdxl --out "$T/m" >/dev/null || fail "df-make-model"
common=(-m "$T/m" -p "a red cube" -W 200 -H 192 --steps 2 -t 1)

gen() { # gen NAME NP ARGS...
  local name=$1 np=$2; shift 2
  "${MPI[@]}" -n "$np" "$BIN" "${common[@]}" "$@" -o "$T/$name.png" >"$T/$name.out" 2>"$T/$name.err" \
    || { cat "$T/$name.err"; fail "$name: exit status"; }
  grep -q 'timings: .*VAE [0-9.]* s' "$T/$name.err" || { cat "$T/$name.err"; fail "$name: no timings"; }
}
same() { # same REF IMG: PSNR >= 50 dB (inf when identical)
  local out p
  out=$("$CMP" "$T/$1.png" "$T/$2.png") || fail "df-compare $1 $2"
  p=$(sed 's/.*PSNR \([^ ]*\) dB.*/\1/' <<<"$out")
  echo "$2 vs $1: PSNR $p dB"
  [ "$p" = inf ] || awk -v p="$p" 'BEGIN{exit !(p >= 50)}' || fail "$2 differs from $1 ($p dB)"
}

gen n2_serial 2 --no-parallel-vae
gen n2_par 2
same n2_serial n2_par
gen n3_serial 3 --no-split-batch --no-parallel-vae
gen n3_par 3 --no-split-batch
same n3_serial n3_par
same n2_serial n3_par
gen n2_tiled 2 --vae-tiling -W 576
grep -q 'VAE [0-9.]* s (tiled)' "$T/n2_tiled.err" || { cat "$T/n2_tiled.err"; fail "tiled run not reported as tiled"; }

# distrifuse-bench: decode split in text and JSON
"${MPI[@]}" -n 2 "$BENCH" -m "$T/m" -W 200 -H 192 --steps 2 -t 1 --warmup-times 0 --test-times 1 \
  --output-type pil -q >"$T/b.out" 2>"$T/b.err" || { cat "$T/b.err"; fail "bench exit status"; }
grep -q 'VAE decode (rank 0, last run) [0-9.]* s: compute [0-9.]* s, halo [0-9.]* s, gather [0-9.]* s (parallel' \
  "$T/b.err" || { cat "$T/b.err"; fail "bench: no decode split line"; }
js=$(tail -n 1 "$T/b.out")
for k in '"vae_s":' '"vae_compute_s":' '"vae_halo_s":' '"vae_gather_s":' '"parallel_vae":true' \
         '"latency_s":' '"denoise_s":'; do
  grep -q "$k" <<<"$js" || fail "bench JSON lacks $k: $js"
done
"${MPI[@]}" -n 2 "$BENCH" -m "$T/m" -W 200 -H 192 --steps 2 -t 1 --warmup-times 0 --test-times 1 \
  --output-type pil --no-parallel-vae -q >"$T/b2.out" 2>"$T/b2.err" || { cat "$T/b2.err"; fail "bench --no-parallel-vae"; }
grep -q '"parallel_vae":false' <<<"$(tail -n 1 "$T/b2.out")" || fail "bench --no-parallel-vae JSON"
grep -q '"vae_halo_s":0,' <<<"$(tail -n 1 "$T/b2.out")" || fail "bench --no-parallel-vae: halo time not 0"
echo "PASS"
