#!/usr/bin/env bash
# DistriFusion teaser (the seed's teaser, on this machine): one high-resolution image generated
#   (a) on 1 rank, (b) on 2 ranks with DistriFusion, (c) on 2 ranks with naive patch parallelism,
# each rank with 1 thread; prints latency, speedup and PSNR against the 1-rank image, and writes
# the three images side by side to teaser.png (left to right: 1 rank, DistriFusion, naive patch).
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

# runs one configuration; prints "denoise_s total_s"
run() {
  local img=$1
  shift
  "$@" "${common[@]}" -o "$img" 2>"$img.log" >/dev/null || { cat "$img.log" >&2; exit 1; }
  local d t
  d=$(sed -n 's/.*denoise \([0-9.]*\) s.*/\1/p' "$img.log" | tail -n 1)
  t=$(sed -n 's/.*total \([0-9.]*\) s.*/\1/p' "$img.log" | tail -n 1)
  echo "$d $t"
}

echo "teaser: ${SIZE}x${SIZE}, ${STEPS} steps, demo-sdxl model, 1 thread per rank" >&2
read -r d1 t1 < <(run "$out/1rank.png" "./$B/distrifuse")
read -r d2 t2 < <(run "$out/distrifusion.png" "$MPIEXEC" --oversubscribe -n 2 "./$B/distrifuse" \
  --parallelism patch --no-split-batch --warmup-steps 2)
read -r d3 t3 < <(run "$out/naive.png" "$MPIEXEC" --oversubscribe -n 2 "./$B/distrifuse" \
  --parallelism naive_patch --no-split-batch)
psnr=$("./$B/tools/df-compare" --out teaser.png --diff 8 "$out/1rank.png" "$out/distrifusion.png" \
  "$out/naive.png")
p2=$(echo "$psnr" | sed -n 1p | sed 's/.*PSNR \([^ ]*\) dB.*/\1/')
p3=$(echo "$psnr" | sed -n 2p | sed 's/.*PSNR \([^ ]*\) dB.*/\1/')
printf '%-34s %10s %10s %9s %14s\n' "run" "denoise s" "total s" "speedup" "PSNR vs 1 rank"
printf '%-34s %10.2f %10.2f %8.2fx %14s\n' "1 rank" "$d1" "$t1" 1 "-"
printf '%-34s %10.2f %10.2f %8.2fx %11s dB\n' "2 ranks DistriFusion (patch)" "$d2" "$t2" \
  "$(awk -v a="$d1" -v b="$d2" 'BEGIN{print a/b}')" "$p2"
printf '%-34s %10.2f %10.2f %8.2fx %11s dB\n' "2 ranks naive patch" "$d3" "$t3" \
  "$(awk -v a="$d1" -v b="$d3" 'BEGIN{print a/b}')" "$p3"
echo "teaser.png: 1 rank | DistriFusion | naive patch; second row: |difference to 1 rank| x 8"
echo "(speedup = ratio of denoising times; PSNR over the 8-bit images)"
