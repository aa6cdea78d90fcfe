#!/usr/bin/env bash
# Installs what distrifuse needs to build, test and benchmark on Debian 12 (idempotent).
set -euo pipefail
PKGS=(build-essential cmake pkg-config libopenblas-dev libopenmpi-dev openmpi-bin libpng-dev
      libcjson-dev python3)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all dependencies present"
