#!/usr/bin/env bash
# Builds distrifuse, writes a tiny random-weight SDXL model (no download) and generates one image
# with it: demo.png. Random weights give a noise-like picture; the point is the whole pipeline
# (tokenizer, two text encoders, UNet, scheduler, VAE, PNG) running end to end.
# Usage: scripts/demo.sh [extra distrifuse flags]    e.g. scripts/demo.sh --steps 4 -s 7
set -euo pipefail
cd "$(dirname "$0")/.."
make
if [ ! -f build/models/tiny-sdxl/model_index.json ]; then
  mkdir -p build/models
  ./build/tools/df-make-model --arch tiny-sdxl --out build/models/tiny-sdxl
fi
./build/distrifuse -m build/models/tiny-sdxl -p "a lighthouse on a cliff at dusk, oil painting" \
  -W 512 -H 512 --steps 10 -o demo.png "$@"
