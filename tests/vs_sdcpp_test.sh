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
# stand-in: checks the arguments it must get, prints the log of stable-diffusion.cpp's sd-cli
# (leejet/stable-diffusion.cpp 97d2990, as seen on a real SD 1.5 run): weights are loaded lazily
# inside the timed phases ("loading tensors completed, taking" must not be read as a phase time),
# progress bars end in \r and ESC[K, and the second of the two decode lines is the phase total.
echo "$@" > "$(dirname "$0")/args.txt"
e=$(printf '\033[K')
echo "[INFO ] stable-diffusion.cpp:908  - Version: SD 1.x "
echo "[INFO ] stable-diffusion.cpp:5628 - generate_image 512x512"
echo "[INFO ] stable-diffusion.cpp:4380 - sampling using Euler method"
echo "[INFO ] model_loader.cpp:1304 - loading tensors completed, taking 0.20s (read: 0.13s, memcpy: 0.00s, convert: 0.00s, copy_to_backend: 0.00s)"
echo "[INFO ] stable-diffusion.cpp:5296 - get_learned_condition completed, taking 0.43s"
echo "[INFO ] stable-diffusion.cpp:5679 - generating image: 1/1 - seed 42"
printf '  |#####     | 96/686 - 670.65MB/s%s\r  |##########| 686/686 - 994.79MB/s%s\n' "$e" "$e"
echo "[INFO ] model_loader.cpp:1304 - loading tensors completed, taking 0.81s (read: 0.64s, memcpy: 0.00s, convert: 0.00s, copy_to_backend: 0.00s)"
printf '  |=====>    | 1/2 - 1.90s/it%s\r  |==========| 2/2 - 1.75s/it%s\n' "$e" "$e"
echo "[INFO ] stable-diffusion.cpp:5711 - sampling completed, taking 3.50s"
echo "[INFO ] stable-diffusion.cpp:5723 - generating 1 latent images completed, taking 3.50s"
echo "[INFO ] stable-diffusion.cpp:5321 - decoding 1 latents"
echo "[INFO ] model_loader.cpp:1304 - loading tensors completed, taking 0.40s (read: 0.27s, memcpy: 0.00s, convert: 0.00s, copy_to_backend: 0.00s)"
echo "[INFO ] stable-diffusion.cpp:5387 - latent 1 decoded, taking 2.20s"
echo "[INFO ] stable-diffusion.cpp:5391 - decode_first_stage completed, taking 2.25s"
echo "[INFO ] stable-diffusion.cpp:5861 - generate_image completed in 6.10s"
echo "[INFO ] main.cpp:490  - save result image 0 to '$(echo "$@" | sed 's/.*-o \([^ ]*\).*/\1/')' (success)"
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
grep -qE "run 2 distrifuse: .*CPU [0-9.]+ cores busy" "$T/err" || fail "CPU use from GNU time"
# bad input: one error line, exit 2
if "$S/bench/vs_sdcpp.sh" --sd-cli "$T/nope" "$T/m.safetensors" 2> "$T/e2"; then fail "missing sd-cli accepted"; fi
grep -q "is not an executable" "$T/e2" || fail "missing sd-cli message"
echo "vs_sdcpp_test: ok"
