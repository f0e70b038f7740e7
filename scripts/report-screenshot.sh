#!/usr/bin/env bash
# Renders a run report (r1kit report's HTML page) in headless Chromium and saves a PNG
# screenshot, to check the page the way a browser shows it (docs/eval.md).
#
#   scripts/report-screenshot.sh RUN_DIR/report.html OUT.png [WIDTH [HEIGHT]]
#
# Installs Debian's chromium package when no chromium is on PATH (it is large, so
# scripts/setup.sh does not). The page is self-contained: Chromium runs with networking
# left unused (no URL in the page) and without a sandbox when run as root.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH [HEIGHT]]" >&2
  exit 2
fi
page=$1 out=$2 width=${3:-1280} height=${4:-2000}
[[ -f $page ]] || { echo "$page: no such file" >&2; exit 1; }
browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $browser ]]; then
  echo "installing chromium (apt-get)..." >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  browser=$(command -v chromium)
fi
flags=(--headless --disable-gpu --hide-scrollbars --no-first-run --disable-extensions
  --user-data-dir="$(mktemp -d)" "--window-size=$width,$height" "--screenshot=$(realpath -m "$out")")
[[ $(id -u) -eq 0 ]] && flags+=(--no-sandbox)
"$browser" "${flags[@]}" "file://$(realpath "$page")" 2>/dev/null
[[ -s $out ]] || { echo "$out: chromium wrote no screenshot" >&2; exit 1; }
echo "wrote $out"
