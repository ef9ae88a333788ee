#!/usr/bin/env bash
# The whole test suite: typecheck every folder, then every bun:test suite (pure, server, browser).
# Browser suites drive Debian's Chromium; on a fresh machine where we are root, install it first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser suites…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: /usr/bin/chromium is missing; the browser suites will fail (apt-get install chromium)" >&2
  fi
fi
bun run typecheck
bun test "$@"
