#!/usr/bin/env bash
# Installs the epub.js reference (epubjs + jsdom) used by the CFI comparison tests and bench.
# Skips quietly when node/npm are absent; the tests then skip too.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "tests/js: npm not found, epub.js comparison tests will be skipped" >&2
  exit 0
fi
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --ignore-scripts
else
  npm install --no-audit --no-fund --ignore-scripts
fi
