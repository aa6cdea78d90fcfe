#!/usr/bin/env bash
# DistriFusion teaser (the seed's teaser, on this machine): one high-resolution image generated
#   (a) on 1 rank, (b) on 2 ranks with DistriFusion and the CFG split (each rank one CFG half),
#   (c) on 2 ranks with DistriFusion patches (no CFG split), (d) on 2 ranks with naive patch
# parallelism, each rank with 1 thread; prints the end-to-end latency (text encode + denoise +
# VAE decode; with 2 ranks the decode runs split across both), speedup and PSNR against the
# 1-rank image, and writes the images side by side to teaser.png (left to right: 1 rank,
# DistriFusion patches, naive patch, DistriFusion CFG split).
# A second row shows each image's difference to the 1-rank image (x8): naive patch has a bright
# seam across the middle (its halves never see each other); DistriFusion's does not.
# Usage: scripts/teaser.sh [SIZE] [STEPS]     (defaults 1024 8; the model is build/models/demo-sdxl;
#        BUILD=dir uses an existing build folder instead of running make)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1024}
STEPS=${2:-8}
B=${BUILD:-build}
[ -n "${BUILD:-}" ] || make >/dev/null
M=$B/models/demo-sdxl
if [ ! -f "$M/model_index.json" ]; then
  mkdir -p "$B/models"
  "./$B/tools/df-make-model" --arch demo-sdxl --out "$M"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIEXEC=${MPIEXEC:-mpiexec}
out=$B/teaser
mkdir -p "$out"
common=(-m "$M" -p "a lighthouse on a cliff at dusk, oil painting" -W "$SIZE" -H "$SIZE"
        --steps "$STEPS" -s 7 -t 1)

# runs one configuration; prints "denoise_s vae_s end_to_end_s" (rank 0's timings line;
# end to end = text encode + denoise + VAE decode)
run() {
  local img=$1
  shift
  "$@" "${common[@]}" -o "$img" 2>"$img.log" >/dev/null || { cat "$img.log" >&2; exit 1; }
  local line
  line=$(grep 'timings:' "$img.log" | tail -n 1)
  sed -n 's/.*text encode \([0-9.]*\) s, denoise \([0-9.]*\) s.*VAE \([0-9.]*\) s.*/\1 \2 \3/p' \
    <<<"$line" | awk '{printf "%s %s %.3f\n", $2, $3, $1 + $2 + $3}'
}

echo "teaser: ${SIZE}x${SIZE}, ${STEPS} steps, demo-sdxl model, 1 thread per rank" >&2
read -r d1 v1 e1 < <(run "$out/1rank.png" "./$B/distrifuse")
read -r d2 v2 e2 < <(run "$out/distrifusion_cfg.png" "$MPIEXEC" --oversubscribe -n 2 \
  "./$B/distrifuse" --parallelism patch --warmup-steps 2)
read -r d3 v3 e3 < <(run "$out/distrifusion.png" "$MPIEXEC" --oversubscribe -n 2 "./$B/distrifuse" \
  --parallelism patch --no-split-batch --warmup-steps 2)
read -r d4 v4 e4 < <(run "$out/naive.png" "$MPIEXEC" --oversubscribe -n 2 "./$B/distrifuse" \
  --parallelism naive_patch --no-split-batch)
psnr=$("./$B/tools/df-compare" --out teaser.png --diff 8 "$out/1rank.png" "$out/distrifusion.png" \
  "$out/naive.png" "$out/distrifusion_cfg.png")
p3=$(echo "$psnr" | sed -n 1p | sed 's/.*PSNR \([^ ]*\) dB.*/\1/')
p4=$(echo "$psnr" | sed -n 2p | sed 's/.*PSNR \([^ ]*\) dB.*/\1/')
p2=$(echo "$psnr" | sed -n 3p | sed 's/.*PSNR \([^ ]*\) dB.*/\1/')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
printf '%-38s %9s %7s %9s %8s %14s\n' "run" "denoise s" "VAE s" "e2e s" "speedup" "PSNR vs 1 rank"
printf '%-38s %9.2f %7.2f %9.2f %7.2fx %14s\n' "1 rank" "$d1" "$v1" "$e1" 1 "-"
printf '%-38s %9.2f %7.2f %9.2f %7sx %11s dB\n' "2 ranks DistriFusion, CFG split" "$d2" "$v2" \
  "$e2" "$(ratio "$e1" "$e2")" "$p2"
printf '%-38s %9.2f %7.2f %9.2f %7sx %11s dB\n' "2 ranks DistriFusion, no CFG split" "$d3" \
  "$v3" "$e3" "$(ratio "$e1" "$e3")" "$p3"
printf '%-38s %9.2f %7.2f %9.2f %7sx %11s dB\n' "2 ranks naive patch, no CFG split" "$d4" "$v4" \
  "$e4" "$(ratio "$e1" "$e4")" "$p4"
echo "teaser.png: 1 rank | DistriFusion (no CFG split) | naive patch | DistriFusion (CFG split);"
echo "second row: |difference to 1 rank| x 8"
echo "(e2e = end-to-end latency on rank 0: text encode + denoise + VAE decode; speedup = ratio of"
echo " e2e latencies; with 2 ranks the VAE decode is split into one row band per rank; PSNR over"
echo " the 8-bit images)"
