#!/usr/bin/env bash
# The whole test suite: typecheck every folder, then every bun:test suite (pure, server on Bun and Deno,
# browser).
# The device scenarios run in three engines, from Debian's packages: Chromium (chromium), Firefox
# (firefox-esr) and WebKit (webkit2gtk-driver, driving tests/support/engines/webkit-browser.py, which
# needs python3-gi and gir1.2-webkit2-4.1, under Xvfb from xvfb). The scale-out suites use Debian's
# redis-server (started by the tests themselves on free ports; the package's own service is not used).
# On a fresh machine where we are root, install whichever is missing first, in one apt-get call.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/firefox-esr ] || missing+=(firefox-esr)
[ -x /usr/bin/WebKitWebDriver ] || missing+=(webkit2gtk-driver)
[ -x /usr/bin/Xvfb ] || missing+=(xvfb)
[ -f /usr/lib/python3/dist-packages/gi/__init__.py ] || missing+=(python3-gi)
[ -f /usr/lib/x86_64-linux-gnu/girepository-1.0/WebKit2-4.1.typelib ] || missing+=(gir1.2-webkit2-4.1)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's ${missing[*]} for the browser and scale-out suites…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: missing ${missing[*]}; the browser or scale-out suites will fail (apt-get install ${missing[*]})" >&2
  fi
fi
# The server suites also run the server on Deno (tests/support/targets.ts). .ci/run installs Deno 2.9.6
# from npm; on a machine without it, npm puts it under .tmp/ (no root needed) and the suites use that one.
DENO_VERSION=2.9.6
if [ -z "${FERRY_DENO:-}" ] && [ "$(deno --version 2>/dev/null | head -1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
  if [ ! -x .tmp/deno/node_modules/.bin/deno ]; then
    echo "installing deno@$DENO_VERSION from npm into .tmp/deno for the Deno server suites…"
    npm install --prefix .tmp/deno --no-save --no-fund --no-audit --loglevel=error "deno@$DENO_VERSION" >/dev/null
  fi
  export FERRY_DENO="$PWD/.tmp/deno/node_modules/.bin/deno"
fi
# tests/packages.test.ts packs the npm packages and installs them, with npm (beside Node, as the README
# assumes) from the npm registry, into an example app in a temp dir; npm's cache keeps later runs quick.
bun run typecheck
bun test --timeout 30000 "$@"
