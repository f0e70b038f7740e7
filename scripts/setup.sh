#!/usr/bin/env bash
# Installs every Debian 12 package r1kit needs. Non-interactive and idempotent:
# packages already present are left alone, and apt is only asked when one is missing.
#
#   scripts/setup.sh          what building and testing need (CI)
#   scripts/setup.sh --fuzz   also clang and its sanitizer/libFuzzer runtimes, for
#                             scripts/sanitize.sh and scripts/fuzz.sh (docs/testing.md)
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev libopenblas0-openmp libopenblas-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libsentencepiece-dev libonig-dev libutf8proc-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgloo-dev libseccomp-dev
  python3 python3-torch python3-numpy python3-grpcio python3-grpc-tools
)
case "${1:-}" in
  "") ;;
  # libclang-rt-14-dev holds libclang_rt.fuzzer*.a and the ASan/UBSan runtimes.
  --fuzz) PACKAGES+=(clang-14 libclang-rt-14-dev) ;;
  *) echo "setup.sh: unknown argument $1 (only --fuzz)" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "r1kit setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "r1kit setup: all packages present"
fi
