#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (unit + integration).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/test-data.sh
./scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
