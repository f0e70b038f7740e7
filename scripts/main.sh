#!/usr/bin/env bash
# Sets up, builds and runs the main job: the default recipe, end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
./build/r1kit run recipes/r1-tiny.yaml "$@"
