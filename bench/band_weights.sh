#!/usr/bin/env bash
# Speed-weighted bands (issue 9 item 3): 2 ranks x 1 thread, --no-split-batch, rank 0 bound to
# core 0, rank 1 bound to core 1 where it shares the core with a busy loop (so rank 1 runs at
# about half speed). Runs equal bands and `--band-weights auto` alternately (REPS times each)
# and prints each run's latency and the ideal latency:
#   ideal = steps x (total rows / total speed), speed_i = rows_i / compute_i,
# from every rank's mean compute time per asynchronous step of that run (-v step profile; the
# ranks' speeds differ between runs with the load on the machine, so each run gets its own).
#   bench/band_weights.sh MODEL [SIZE] [STEPS] [WARMUP] [REPS]   (defaults 2048 8 2 2)
# EXTRA="--band-weights 2,1" adds a run with fixed weights; BUSY=n runs n busy loops on core 1
# (default 1). BUILD=dir selects the build. Other load on the machine (and the scheduler's
# autogroups) changes the ranks' speeds; the speeds of every run are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bench/band_weights.sh MODEL [SIZE] [STEPS] [WARMUP] [REPS]}
SIZE=${2:-2048}
STEPS=${3:-8}
WARM=${4:-2}
REPS=${5:-2}
B=${BUILD:-build}
OUT=${OUT:-$B/band_weights}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
[ "$(nproc --all)" -ge 2 ] || { echo "band_weights.sh: needs 2 cores" >&2; exit 77; }
PIDS=()
for _ in $(seq 1 "${BUSY:-1}"); do
  taskset -c 1 sh -c 'while :; do :; done' &
  PIDS+=($!)
done
trap 'kill "${PIDS[@]}"' EXIT
args=(-m "$MODEL" -W "$SIZE" -H "$SIZE" --steps "$STEPS" --warmup-steps "$WARM" --no-split-batch
      -t 1 --warmup-times 0 --test-times 1 -v)

one() { # name args...
  local name=$1
  shift
  mpiexec --bind-to core --map-by core -n 2 "./$B/distrifuse-bench" "${args[@]}" "$@" \
    >"$OUT/$name.json" 2>"$OUT/$name.log" || { cat "$OUT/$name.log" >&2; exit 1; }
  python3 - "$OUT/$name.json" "$OUT/$name.log" "$name" "$STEPS" <<'EOF'
import json, re, sys
js, log, name, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
j = json.loads(open(js).read().splitlines()[-1])
per = {}  # rank -> [rows, compute] of the asynchronous steps
pat = re.compile(r"\[r(\d+)/\d+\] dist step (\d+) \((a?sync)\): (\d+) rows, total [\d.]+ s, "
                 r"compute ([\d.]+) s")
for line in open(log):
    m = pat.search(line)
    if m and m.group(3) == "async":
        per.setdefault(int(m.group(1)), []).append((int(m.group(4)), float(m.group(5))))
speed = {r: sum(n for n, _ in v) / sum(c for _, c in v) for r, v in per.items()}
rows = sum(v[-1][0] for v in per.values())
ideal = steps * rows / sum(speed.values())
plan = j.get("band_plan", "equal")
auto = [l.strip() for l in open(log) if "band weights auto" in l]
print(f"{name:8s} latency {j['latency_s']:7.3f} s  ideal {ideal:7.3f} s  ratio "
      f"{j['latency_s'] / ideal:5.3f}  steady step {j['async_step_s']:.3f} s  speeds (rows/s) "
      + " ".join(f"r{r} {s:.1f}" for r, s in sorted(speed.items())) + f"  [{plan}]")
for a in auto:
    print("         " + a)
EOF
}
echo "band_weights.sh: $(lscpu | sed -n 's/^Model name: *//p'), ${BUSY:-1} busy loop(s) on core 1, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$REPS"); do
  one "equal$i"
  one "auto$i" --band-weights auto
  [ -z "${EXTRA:-}" ] || one "extra$i" $EXTRA
done
echo "band_weights.sh: load $(cut -d' ' -f1-3 /proc/loadavg)"
