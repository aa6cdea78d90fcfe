#!/usr/bin/env bash
# bench/vs_sdcpp.sh against a stand-in sd-cli (a script printing stable-diffusion.cpp's log
# lines) and the real distrifuse on a tiny SD 1.5 single-file checkpoint: option handling, the
# parsing of both programs' timings, the alternating runs and the JSON line.
#   vs_sdcpp_test.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$(cd "$(dirname "$0")/.." && pwd)
[ -x /usr/bin/time ] || { echo "SKIP: /usr/bin/time (GNU time) not installed"; exit 77; }
T=$(mktemp -d /tmp/vs_sdcpp_test.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$B/tools/df-make-model" --arch tiny-sd15 --layout single --out "$T/m.safetensors" > /dev/null
cat > "$T/sd-cli" <<'EOS'
#!/bin/sh
# stand-in: checks the arguments it must get, prints sd.cpp-style timings
echo "$@" > "$(dirname "$0")/args.txt"
echo "[INFO ] stable-diffusion.cpp:1234 - sampling completed, taking 3.50s"
echo "[INFO ] stable-diffusion.cpp:1240 - decode_first_stage completed, taking 2.25s"
echo "[INFO ] stable-diffusion.cpp:1250 - generate_image completed in 6.10s"
EOS
chmod +x "$T/sd-cli"
out=$("$S/bench/vs_sdcpp.sh" --sd-cli "$T/sd-cli" "$T/m.safetensors" -W 64 -H 64 --steps 2 -t 1 \
      --distrifuse "$B/distrifuse" --out-dir "$T/o" 2> "$T/err") || { cat "$T/err"; fail "run"; }
json=$(echo "$out" | tail -n 1)
echo "$json"
echo "$json" | grep -q '"sdcpp": {"denoise_s": 3.500, "denoise_s_mean": 3.500, "step_s": 1.750, "vae_s": 2.250, "total_s": 6.100' || fail "sd-cli figures"
echo "$json" | grep -qE '"distrifuse": \{"denoise_s": [0-9.]+' || fail "distrifuse figures"
echo "$json" | grep -qE '"speedup": \{"denoise": [0-9.]+' || fail "speedup"
[ "$(ls "$T"/o/ours_*.png | wc -l)" = 2 ] || fail "2 distrifuse runs"
grep -q -- "-W 64 -H 64 --steps 2 -t 1 --sampling-method euler" "$T/args.txt" || fail "sd-cli args"
grep -q "run 2 sd-cli" "$T/err" || fail "alternating runs"
# bad input: one error line, exit 2
if "$S/bench/vs_sdcpp.sh" --sd-cli "$T/nope" "$T/m.safetensors" 2> "$T/e2"; then fail "missing sd-cli accepted"; fi
grep -q "is not an executable" "$T/e2" || fail "missing sd-cli message"
echo "vs_sdcpp_test: ok"
