#!/usr/bin/env bash
# Builds distrifuse, writes a tiny random-weight SDXL model (no download) and generates one image
# with it: demo.png. Random weights give a noise-like picture; the point is the whole pipeline
# (tokenizer, two text encoders, UNet, scheduler, VAE, PNG) running end to end.
# Then runs scripts/teaser.sh (1 rank vs 2 ranks DistriFusion vs 2 ranks naive patch -> teaser.png).
# Usage: scripts/demo.sh [extra distrifuse flags for demo.png]    e.g. scripts/demo.sh --steps 4
set -euo pipefail
cd "$(dirname "$0")/.."
make
if [ ! -f build/models/tiny-sdxl/model_index.json ]; then
  mkdir -p build/models
  ./build/tools/df-make-model --arch tiny-sdxl --out build/models/tiny-sdxl
fi
./build/distrifuse -m build/models/tiny-sdxl -p "a lighthouse on a cliff at dusk, oil painting" \
  -W 512 -H 512 --steps 10 -o demo.png "$@"

# The DistriFusion teaser: the same kind of model at 1024x1024 on 1 rank, on 2 ranks with
# DistriFusion and on 2 ranks with naive patch parallelism (latency, speedup, PSNR, teaser.png).
BUILD=build scripts/teaser.sh
