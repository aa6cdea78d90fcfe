#!/usr/bin/env bash
# Side-by-side benchmark: stable-diffusion.cpp's sd-cli against distrifuse, same checkpoint,
# prompt, size, steps, sampler (Euler), CFG scale, seed and threads, runs alternating.
#
#   bench/vs_sdcpp.sh --sd-cli PATH MODEL.safetensors [-W 512] [-H 512] [--steps 2] [-t 2]
#                     [--runs 2] [--cfg-scale 7] [--prompt TEXT] [--distrifuse PATH]
#                     [--out-dir DIR]
#
# sd-cli is built by the user, outside this repository, from leejet/stable-diffusion.cpp
# (fastest CPU build: cmake -DGGML_LLAMAFILE=ON); nothing of it is part of distrifuse.
# MODEL.safetensors: a single-file SD 1.x / SDXL checkpoint both programs load, e.g. from
# `build/tools/df-make-model --arch sd15 --layout single --out m.safetensors`.
#
# Per run it records: sd-cli's "sampling completed, taking X s" (its denoise time, first-step costs
# included), its VAE decode time and total time (from its log, else the wall time), distrifuse's
# `timings:` line (denoise, VAE, total), and the peak RSS of both processes (GNU time). Prints a
# table (best and mean over the runs) and, as the last line, one JSON object.
# Before every run the checkpoint is read once (cat > /dev/null) so that both programs start with
# it in the page cache: sd-cli reads its weights inside the timed sampling / decode phases, and an
# SDXL file read from a cold disk would otherwise count towards its denoise time.
set -euo pipefail

die() { echo "vs_sdcpp.sh: error: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sdcli="" model="" W=512 H=512 steps=2 threads=2 runs=2 cfg=7 seed=42
prompt="a photograph of an astronaut riding a horse"
ours="$here/build/distrifuse"
outdir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sd-cli) [ $# -ge 2 ] || die "--sd-cli needs a PATH"; sdcli=$2; shift 2 ;;
    -W|--width) [ $# -ge 2 ] || die "$1 needs a value"; W=$2; shift 2 ;;
    -H|--height) [ $# -ge 2 ] || die "$1 needs a value"; H=$2; shift 2 ;;
    --steps) [ $# -ge 2 ] || die "--steps needs a value"; steps=$2; shift 2 ;;
    -t|--threads) [ $# -ge 2 ] || die "$1 needs a value"; threads=$2; shift 2 ;;
    --runs) [ $# -ge 2 ] || die "--runs needs a value"; runs=$2; shift 2 ;;
    --cfg-scale) [ $# -ge 2 ] || die "--cfg-scale needs a value"; cfg=$2; shift 2 ;;
    --prompt) [ $# -ge 2 ] || die "--prompt needs a value"; prompt=$2; shift 2 ;;
    --seed) [ $# -ge 2 ] || die "--seed needs a value"; seed=$2; shift 2 ;;
    --distrifuse) [ $# -ge 2 ] || die "--distrifuse needs a PATH"; ours=$2; shift 2 ;;
    --out-dir) [ $# -ge 2 ] || die "--out-dir needs a DIR"; outdir=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$model" ] || die "more than one model given ('$model', '$1')"; model=$1; shift ;;
  esac
done
[ -n "$sdcli" ] || die "no --sd-cli PATH given"
[ -x "$sdcli" ] || die "--sd-cli '$sdcli' is not an executable file"
[ -n "$model" ] || die "no MODEL.safetensors given"
[ -f "$model" ] || die "model '$model' is not a file"
[ -x "$ours" ] || die "distrifuse not found at '$ours' (build it, or pass --distrifuse PATH)"
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) is needed for the peak RSS (apt-get install time)"
for v in "$W" "$H" "$steps" "$threads" "$runs"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "sizes, steps, threads and runs must be positive integers (got '$v')"
done
[ -n "$outdir" ] || outdir=$(mktemp -d /tmp/vs_sdcpp.XXXXXX)
mkdir -p "$outdir"

# number after a pattern in a log, or empty
num_after() { grep -oE "$2[[:space:]]*[0-9]+(\.[0-9]+)?" "$1" | tail -n 1 | grep -oE '[0-9]+(\.[0-9]+)?$' || true; }

# "CPU N.NN cores busy": (user + sys) / wall of the whole process, from GNU time
cpu_use() { awk '/DF_CPU/ { for (i = 1; i <= NF; i++) if ($i == "DF_CPU") { u = $(i + 1) + $(i + 2); w = $(i + 3) }
  if (w > 0) printf "CPU %.2f cores busy", u / w; else printf "CPU ?" }' "$1"; }
warm_cache() { cat "$model" > /dev/null; }

declare -a S_DEN S_VAE S_TOT S_RSS O_DEN O_VAE O_TOT O_RSS
for ((r = 1; r <= runs; r++)); do
  # ---- stable-diffusion.cpp
  log="$outdir/sdcpp_$r.log"
  warm_cache
  t0=$(date +%s.%N)
  /usr/bin/time -f "DF_MAXRSS_KB %M DF_CPU %U %S %e" -o "$outdir/sdcpp_$r.time" \
    "$sdcli" -m "$model" -p "$prompt" -W "$W" -H "$H" --steps "$steps" -t "$threads" \
    --sampling-method euler --cfg-scale "$cfg" -s "$seed" -o "$outdir/sdcpp_$r.png" \
    > "$log" 2>&1 || die "sd-cli failed (run $r); see $log"
  t1=$(date +%s.%N)
  den=$(num_after "$log" "sampling completed, taking")
  [ -n "$den" ] || die "no 'sampling completed, taking X s' in sd-cli's output ($log)"
  vae=$(num_after "$log" "(decode_first_stage completed|latent [0-9]+ decoded|decoded), taking")
  tot=$(num_after "$log" "(generate_image|txt2img) completed in")
  [ -n "$tot" ] || tot=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  rss=$(awk '/DF_MAXRSS_KB/ { printf "%.0f", $2 / 1024 }' "$outdir/sdcpp_$r.time")
  S_DEN+=("$den"); S_VAE+=("${vae:-nan}"); S_TOT+=("$tot"); S_RSS+=("$rss")
  echo "run $r sd-cli:     sampling ${den} s, VAE ${vae:-?} s, total ${tot} s, peak RSS ${rss} MiB, $(cpu_use "$outdir/sdcpp_$r.time")" >&2

  # ---- distrifuse
  log="$outdir/ours_$r.log"
  warm_cache
  /usr/bin/time -f "DF_MAXRSS_KB %M DF_CPU %U %S %e" -o "$outdir/ours_$r.time" \
    "$ours" -m "$model" -p "$prompt" -W "$W" -H "$H" --steps "$steps" -t "$threads" \
    --sampling-method euler --cfg-scale "$cfg" -s "$seed" -o "$outdir/ours_$r.png" --no-vae-tiling \
    > "$log" 2>&1 || die "distrifuse failed (run $r); see $log"
  line=$(grep -E '^timings:' "$log" | tail -n 1) || true
  [ -n "$line" ] || die "no 'timings:' line in distrifuse's output ($log)"
  den=$(echo "$line" | grep -oE 'denoise [0-9.]+' | grep -oE '[0-9.]+$')
  vae=$(echo "$line" | grep -oE 'VAE [0-9.]+' | grep -oE '[0-9.]+$')
  tot=$(echo "$line" | grep -oE 'total [0-9.]+' | grep -oE '[0-9.]+$')
  rss=$(echo "$line" | grep -oE 'peak RSS [0-9]+' | grep -oE '[0-9]+$')
  O_DEN+=("$den"); O_VAE+=("$vae"); O_TOT+=("$tot"); O_RSS+=("$rss")
  echo "run $r distrifuse: denoise ${den} s, VAE ${vae} s, total ${tot} s, peak RSS ${rss} MiB, $(cpu_use "$outdir/ours_$r.time")" >&2
done

# best (min) and mean of a list; "nan" entries ignored
stats() { printf '%s\n' "$@" | awk '$1 != "nan" { n++; s += $1; if (n == 1 || $1 < m) m = $1 }
  END { if (n) printf "%.3f %.3f", m, s / n; else printf "nan nan" }'; }
read -r sd_best sd_mean <<< "$(stats "${S_DEN[@]}")"
read -r sv_best sv_mean <<< "$(stats "${S_VAE[@]}")"
read -r st_best st_mean <<< "$(stats "${S_TOT[@]}")"
read -r sr_best _ <<< "$(stats "${S_RSS[@]}")"
sr_best=$(printf '%.0f' "$sr_best")
read -r od_best od_mean <<< "$(stats "${O_DEN[@]}")"
read -r ov_best ov_mean <<< "$(stats "${O_VAE[@]}")"
read -r ot_best ot_mean <<< "$(stats "${O_TOT[@]}")"
read -r or_best _ <<< "$(stats "${O_RSS[@]}")"
or_best=$(printf '%.0f' "$or_best")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b <= 0) print "null"; else printf "%.3f", a / b }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan") print "null"; else printf "%.3f", a / b }'; }
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
cpu_fm=$(lscpu 2>/dev/null | awk -F: '/^CPU family:/ { gsub(/ /, "", $2); f = $2 } /^Model:/ { gsub(/ /, "", $2); m = $2 }
  END { if (f != "") printf "family %s model %s", f, m }')
[ -z "$cpu_fm" ] || cpu="${cpu:-unknown} ($cpu_fm, $(nproc) cores)"
kern=$("$ours" --version 2>/dev/null | sed -n 's/^kernels: //p' | head -n 1)

{
  echo "vs_sdcpp: ${W}x${H}, $steps steps, euler, cfg $cfg, $threads threads, $runs alternating runs each"
  echo "  CPU: ${cpu:-unknown}; distrifuse kernels: ${kern:-?}"
  printf '  %-22s %14s %14s %10s\n' "" "distrifuse" "sd-cli" "speedup"
  printf '  %-22s %14s %14s %10s\n' "denoise s (best/mean)" "$od_best/$od_mean" "$sd_best/$sd_mean" "$(ratio "$sd_best" "$od_best")x"
  printf '  %-22s %14s %14s %10s\n' "per step s (best)" "$(div "$od_best" "$steps")" "$(div "$sd_best" "$steps")" ""
  printf '  %-22s %14s %14s %10s\n' "VAE decode s (best)" "$ov_best" "$sv_best" "$(ratio "$sv_best" "$ov_best")x"
  printf '  %-22s %14s %14s %10s\n' "total s (best)" "$ot_best" "$st_best" "$(ratio "$st_best" "$ot_best")x"
  printf '  %-22s %14s %14s %10s\n' "peak RSS MiB" "$or_best" "$sr_best" "$(ratio "$or_best" "$sr_best")x"
  echo "  logs and images: $outdir"
} >&2
jnum() { [ "$1" = "nan" ] && echo null || echo "$1"; }
printf '{"width": %d, "height": %d, "steps": %d, "threads": %d, "runs": %d, "cfg_scale": %s, ' \
  "$W" "$H" "$steps" "$threads" "$runs" "$cfg"
printf '"cpu": "%s", "distrifuse": {"denoise_s": %s, "denoise_s_mean": %s, "step_s": %s, ' \
  "${cpu//\"/}" "$od_best" "$od_mean" "$(div "$od_best" "$steps")"
printf '"vae_s": %s, "total_s": %s, "peak_rss_mib": %s}, ' "$(jnum "$ov_best")" "$ot_best" "$or_best"
printf '"sdcpp": {"denoise_s": %s, "denoise_s_mean": %s, "step_s": %s, "vae_s": %s, ' \
  "$sd_best" "$sd_mean" "$(div "$sd_best" "$steps")" "$(jnum "$sv_best")"
printf '"total_s": %s, "peak_rss_mib": %s}, ' "$st_best" "$sr_best"
printf '"speedup": {"denoise": %s, "denoise_mean": %s, "vae": %s, "total": %s}, ' \
  "$(ratio "$sd_best" "$od_best")" "$(ratio "$sd_mean" "$od_mean")" "$(ratio "$sv_best" "$ov_best")" \
  "$(ratio "$st_best" "$ot_best")"
printf '"rss_ratio": %s}\n' "$(ratio "$or_best" "$sr_best")"
