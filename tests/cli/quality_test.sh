#!/usr/bin/env bash
# End-to-end test of scripts/quality.sh (the paper's Table 1) on the demo model, small: 4
# captions, 256x256, 4 steps (warm-up 1), P = 2. Checks the table's rows, that its PSNR columns
# equal a PSNR computed here from the images (torchmetrics semantics, mean over images), that
# DistriFusion is closer to the 1-rank images than naive patch, and the metric fields.
# Environment: DF_BUILD (build folder), DF_SRC (source tree), DF_MPIEXEC. Exit 77 when
# build/distrifuse-metrics is not built (it comes with the metrics program), or no mpiexec /
# python3.
set -u
B=${DF_BUILD:?DF_BUILD}
SRC=${DF_SRC:?DF_SRC}
HERE=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL [quality]: $*" >&2; exit 1; }
[ -x "$B/distrifuse-metrics" ] || { echo "SKIP: $B/distrifuse-metrics is not built (quality.sh needs it for PSNR / LPIPS / FID)"; exit 77; }
MPI=${DF_MPIEXEC:-mpiexec}
command -v "$MPI" >/dev/null 2>&1 || { echo "SKIP: no mpiexec"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 not installed (PSNR check)"; exit 77; }
T=$(mktemp -d /tmp/df-quality-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

BUILD=$B MPIEXEC=$MPI "$SRC/scripts/quality.sh" --out "$T/q" -n 4 --size 256 --steps 4 --warmup-steps 1 \
    -t 1 >"$T/table" 2>"$T/err" || { cat "$T/err" "$T/table"; fail "quality.sh failed"; }
cat "$T/table"
grep -q "^Table 1 (quality.sh): demo-sdxl (random weights), 4 captions, 256x256, ddim 4 steps" "$T/table" \
  || fail "table title"
for d in 1rank distrifusion naive_patch; do
  [ "$(ls "$T/q/$d" | tr '\n' ' ')" = "0000.png 0001.png 0002.png 0003.png " ] || fail "$d images: $(ls "$T/q/$d")"
done
row() { grep "^$1 " "$T/table" | head -n 1; }
R1=$(row "1 rank (original)"); R2=$(row "DistriFusion (patch)"); R3=$(row "naive patch")
[ -n "$R1" ] && [ -n "$R2" ] && [ -n "$R3" ] || fail "missing rows"
# fields after the method name: ranks latency denoise speedup | psnr lpips fid
f() { echo "$1" | sed 's/^[A-Za-z ()1]*  *//' | tr -s ' ' | cut -d' ' -f"$2"; }
[ "$(f "$R2" 1)" = 2 ] && [ "$(f "$R3" 1)" = 2 ] || fail "ranks column"
p2=$(f "$R2" 6); p3=$(f "$R3" 6)
python3 - "$T/q" "$p2" "$p3" "$HERE" <<'PY' || fail "PSNR columns"
import math, os, sys
sys.path.insert(0, sys.argv[4])
from png_check import read_png
root, want = sys.argv[1], {"distrifusion": float(sys.argv[2]), "naive_patch": float(sys.argv[3])}
for d, w in want.items():
    vals = []
    for n in sorted(os.listdir(root + "/1rank")):
        a = read_png(root + "/1rank/" + n)[2]
        b = read_png(root + "/" + d + "/" + n)[2]
        mse = sum(((x - y) / 255.0) ** 2 for x, y in zip(a, b)) / len(a)
        vals.append(10 * math.log10(1.0 / mse) if mse > 0 else float("inf"))
    got = sum(vals) / len(vals)
    print("%s: PSNR here %.3f, table %.2f" % (d, got, w))
    if abs(got - w) > 0.006:
        sys.exit("%s: table PSNR %.2f != %.3f" % (d, w, got))
if not want["distrifusion"] > want["naive_patch"]:
    sys.exit("DistriFusion (%.2f dB) should be closer to 1 rank than naive patch (%.2f dB)"
             % (want["distrifusion"], want["naive_patch"]))
PY
grep -q '"count"[[:space:]]*:[[:space:]]*4' "$T/q/metrics-distrifusion.json" || fail "metrics count"
GM=$SRC/../shared/golden/metrics
if [ -f "$GM/lpips_alex_random.safetensors" ] && [ -f "$GM/fid_inception_random.safetensors" ]; then
  for r in "$R2" "$R3"; do
    [[ "$(f "$r" 7)" =~ ^[0-9.]+$ ]] && [[ "$(f "$r" 8)" =~ ^[0-9.]+$ ]] || fail "LPIPS / FID not numbers: $r"
  done
  grep -q "random-weight LPIPS / FID networks" "$T/table" || fail "the random-weight note"
else
  echo "note: no ../shared/golden/metrics: LPIPS / FID columns not checked"
fi
echo "PASS [quality]"
