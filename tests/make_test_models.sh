#!/bin/sh
# Writes the test models with df-make-model (no download, no ../shared): the shapes, names and
# dtypes of the golden fixtures, random weights. Usage: make_test_models.sh DF_MAKE_MODEL OUT
#   OUT/tiny-sdxl/                      diffusers folder, F16
#   OUT/tiny-sd15/                      diffusers folder, F32
#   OUT/tiny-sd15-single/tiny-sd15.safetensors   single-file checkpoint, F16
# Idempotent (a complete OUT/.done is kept); safe to run concurrently (each writer works in its
# own temporary folder, which is renamed into place).
set -eu
MM=$1
OUT=$2
[ -f "$OUT/.done" ] && exit 0
mkdir -p "$OUT"
TMP=$(mktemp -d "$OUT/.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
"$MM" --arch tiny-sdxl --dtype f16 --out "$TMP/tiny-sdxl" >/dev/null
"$MM" --arch tiny-sd15 --dtype f32 --out "$TMP/tiny-sd15" >/dev/null
mkdir -p "$TMP/tiny-sd15-single"
"$MM" --arch tiny-sd15 --layout single --dtype f16 \
  --out "$TMP/tiny-sd15-single/tiny-sd15.safetensors" >/dev/null
for m in tiny-sdxl tiny-sd15 tiny-sd15-single; do
  [ -e "$OUT/$m" ] || mv "$TMP/$m" "$OUT/$m" 2>/dev/null || true
done
touch "$OUT/.done"
