#!/usr/bin/env bash
# The paper's Table 1 on your model and your captions: the same caption list generated
#   (a) on 1 rank (the original model), (b) with DistriFusion on P ranks, (c) with naive patch
#   parallelism on P ranks,
# then PSNR / LPIPS / FID of (b) and (c) against (a), and of all three against a ground-truth
# folder when one is given (build/distrifuse-metrics, compute_metrics.py semantics), plus the
# latency per image and the speedup over 1 rank.
#
# usage: scripts/quality.sh [options] [-- extra distrifuse options]
#   -m MODEL            your model; the defaults are then the paper's: --sampling-method ddim
#                       --steps 50 --cfg-scale 5 --warmup-steps 4 --no-split-batch, P = 2, the
#                       model's image size
#                       (without -m: the demo model build/models/demo-sdxl (made by
#                       df-make-model), 8 built-in captions, 512x512, 8 steps, P = 2, and the
#                       random-weight LPIPS / FID networks of ../shared/golden/metrics when
#                       present: those numbers only exercise the path)
#   --prompt-file FILE  captions (one per line, or a JSON array / object of strings); default:
#                       8 built-in captions
#   -n COUNT            only the first COUNT captions
#   --gt DIR            ground-truth images, one per caption in caption order (sorted names, as
#                       compute_metrics.py pairs them): adds the "vs ground truth" columns
#                       (distrifuse-metrics --is-gt)
#   -P N                ranks of the parallel runs (default 2)
#   -W W, -H H, --size S  image size (S = both)
#   --steps N, --sampling-method S, --cfg-scale G, --warmup-steps N, -s SEED (default 0:
#                       image i has seed i, as generate_coco.py), --split-batch (split the CFG
#                       halves over the ranks instead of --no-split-batch)
#   -t N                threads per rank, for every run (default: cores / P, at least 1)
#   --lpips-weights F, --fid-weights F   metric network weights (.safetensors)
#   --out DIR           output folder (default build/quality): DIR/1rank, DIR/distrifusion,
#                       DIR/naive_patch ({i:04d}.png), logs, and DIR/table.txt
#   --keep              keep (resume) the images already in DIR instead of regenerating
#                       (latency is then measured only over the regenerated images)
# Environment: BUILD (build folder, default build), MPIEXEC (default mpiexec), MPIEXEC_FLAGS
# (default --oversubscribe; empty: none), METRICS (default $BUILD/distrifuse-metrics).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$ROOT/build}
case "$B" in /*) ;; *) B=$ROOT/$B ;; esac
BIN=$B/distrifuse
METRICS=${METRICS:-$B/distrifuse-metrics}
MPIEXEC=${MPIEXEC:-mpiexec}
read -r -a MPIFLAGS <<<"${MPIEXEC_FLAGS---oversubscribe}"
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}

die() { echo "quality.sh: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

MODEL="" PROMPTS="" COUNT="" GT="" P=2 W="" H="" STEPS="" SAMPLER="" CFG="" WARMUP="" SEED=0
SPLIT=0 THREADS="" LPIPS_W="" FID_W="" OUT="$B/quality" KEEP=0 EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    -m) MODEL=$2; shift 2 ;;
    --prompt-file) PROMPTS=$2; shift 2 ;;
    -n) COUNT=$2; shift 2 ;;
    --gt) GT=$2; shift 2 ;;
    -P) P=$2; shift 2 ;;
    -W) W=$2; shift 2 ;;
    -H) H=$2; shift 2 ;;
    --size) W=$2; H=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --sampling-method) SAMPLER=$2; shift 2 ;;
    --cfg-scale) CFG=$2; shift 2 ;;
    --warmup-steps) WARMUP=$2; shift 2 ;;
    -s) SEED=$2; shift 2 ;;
    --split-batch) SPLIT=1; shift ;;
    -t) THREADS=$2; shift 2 ;;
    --lpips-weights) LPIPS_W=$2; shift 2 ;;
    --fid-weights) FID_W=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "quality.sh: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$P" =~ ^[1-9][0-9]*$ ]] || { echo "quality.sh: error: -P needs a positive integer" >&2; exit 2; }
[ -z "$COUNT" ] || [[ "$COUNT" =~ ^[1-9][0-9]*$ ]] || { echo "quality.sh: error: -n needs a positive integer" >&2; exit 2; }
[ -x "$BIN" ] || die "$BIN not found: build first (make)"
[ -x "$METRICS" ] || die "$METRICS not found: build first (make); it computes PSNR / LPIPS / FID"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

GOLDEN_METRICS=$ROOT/../shared/golden/metrics
if [ -z "$MODEL" ]; then
  # the demo: a random-weight SDXL-structured model made here (atomically: tests run in parallel)
  MODEL=$B/models/demo-sdxl
  if [ ! -f "$MODEL/model_index.json" ]; then
    mkdir -p "$B/models"
    tmp=$(mktemp -d "$B/models/.demo-sdxl.XXXXXX")
    "$B/tools/df-make-model" --arch demo-sdxl --out "$tmp/m" >/dev/null
    mv -T "$tmp/m" "$MODEL" 2>/dev/null || true
    rm -rf "$tmp"
  fi
  NAME="demo-sdxl (random weights)"
  : "${W:=512}" "${H:=512}" "${STEPS:=8}"
  if [ -z "$LPIPS_W" ] && [ -f "$GOLDEN_METRICS/lpips_alex_random.safetensors" ]; then
    LPIPS_W=$GOLDEN_METRICS/lpips_alex_random.safetensors
    NETS="random-weight LPIPS / FID networks of the test data: those two columns only exercise the path"
  fi
  if [ -z "$FID_W" ] && [ -f "$GOLDEN_METRICS/fid_inception_random.safetensors" ]; then
    FID_W=$GOLDEN_METRICS/fid_inception_random.safetensors
  fi
  [ -n "$PROMPTS" ] || : "${COUNT:=8}"
else
  [ -e "$MODEL" ] || die "model '$MODEL' not found"
  NAME=$(basename "$MODEL")
  : "${STEPS:=50}"
fi
: "${SAMPLER:=ddim}" "${CFG:=5}" "${WARMUP:=4}"
NETS=${NETS:-"LPIPS: ${LPIPS_W:-no weights}; FID: ${FID_W:-no weights}"}
if [ -z "$THREADS" ]; then
  THREADS=$(( $(nproc) / P ))
  [ "$THREADS" -ge 1 ] || THREADS=1
fi

# the caption list
CAPS=$OUT/captions.txt
if [ -n "$PROMPTS" ]; then
  [ -f "$PROMPTS" ] || die "caption list '$PROMPTS' not found"
  if [ -n "$COUNT" ]; then
    # the first COUNT captions, whatever the format (distrifuse --split cannot take a prefix)
    if head -c 64 "$PROMPTS" | tr -d ' \t\r\n\357\273\277' | grep -q '^[[{]'; then
      command -v python3 >/dev/null || die "-n with a JSON caption list needs python3"
      python3 - "$PROMPTS" "$COUNT" >"$CAPS" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8-sig"))
caps = list(d.values()) if isinstance(d, dict) else d
print(json.dumps(caps[: int(sys.argv[2])]))
EOF
    else
      sed 's/^\xef\xbb\xbf//; s/\r$//' "$PROMPTS" | grep -v '^[[:space:]]*$' | head -n "$COUNT" >"$CAPS"
    fi
  else
    cp "$PROMPTS" "$CAPS"
  fi
else
  cat >"$CAPS" <<'EOF'
a red fox sitting in fresh snow, morning light
a lighthouse on a cliff at dusk, oil painting
a bowl of ramen with a soft-boiled egg, top view
an astronaut riding a horse on the moon
a small wooden cabin by a mountain lake, autumn
a vintage bicycle leaning against a blue wall
a watercolor painting of a hummingbird and flowers
a futuristic city skyline at night, neon lights
EOF
  if [ -n "$COUNT" ]; then head -n "$COUNT" "$CAPS" >"$CAPS.tmp" && mv "$CAPS.tmp" "$CAPS"; fi
fi

GEN=(-m "$MODEL" --prompt-file "$CAPS" --steps "$STEPS" --sampling-method "$SAMPLER"
     --cfg-scale "$CFG" --warmup-steps "$WARMUP" -s "$SEED" -t "$THREADS")
[ -n "$W" ] && GEN+=(-W "$W")
[ -n "$H" ] && GEN+=(-H "$H")
[ "$SPLIT" -eq 1 ] || GEN+=(--no-split-batch)
GEN+=("${EXTRA[@]+"${EXTRA[@]}"}")

# gen NAME [PARALLELISM]: generates the list into $OUT/NAME (on P ranks with PARALLELISM);
# prints "latency_s denoise_s" (means per generated image)
gen() {
  local name=$1 par=${2:-} launch=()
  [ -z "$par" ] || launch=("$MPIEXEC" "${MPIFLAGS[@]}" -n "$P")
  [ "$KEEP" -eq 1 ] || rm -rf "${OUT:?}/$name"
  echo "quality.sh: generating $name ..." >&2
  "${launch[@]+"${launch[@]}"}" "$BIN" "${GEN[@]}" ${par:+--parallelism "$par"} \
      --output-dir "$OUT/$name" >/dev/null 2>"$OUT/$name.log" </dev/null \
    || { cat "$OUT/$name.log" >&2; die "generation '$name' failed (log: $OUT/$name.log)"; }
  local v
  v=$(sed -n 's/.*latency per image \([0-9.]*\) s (denoise \([0-9.]*\) s).*/\1 \2/p' "$OUT/$name.log" | tail -n 1)
  [ -n "$v" ] || die "no latency summary in $OUT/$name.log"
  echo "$v"
}

# jget KEY FILE: the value of "KEY" in the JSON object on the last line of FILE ("-" if none)
jget() {
  local v
  v=$(tail -n 1 "$2" | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\(\"[^\"]*\"\|[-+0-9.eE]*\|null\).*/\1/p")
  v=${v//\"/}
  [ -n "$v" ] && [ "$v" != null ] || v=-
  echo "$v"
}

# metrics TAG ROOT0 ROOT1 [--is-gt]: runs distrifuse-metrics; prints "psnr lpips fid"
metrics() {
  local tag=$1 a=$2 b=$3; shift 3
  local args=(--input-root0 "$a" --input-root1 "$b" "$@" --json)
  [ -n "$LPIPS_W" ] && args+=(--lpips-weights "$LPIPS_W")
  [ -n "$FID_W" ] && args+=(--fid-weights "$FID_W")
  "$METRICS" "${args[@]}" >"$OUT/metrics-$tag.json" 2>"$OUT/metrics-$tag.log" </dev/null \
    || { cat "$OUT/metrics-$tag.log" >&2; die "distrifuse-metrics failed for $tag (log: $OUT/metrics-$tag.log)"; }
  echo "$(jget psnr "$OUT/metrics-$tag.json") $(jget lpips "$OUT/metrics-$tag.json") $(jget fid "$OUT/metrics-$tag.json")"
}

read -r l1 d1 <<<"$(gen 1rank)"
read -r l2 d2 <<<"$(gen distrifusion patch)"
read -r l3 d3 <<<"$(gen naive_patch naive_patch)"
N_IMG=$(find "$OUT/1rank" -maxdepth 1 -name '*.png' | wc -l)

echo "quality.sh: metrics ..." >&2
read -r p2 lp2 f2 <<<"$(metrics distrifusion "$OUT/1rank" "$OUT/distrifusion")"
read -r p3 lp3 f3 <<<"$(metrics naive_patch "$OUT/1rank" "$OUT/naive_patch")"
if [ -n "$GT" ]; then
  [ -d "$GT" ] || die "ground-truth folder '$GT' not found"
  read -r gp1 gl1 gf1 <<<"$(metrics gt-1rank "$GT" "$OUT/1rank" --is-gt)"
  read -r gp2 gl2 gf2 <<<"$(metrics gt-distrifusion "$GT" "$OUT/distrifusion" --is-gt)"
  read -r gp3 gl3 gf3 <<<"$(metrics gt-naive_patch "$GT" "$OUT/naive_patch" --is-gt)"
fi

speedup() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
fmt() { # value with a fixed width and precision, or "-"
  case "$2" in -|inf|nan) printf "%*s" "$1" "$2" ;; *) printf "%*.*f" "$1" "$3" "$2" ;; esac
}
{
  size="${W:-model default}"; [ -z "$W" ] || size="${W}x${H}"
  echo "Table 1 (quality.sh): $NAME, $N_IMG captions, $size, $SAMPLER $STEPS steps, cfg $CFG, warm-up $WARMUP, $([ "$SPLIT" -eq 1 ] && echo "split batch" || echo "no split batch"), $THREADS thread(s) per rank"
  echo "metric networks: $NETS"
  hdr=$(printf '%-24s %5s %10s %10s %8s | %8s %8s %9s' method ranks "latency s" "denoise s" speedup "PSNR" "LPIPS" "FID")
  [ -z "$GT" ] || hdr="$hdr | $(printf '%8s %8s %9s' "PSNR" "LPIPS" "FID")"
  hdr0=$(printf '%-24s %5s %10s %10s %8s | %-28s' "" "" "" "" "" "vs 1 rank")
  [ -z "$GT" ] || hdr0="$hdr0 | vs ground truth"
  echo "${hdr0%"${hdr0##*[! ]}"}"
  echo "$hdr"
  row() { # name ranks lat den psnr lpips fid [gt psnr lpips fid]
    local r
    r=$(printf '%-24s %5s %10.3f %10.3f %8s | %s %s %s' "$1" "$2" "$3" "$4" "$(speedup "$l1" "$3")" \
      "$(fmt 8 "$5" 2)" "$(fmt 8 "$6" 4)" "$(fmt 9 "$7" 3)")
    [ -z "$GT" ] || r="$r | $(fmt 8 "$8" 2) $(fmt 8 "$9" 4) $(fmt 9 "${10}" 3)"
    echo "$r"
  }
  row "1 rank (original)" 1 "$l1" "$d1" - - - "${gp1:-}" "${gl1:-}" "${gf1:-}"
  row "DistriFusion (patch)" "$P" "$l2" "$d2" "$p2" "$lp2" "$f2" "${gp2:-}" "${gl2:-}" "${gf2:-}"
  row "naive patch" "$P" "$l3" "$d3" "$p3" "$lp3" "$f3" "${gp3:-}" "${gl3:-}" "${gf3:-}"
  echo "(latency: mean wall time per image of the batch run, text encoding + denoising + VAE; speedup over 1 rank;"
  echo " PSNR in dB over the 8-bit images; images in $OUT/{1rank,distrifusion,naive_patch})"
} | tee "$OUT/table.txt"
