#!/usr/bin/env bash
# Installs what distrifuse needs to build, test and benchmark on Debian 12 (idempotent).
#   scripts/install-deps.sh               build + test dependencies (the README's first command)
#   scripts/install-deps.sh --test-tools  also the large test-only tools (headless Chromium for the
#                                         metrics page test, clang/libFuzzer for `make fuzz`);
#                                         .ci/run uses this. Tests needing an absent tool skip (77).
set -euo pipefail
PKGS=(build-essential cmake pkg-config libopenblas-dev libopenmpi-dev openmpi-bin libpng-dev
      libcjson-dev python3 iproute2 mpich libmpich-dev time)
TEST_PKGS=(clang libclang-rt-14-dev  # make fuzz (libFuzzer)
           chromium)              # the metrics page test (headless)
for arg in "$@"; do
  case "$arg" in
    --test-tools) PKGS+=("${TEST_PKGS[@]}") ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
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
# MPICH (for scripts/cluster.sh --mpi mpich, build-mpich/) must not become the default MPI:
# build/ is configured with Open MPI's mpicc / mpirun (Debian's alternatives choose by priority).
for alt in mpi mpirun mpi-x86_64-linux-gnu; do
  cur=$(update-alternatives --query "$alt" 2>/dev/null | sed -n 's/^Value: //p')
  case "$cur" in
    *mpich*)
      want=$(update-alternatives --list "$alt" 2>/dev/null | grep -m1 openmpi || true)
      if [ -n "$want" ]; then
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO=sudo
        $SUDO update-alternatives --set "$alt" "$want" >/dev/null
        echo "install-deps: $alt alternative set back to Open MPI ($want)"
      fi ;;
  esac
done
echo "install-deps: all dependencies present"
