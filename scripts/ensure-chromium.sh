#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is on this machine for the portal's
# browser tests (e2e/browser), installing Debian's chromium package when
# /usr/bin/chromium is missing. The tests start their own browser with a
# fresh profile; nothing is left running. CHROMIUM_BIN names another binary.
set -euo pipefail

bin="${CHROMIUM_BIN:-/usr/bin/chromium}"
if [[ -x "$bin" ]]; then
	exit 0
fi
if [[ -n "${CHROMIUM_BIN:-}" ]]; then
	echo "ensure-chromium: CHROMIUM_BIN=$bin is not an executable" >&2
	exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "ensure-chromium: Chromium is missing and installing it needs root:" >&2
	echo "  sudo apt-get install -y chromium   (or set CHROMIUM_BIN)" >&2
	exit 1
fi
echo "ensure-chromium: installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
test -x /usr/bin/chromium
